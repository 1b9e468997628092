//go:build integration

package integration

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/fsm"
	"github.com/hakuriver/hakuriver-ha/integration/harness"
)

// grantRunAsRoot gives account name the run_as_root policy, as the admin.
func grantRunAsRoot(t *testing.T, c *harness.Cluster, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), harness.WriteTimeout)
	defer cancel()
	if a, err := c.CallAs(ctx, 0, http.MethodPatch, "/api/users/"+name, c.AdminToken(), api.UserPatch{Policy: &fsm.Policy{RunAsRoot: true}}); err != nil || a.Status != http.StatusOK {
		t.Fatalf("grant %s run_as_root: %v %s", name, err, a)
	}
}

// printedBy waits for task id to complete and returns its stdout file's
// content.
func printedBy(t *testing.T, c *harness.Cluster, id string) (api.Task, string) {
	t.Helper()
	task := c.WaitFinal(id, dockerTaskTimeout)
	if task.Status != "completed" {
		t.Fatalf("task %s: %s", id, describe(task))
	}
	b, err := os.ReadFile(filepath.Join(c.SharedDir(), "task_outputs", filepath.Base(task.StdoutPath)))
	if err != nil {
		t.Fatalf("stdout of task %s: %v", id, err)
	}
	return task, string(b)
}

// TestNativeTaskWithoutUnixUserIsNotRoot plays an account with no
// unix_user and no policy on a runner without runner_user (the default;
// the runner runs as root): its native task runs as nobody (65534:65534),
// not as the runner's root. With the run_as_root policy granted it runs as
// the runner's own user (root), as does an anonymous caller's task in
// compatibility mode (--anonymous-role user: the original HakuRiver), and
// the bootstrap admin's, who has the policy from the start.
func TestNativeTaskWithoutUnixUserIsNotRoot(t *testing.T) {
	c := startCluster(t, harness.Options{Replicas: 1, HeartbeatInterval: hbInterval, HeartbeatTimeoutFactor: hbFactor, AnonymousRole: "user"})
	c.StartRunner("rr1", twoCores)
	plain := createRunAsAccount(t, c, api.UserRequest{Name: "plain", Role: fsm.RoleUser})

	task, out := printedBy(t, c, submitAs(t, c, plain, inRoot(shell("id -u; id -g"))))
	if out != "65534\n65534\n" || task.AllowRoot || task.RunAs != "" {
		t.Errorf("plain's task printed %q (allow_root %v run_as %q), want nobody 65534:65534", out, task.AllowRoot, task.RunAs)
	}

	grantRunAsRoot(t, c, "plain")
	task, out = printedBy(t, c, submitAs(t, c, plain, inRoot(shell("id -u"))))
	if out != "0\n" || !task.AllowRoot {
		t.Errorf("plain's task with run_as_root printed %q (allow_root %v), want 0", out, task.AllowRoot)
	}

	// The bootstrap admin has run_as_root from the start (recorded on the
	// account), so the cluster's operator runs as before accounts existed.
	ctx, cancel := context.WithTimeout(context.Background(), harness.ReadTimeout)
	a, err := c.CallAs(ctx, 0, http.MethodGet, "/api/users/admin", c.AdminToken(), nil)
	cancel()
	var admin fsm.User
	if err != nil || a.Status != http.StatusOK || a.Decode(&admin) != nil || !admin.Policy.RunAsRoot {
		t.Errorf("the bootstrap admin: %v %s, want the run_as_root policy", err, a)
	}
	task, out = printedBy(t, c, submitAs(t, c, c.AdminToken(), inRoot(shell("id -u"))))
	if out != "0\n" || !task.AllowRoot {
		t.Errorf("the bootstrap admin's task printed %q (allow_root %v), want 0", out, task.AllowRoot)
	}

	task, out = printedBy(t, c, submitAs(t, c, "", inRoot(shell("id -u"))))
	if out != "0\n" || !task.AllowRoot {
		t.Errorf("anonymous task printed %q (allow_root %v), want 0 as in the original HakuRiver", out, task.AllowRoot)
	}
}

// TestDockerTaskWithoutUnixUserIsNotRoot: a Docker task (busybox, whose
// user is root) of an account with no unix_user and no policy runs as
// nobody (65534:65534) inside its container, on a runner without
// runner_user; with the run_as_root policy granted it keeps the image's
// user (root). A runner with runner_user 4243:4244 runs the account's
// task as that.
func TestDockerTaskWithoutUnixUserIsNotRoot(t *testing.T) {
	requireDocker(t, busyboxImage)
	c, runner := startDockerSingle(t, "hkt-noroot")
	env := envName("hkt-noroot")
	createEnvironment(t, c, busyboxImage, env)
	createTar(t, c, env)
	plain := createRunAsAccount(t, c, api.UserRequest{Name: "plain", Role: fsm.RoleUser})
	req := func(targets ...string) api.SubmitRequest {
		return api.SubmitRequest{Command: "sh", Arguments: []string{"-c", "id -u; id -g"}, ContainerName: &env, Targets: targets}
	}

	_, out := printedBy(t, c, submitAs(t, c, plain, req(runner)))
	if out != "65534\n65534\n" {
		t.Errorf("plain's Docker task printed %q, want nobody 65534:65534 (not the image's root)", out)
	}

	other := runner + "-ru"
	t.Cleanup(func() { harness.RemoveRunnerContainers(t, other) })
	opts := dockerRunner
	opts.Args = []string{"--runner-user", "4243:4244"}
	c.StartRunner(other, opts)
	_, out = printedBy(t, c, submitAs(t, c, plain, req(other)))
	if out != "4243\n4244\n" {
		t.Errorf("plain's Docker task on a runner with runner_user 4243:4244 printed %q", out)
	}

	grantRunAsRoot(t, c, "plain")
	_, out = printedBy(t, c, submitAs(t, c, plain, req(runner)))
	if out != "0\n0\n" {
		t.Errorf("plain's Docker task with run_as_root printed %q, want the image's root", out)
	}
}
