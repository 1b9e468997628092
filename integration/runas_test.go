//go:build integration

package integration

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/fsm"
	"github.com/hakuriver/hakuriver-ha/integration/harness"
)

// createRunAsAccount creates user u as the admin and returns a token of theirs.
func createRunAsAccount(t *testing.T, c *harness.Cluster, u api.UserRequest) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), harness.WriteTimeout)
	defer cancel()
	if a, err := c.CallAs(ctx, 0, http.MethodPost, "/api/users", c.AdminToken(), u); err != nil || a.Status != http.StatusCreated {
		t.Fatalf("create user %s: %v %s", u.Name, err, a)
	}
	a, err := c.CallAs(ctx, 0, http.MethodPost, "/api/tokens", c.AdminToken(), api.TokenRequest{User: u.Name})
	var tr api.TokenResponse
	if err != nil || a.Status != http.StatusCreated || a.Decode(&tr) != nil || tr.Token == "" {
		t.Fatalf("token of %s: %v %s", u.Name, err, a)
	}
	return tr.Token
}

// submitAs submits req with an account's token and returns its one task.
func submitAs(t *testing.T, c *harness.Cluster, bearer string, req api.SubmitRequest) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), harness.WriteTimeout)
	defer cancel()
	a, err := c.CallAs(ctx, 0, http.MethodPost, "/api/submit", bearer, req)
	var sr api.SubmitResponse
	if err != nil || a.Status != http.StatusAccepted || a.Decode(&sr) != nil || len(sr.TaskIDs) != 1 {
		t.Fatalf("submit %q: %v %s", req.Command, err, a)
	}
	return sr.TaskIDs[0]
}

// inRoot runs req in /: the default working directory, shared_data, is
// under the test's private temporary directory, which only root may enter.
func inRoot(req api.SubmitRequest) api.SubmitRequest {
	req.WorkDir = "/"
	return req
}

// ownerOf returns the uid and gid owning path.
func ownerOf(t *testing.T, path string) (uint32, uint32) {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatalf("stat %s: %v", path, err)
	}
	return st.Uid, st.Gid
}

// TestNativeTasksRunAsTheirOwner: an account with unix_user 4242:4242 (no
// passwd entry anywhere) runs a native task as uid 4242, gid 4242, and the
// stdout file the runner created belongs to uid 4242; an account without a
// unix_user runs as the runner's runner_user (nobody here). The owner reads
// the logs; another user may not.
func TestNativeTasksRunAsTheirOwner(t *testing.T) {
	c := startCluster(t, harness.Options{Replicas: 1, HeartbeatInterval: hbInterval, HeartbeatTimeoutFactor: hbFactor})
	opts := twoCores
	opts.Args = []string{"--runner-user", "nobody"}
	c.StartRunner("ra1", opts)
	alice := createRunAsAccount(t, c, api.UserRequest{Name: "alice", Role: fsm.RoleUser, UnixUser: "4242:4242"})
	bob := createRunAsAccount(t, c, api.UserRequest{Name: "bob", Role: fsm.RoleUser})

	for _, tc := range []struct {
		who, token, runAs, out string
		uid                    uint32
	}{
		{"alice", alice, "4242:4242", "4242\n4242\n", 4242},
		{"bob", bob, "", "65534\n65534\n", 65534},
	} {
		id := submitAs(t, c, tc.token, inRoot(shell("id -u; id -g")))
		task := c.WaitFinal(id, taskTimeout)
		if task.Status != "completed" {
			t.Fatalf("%s's task: %s", tc.who, describe(task))
		}
		if task.Owner != tc.who || task.RunAs != tc.runAs {
			t.Errorf("%s's task: owner %q run_as %q, want %q %q", tc.who, task.Owner, task.RunAs, tc.who, tc.runAs)
		}
		out := filepath.Join(c.SharedDir(), "task_outputs", filepath.Base(task.StdoutPath))
		b, err := os.ReadFile(out)
		if err != nil || string(b) != tc.out {
			t.Errorf("%s's task printed %q (%v), want %q", tc.who, b, err, tc.out)
		}
		if uid, _ := ownerOf(t, out); uid != tc.uid {
			t.Errorf("%s's stdout file belongs to uid %d, want %d", tc.who, uid, tc.uid)
		}
		ctx, cancel := context.WithTimeout(context.Background(), harness.ReadTimeout)
		a, err := c.CallAs(ctx, 0, http.MethodGet, "/api/task/"+id+"/stdout", tc.token, nil)
		cancel()
		if err != nil || a.Status != http.StatusOK || string(a.Body) != tc.out {
			t.Errorf("%s reads the logs of their task: %v %s", tc.who, err, a)
		}
	}

	// The CLI lists by owner: alice's one task; the admin (the harness's
	// CLI account) owns none.
	var listed []api.Task
	if err := c.CLIOK("-o", "json", "task", "list", "--user", "alice").Decode(&listed); err != nil || len(listed) != 1 || listed[0].Owner != "alice" {
		t.Errorf("task list --user alice: %+v (%v), want her one task", listed, err)
	}
	if r := c.CLIOK("task", "list", "--mine"); strings.TrimSpace(r.Stdout) != "No tasks." {
		t.Errorf("task list --mine as the admin: %q, want no tasks", r.Stdout)
	}

	// A unix_user of root needs the run_as_root policy.
	rooty := createRunAsAccount(t, c, api.UserRequest{Name: "rooty", Role: fsm.RoleUser, UnixUser: "0"})
	ctx, cancel := context.WithTimeout(context.Background(), harness.WriteTimeout)
	defer cancel()
	a, err := c.CallAs(ctx, 0, http.MethodPost, "/api/submit", rooty, inRoot(shell("id -u")))
	if err != nil || a.Status != http.StatusForbidden || !strings.Contains(string(a.Body), "run_as_root") {
		t.Errorf("submit as a root unix_user without the policy: %v %s, want 403 naming run_as_root", err, a)
	}
	if a, err := c.CallAs(ctx, 0, http.MethodPatch, "/api/users/rooty", c.AdminToken(), api.UserPatch{Policy: &fsm.Policy{RunAsRoot: true}}); err != nil || a.Status != http.StatusOK {
		t.Fatalf("grant run_as_root: %v %s", err, a)
	}
	id := submitAs(t, c, rooty, inRoot(shell("id -u")))
	if task := c.WaitFinal(id, taskTimeout); task.Status != "completed" || task.RunAs != "0" {
		t.Fatalf("root task: %s run_as %q", describe(task), task.RunAs)
	}
	if b, err := os.ReadFile(filepath.Join(c.SharedDir(), "task_outputs", id+".out")); err != nil || string(b) != "0\n" {
		t.Errorf("root task printed %q (%v), want 0", b, err)
	}
}

// TestDockerTaskRunsAsItsOwner: a Docker task of an account with unix_user
// 4242:4242 runs as uid 4242 inside its container (busybox knows no such
// user), and its stdout file belongs to uid 4242.
func TestDockerTaskRunsAsItsOwner(t *testing.T) {
	requireDocker(t, busyboxImage)
	c, runner := startDockerSingle(t, "hkt-runas")
	env := envName("hkt-runas")
	createEnvironment(t, c, busyboxImage, env)
	createTar(t, c, env)
	alice := createRunAsAccount(t, c, api.UserRequest{Name: "alice", Role: fsm.RoleUser, UnixUser: "4242:4242"})
	id := submitAs(t, c, alice, api.SubmitRequest{Command: "sh", Arguments: []string{"-c", "id -u; id -g"}, ContainerName: &env, Targets: []string{runner}})
	task := waitCompleted(t, c, id)
	if task.RunAs != "4242:4242" {
		t.Errorf("run_as %q, want 4242:4242", task.RunAs)
	}
	out := filepath.Join(c.SharedDir(), "task_outputs", filepath.Base(task.StdoutPath))
	if b, err := os.ReadFile(out); err != nil || string(b) != "4242\n4242\n" {
		t.Errorf("the task printed %q (%v), want uid and gid 4242", b, err)
	}
	if uid, gid := ownerOf(t, out); uid != 4242 || gid != 4242 {
		t.Errorf("stdout file owned by %d:%d, want 4242:4242", uid, gid)
	}
}
