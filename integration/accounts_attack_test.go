//go:build integration

package integration

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/cluster/auth"
	"github.com/hakuriver/hakuriver-ha/fsm"
	"github.com/hakuriver/hakuriver-ha/integration/harness"
)

// callAs makes one call through replica i with an account's token ("" =
// none) and fails on a transport error.
func callAs(t *testing.T, c *harness.Cluster, i int, method, path, bearer string, body any) harness.Answer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), harness.WriteTimeout)
	defer cancel()
	a, err := c.CallAs(ctx, i, method, path, bearer, body)
	if err != nil {
		t.Fatalf("%s %s on %s: %v", method, path, c.Replica(i).ID, err)
	}
	return a
}

// createAccount creates user name with role as the admin, and a token of
// theirs.
func createAccount(t *testing.T, c *harness.Cluster, i int, name string, role fsm.Role) api.TokenResponse {
	t.Helper()
	if a := callAs(t, c, i, "POST", "/api/users", c.AdminToken(), api.UserRequest{Name: name, Role: role}); a.Status != http.StatusCreated {
		t.Fatalf("create user %s: %s", name, a)
	}
	a := callAs(t, c, i, "POST", "/api/tokens", c.AdminToken(), api.TokenRequest{User: name, Name: "test"})
	var tr api.TokenResponse
	if a.Status != http.StatusCreated || a.Decode(&tr) != nil || !auth.LooksLikeSecret(tr.Token) {
		t.Fatalf("create a token of %s: %s", name, a)
	}
	return tr
}

// TestUserCannotActOnOthers: with real replicas and a native runner, user
// bob's token cannot kill or pause alice's task, read its logs, change
// the membership, create or promote accounts, or take alice's tokens,
// through any replica; alice's task keeps running and the cluster is
// unchanged. Then revoking alice's token on the leader makes it fail on
// every replica as soon as that replica has applied the revocation.
func TestUserCannotActOnOthers(t *testing.T) {
	runner := "acct-" + uniqueSuffix()
	c := startWithRunners(t, runnerSpec{runner, twoCores})
	leader := c.WaitLeader(harness.LeaderTimeout)
	alice := createAccount(t, c, leader, "alice", fsm.RoleUser)
	bob := createAccount(t, c, leader, "bob", fsm.RoleUser)

	// Alice has no unix_user and no run_as_root: her task runs as nobody,
	// in / (inRoot).
	a := callAs(t, c, leader, "POST", "/api/submit", alice.Token, onTarget(inRoot(native("sleep", "300")), runner))
	var sr api.SubmitResponse
	if a.Status != http.StatusAccepted || a.Decode(&sr) != nil || len(sr.TaskIDs) != 1 {
		t.Fatalf("alice's submit: %s", a)
	}
	id := sr.TaskIDs[0]
	killOnFailure(t, c, id)
	if task := c.WaitStatus(id, "running", taskTimeout); task.Owner != "alice" {
		t.Fatalf("alice's task has owner %q", task.Owner)
	}
	before, err := c.Status(leader)
	if err != nil {
		t.Fatal(err)
	}

	promote := fsm.RoleAdmin
	attacks := []struct {
		method, path string
		body         any
		want         int
	}{
		{"POST", "/api/kill/" + id, nil, http.StatusForbidden},
		{"POST", "/api/command/" + id + "/pause", nil, http.StatusForbidden},
		{"GET", "/api/task/" + id + "/stdout", nil, http.StatusForbidden},
		{"POST", "/api/cluster/join", api.JoinRequest{ID: "evil", Raft: c.Replica(0).Raft}, http.StatusForbidden},
		{"DELETE", "/api/cluster/peers/h3", nil, http.StatusForbidden},
		{"POST", "/api/cluster/leadership-transfer", nil, http.StatusForbidden},
		{"POST", "/api/users", api.UserRequest{Name: "mallory", Role: fsm.RoleAdmin}, http.StatusForbidden},
		{"PATCH", "/api/users/bob", api.UserPatch{Role: &promote}, http.StatusForbidden},
		{"POST", "/api/nodes/" + runner + "/drain", nil, http.StatusForbidden},
		{"POST", "/api/tokens", api.TokenRequest{User: "alice"}, http.StatusForbidden},
		{"GET", "/api/tokens?user=alice", nil, http.StatusForbidden},
		// Another user's token is reported as missing.
		{"DELETE", "/api/tokens/" + alice.TokenID, nil, http.StatusNotFound},
	}
	for i := range c.N() {
		for _, at := range attacks {
			a := callAs(t, c, i, at.method, at.path, bob.Token, at.body)
			if a.Status != at.want {
				t.Errorf("bob: %s %s through %s: %s, want %d", at.method, at.path, c.Replica(i).ID, a, at.want)
			}
			if at.want == http.StatusForbidden && a.Status == http.StatusForbidden && strings.Contains(string(a.Body), "needs role") &&
				!strings.Contains(string(a.Body), "needs role operator") && !strings.Contains(string(a.Body), "needs role admin") {
				t.Errorf("bob: %s %s: 403 %s names no role above user", at.method, at.path, a.Body)
			}
		}
	}
	// Nothing happened: the task runs, the cluster and the accounts are as
	// they were.
	time.Sleep(time.Second)
	if task, err := c.Task(leader, id); err != nil || task.Status != "running" {
		t.Errorf("alice's task after bob's attempts: %+v %v", task, err)
	}
	after := c.WaitVoters(3, harness.LeaderTimeout)
	if after.LeaderID != before.LeaderID || after.Term != before.Term {
		t.Errorf("leadership changed: %s term %d → %s term %d", before.LeaderID, before.Term, after.LeaderID, after.Term)
	}
	for _, r := range after.Replicas {
		if r.ID == "evil" {
			t.Errorf("bob added a voter: %+v", after.Replicas)
		}
	}
	if a := callAs(t, c, leader, "GET", "/api/users/mallory", c.AdminToken(), nil); a.Status != http.StatusNotFound {
		t.Errorf("mallory exists: %s", a)
	}
	var who api.WhoAmI
	if a := callAs(t, c, leader, "GET", "/api/auth/whoami", bob.Token, nil); a.Decode(&who) != nil || who.Role != fsm.RoleUser {
		t.Errorf("bob after the attempts: %s", a)
	}
	if a := callAs(t, c, leader, "GET", "/api/auth/whoami", alice.Token, nil); a.Status != http.StatusOK {
		t.Errorf("alice's token after bob's attempts: %s", a)
	}
	if n, ok := lastAudit(t, c, leader); ok && strings.Contains(n, "bob") {
		t.Errorf("a refused call of bob was audited: %s", n)
	}

	// Alice's own kill works: the refusals were about bob.
	if a := callAs(t, c, leader, "POST", "/api/kill/"+id, alice.Token, nil); a.Status != http.StatusAccepted {
		t.Fatalf("alice kills her task: %s", a)
	}
	if task := c.WaitFinal(id, taskTimeout); task.Status != "killed" {
		t.Errorf("alice's task after her kill: %s", task.Status)
	}

	t.Run("RevokeIsEverywhere", func(t *testing.T) { testRevokeEverywhere(t, c.For(t), alice) })
}

// lastAudit returns the user and action of the newest audit record.
func lastAudit(t *testing.T, c *harness.Cluster, i int) (string, bool) {
	t.Helper()
	var page api.AuditPage
	a := callAs(t, c, i, "GET", "/api/audit?limit=1000", c.AdminToken(), nil)
	if a.Status != http.StatusOK || a.Decode(&page) != nil {
		t.Fatalf("audit: %s", a)
	}
	if len(page.Records) == 0 {
		return "", false
	}
	r := page.Records[len(page.Records)-1]
	return r.User + " " + r.Action + " " + r.Target, true
}

// testRevokeEverywhere revokes alice's token through the leader and polls
// every replica: each must refuse the token (401) as soon as its applied
// index has reached the leader's commit index at the time the revocation
// returned, and all must within a short bound.
func testRevokeEverywhere(t *testing.T, c *harness.Cluster, alice api.TokenResponse) {
	leader := c.WaitLeader(harness.LeaderTimeout)
	for i := range c.N() {
		if a := callAs(t, c, i, "GET", "/api/auth/whoami", alice.Token, nil); a.Status != http.StatusOK {
			t.Fatalf("alice's token on %s before the revocation: %s", c.Replica(i).ID, a)
		}
	}
	if a := callAs(t, c, leader, "DELETE", "/api/tokens/"+alice.TokenID, c.AdminToken(), nil); a.Status != http.StatusNoContent {
		t.Fatalf("revoke: %s", a)
	}
	revokedAt := time.Now()
	// The leader applied the revocation before it answered.
	if a := callAs(t, c, leader, "GET", "/api/auth/whoami", alice.Token, nil); a.Status != http.StatusUnauthorized {
		t.Fatalf("the leader accepts a token it just revoked: %s", a)
	}
	st, err := c.Status(leader)
	if err != nil {
		t.Fatal(err)
	}
	target := st.CommitIndex
	const bound = 5 * time.Second
	var wg sync.WaitGroup
	for i := range c.N() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			polls := 0
			for {
				polls++
				ctx, cancel := context.WithTimeout(context.Background(), harness.ReadTimeout)
				sa, err := c.Call(ctx, i, "GET", "/api/cluster", nil)
				applied := uint64(0)
				var cs api.ClusterStatus
				if err == nil && sa.Decode(&cs) == nil {
					applied = cs.AppliedIndex
				}
				a, err := c.CallAs(ctx, i, "GET", "/api/auth/whoami", alice.Token, nil)
				cancel()
				switch {
				case err != nil:
				case a.Status == http.StatusUnauthorized:
					t.Logf("%s refuses the revoked token %s after the revocation returned (%d polls; applied %d, target %d)",
						c.Replica(i).ID, time.Since(revokedAt).Round(time.Millisecond), polls, applied, target)
					return
				case applied >= target:
					t.Errorf("%s applied %d >= %d (the revocation) but still accepts the token: %s", c.Replica(i).ID, applied, target, a)
					return
				}
				if time.Since(revokedAt) > bound {
					t.Errorf("%s still accepts the revoked token %s after the revocation (applied %d, target %d)", c.Replica(i).ID, bound, applied, target)
					return
				}
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	wg.Wait()
	// A later login with it fails too.
	if a := callAs(t, c, leader, "POST", "/api/auth/login", "", api.LoginRequest{Token: alice.Token}); a.Status != http.StatusUnauthorized {
		t.Errorf("login with a revoked token: %s", a)
	}
}

// taskProbeScript is what the container task runs: with host networking
// it reaches the API on 127.0.0.1 without any credentials, and prints the
// status of each call ($1: the API base URL, $2: a task ID to kill).
const taskProbeScript = `base=$1; victim=$2
st() { wget -S -q -O /dev/null "$@" 2>&1 | grep -m1 'HTTP/' | awk '{print $2}'; }
echo "GET /api/health $(st $base/api/health)"
echo "GET /api/tasks $(st $base/api/tasks)"
echo "GET /api/users $(st $base/api/users)"
echo "GET /api/task/$victim $(st $base/api/task/$victim/stdout)"
echo "POST /api/submit $(st --header 'Content-Type: application/json' --post-data '{"command":"echo","arguments":["pwned"]}' $base/api/submit)"
echo "POST /api/kill/$victim $(st --post-data '' $base/api/kill/$victim)"
echo "POST /api/users $(st --header 'Content-Type: application/json' --post-data '{"name":"mallory","role":"admin"}' $base/api/users)"
`

// TestContainerTaskWithoutTokenIsRefused runs a Docker task (busybox,
// host network, as task containers have by default) that calls the API
// on 127.0.0.1 with wget and no token: everything but the public health
// view answers 401, and another task it tries to kill keeps running.
// Before accounts (the original's open API) the same calls got 200 and
// 202: any task could submit work and kill any other task
// (TestContainerTaskOpenAPIBeforeAccounts shows it on that code).
func TestContainerTaskWithoutTokenIsRefused(t *testing.T) {
	requireDocker(t, busyboxImage)
	c := startCluster(t, harness.Options{Replicas: 1, HeartbeatInterval: hbInterval, HeartbeatTimeoutFactor: hbFactor})
	got, victim := probeFromContainer(t, c)
	want := map[string]string{
		"GET /api/health":         "200",
		"GET /api/tasks":          "401",
		"GET /api/users":          "401",
		"GET /api/task/<victim>":  "401",
		"POST /api/submit":        "401",
		"POST /api/kill/<victim>": "401",
		"POST /api/users":         "401",
	}
	for call, status := range want {
		if got[call] != status {
			t.Errorf("%s from inside the task: %q, want %s", call, got[call], status)
		}
	}
	if task, err := c.Task(0, victim); err != nil || task.Status != "running" {
		t.Errorf("the victim task after the probe: %+v %v", task, err)
	}
	tasks, err := c.Tasks(0)
	if err != nil {
		t.Fatal(err)
	}
	if len(tasks) != 2 {
		t.Errorf("the probe submitted work: %d tasks, want 2", len(tasks))
	}
}

// TestContainerTaskOpenAPIWithAnonymousOperators runs the probe of
// TestContainerTaskWithoutTokenIsRefused on a cluster whose anonymous
// callers act as operators (anonymous_role = "operator"): the open API of
// the original HakuRiver, and of this code before accounts (e9668d5 gave
// the same answers). There the task's calls without any credentials list
// the tasks (200), submit work (202) and kill another task (202), which
// then dies: the probe sees an open API when there is one, so the 401s of
// the default configuration are the accounts' doing.
func TestContainerTaskOpenAPIWithAnonymousOperators(t *testing.T) {
	requireDocker(t, busyboxImage)
	c := startCluster(t, harness.Options{Replicas: 1, AnonymousRole: "operator", HeartbeatInterval: hbInterval, HeartbeatTimeoutFactor: hbFactor})
	got, victim := probeFromContainer(t, c)
	for call, status := range map[string]string{"GET /api/tasks": "200", "POST /api/submit": "202", "POST /api/kill/<victim>": "202"} {
		if got[call] != status {
			t.Errorf("%s from inside the task with anonymous operators: %q, want %s", call, got[call], status)
		}
	}
	if task := c.WaitFinal(victim, taskTimeout); task.Status != "killed" {
		t.Errorf("the victim with anonymous operators: %s, want killed by the task", task.Status)
	}
}

// probeFromContainer starts a Docker runner, an environment of the
// busybox image and a native victim task on cluster c (one replica), runs
// taskProbeScript in a container task, and returns the status of each of
// its calls (by "METHOD path", the victim's ID written <victim>) and the
// victim's ID.
func probeFromContainer(t *testing.T, c *harness.Cluster) (map[string]string, string) {
	t.Helper()
	runner := "acct-dk-" + uniqueSuffix()
	t.Cleanup(func() { harness.RemoveRunnerContainers(t, runner) })
	c.StartRunner(runner, harness.RunnerOptions{Cores: 3, Memory: "4G"})
	env := envName("hkt-acct")
	createEnvironment(t, c, busyboxImage, env)
	createTar(t, c, env)

	victim := submitOne(t, c, 0, onTarget(native("sleep", "300"), runner))
	killOnFailure(t, c, victim)
	c.WaitStatus(victim, "running", taskTimeout)

	base := c.Replica(0).API
	if u, err := url.Parse(base); err != nil || !strings.HasPrefix(u.Host, "127.0.0.1:") {
		t.Fatalf("replica API %q is not on 127.0.0.1", base)
	}
	probe := submitCLI(t, c, []string{"--target", runner, "--container", env}, "sh", "-c", taskProbeScript, "probe", base, victim)
	t.Cleanup(func() { harness.RemoveContainers(t, "hakuriver-task-"+probe) })
	killOnFailure(t, c, probe)
	waitCompleted(t, c, probe)
	out, err := c.Stdout(0, probe)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("the task's calls:\n%s", out)
	got := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if i := strings.LastIndex(line, " "); i > 0 {
			got[strings.ReplaceAll(line[:i], victim, "<victim>")] = line[i+1:]
		}
	}
	return got, victim
}

// TestNoTokenSecretAtRest creates tokens on real replicas, writes past
// Raft's snapshot threshold so that every replica takes a snapshot, and
// scans every file under each replica's data dir (Raft log, stable store,
// snapshots) and its log for the secrets, in clear, as their base64 body,
// and as raw, hex and standard-base64 bytes: none may appear. The hash
// appears (a positive control: the scan reads the right files).
func TestNoTokenSecretAtRest(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 8,300 entries")
	}
	c := startCluster(t, harness.Options{LogLevel: "debug"})
	leader := c.WaitLeader(harness.LeaderTimeout)
	secrets := []string{c.AdminToken()}
	for _, u := range []string{"alice", "bob"} {
		secrets = append(secrets, createAccount(t, c, leader, u, fsm.RoleUser).Token)
	}
	a := callAs(t, c, leader, "POST", "/api/tokens", secrets[1], api.TokenRequest{Name: "ci", TTL: "1h"})
	var tr api.TokenResponse
	if a.Status != http.StatusCreated || a.Decode(&tr) != nil {
		t.Fatalf("alice's own token: %s", a)
	}
	secrets = append(secrets, tr.Token)
	// Use them once each, through a follower too, and log in with one.
	for _, s := range secrets {
		for i := range c.N() {
			c.Poll(10*time.Second, "the token on "+c.Replica(i).ID, func() (bool, string) {
				a := callAs(t, c, i, "GET", "/api/auth/whoami", s, nil)
				return a.Status == http.StatusOK, a.String()
			})
		}
	}
	if a := callAs(t, c, c.Followers()[0], "POST", "/api/auth/login", "", api.LoginRequest{Token: secrets[2]}); a.Status != http.StatusOK {
		t.Fatalf("login: %s", a)
	}

	// Raft snapshots every 8192 entries (checked every 15-30 s): write past
	// that with pending tasks.
	const entries = 8300
	fill(t, c, leader, entries)
	for i := range c.N() {
		c.Poll(90*time.Second, c.Replica(i).ID+" to take a snapshot", func() (bool, string) {
			n := 0
			files, err := c.DataFiles(i)
			if err != nil {
				return false, err.Error()
			}
			for _, f := range files {
				if strings.HasPrefix(f.Path, "snapshots"+string(filepath.Separator)) && filepath.Base(f.Path) == "state.bin" &&
					!strings.HasSuffix(filepath.Dir(f.Path), ".tmp") {
					n++
				}
			}
			return n > 0, fmt.Sprintf("%d files, no snapshot", len(files))
		})
	}

	type needle struct {
		what string
		b    []byte
	}
	var needles []needle
	for k, s := range secrets {
		body := strings.TrimPrefix(s, auth.SecretPrefix)
		raw, err := base64.RawURLEncoding.DecodeString(body)
		if err != nil || len(raw) != 32 {
			t.Fatalf("secret %d: body %q is not 32 bytes of base64url: %v", k, body, err)
		}
		needles = append(needles,
			needle{fmt.Sprintf("secret %d", k), []byte(s)},
			needle{fmt.Sprintf("secret %d base64 body", k), []byte(body)},
			needle{fmt.Sprintf("secret %d raw bytes", k), raw},
			needle{fmt.Sprintf("secret %d hex", k), []byte(hex.EncodeToString(raw))},
			needle{fmt.Sprintf("secret %d std base64", k), []byte(base64.StdEncoding.EncodeToString(raw))},
		)
	}
	scanned, nfiles := 0, 0
	for i := range c.N() {
		r := c.Replica(i)
		hashInSnapshot := false
		paths := []string{r.LogPath()}
		files, err := c.DataFiles(i)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			paths = append(paths, filepath.Join(r.DataDir(), f.Path))
		}
		for _, p := range paths {
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			scanned += len(b)
			nfiles++
			for _, n := range needles {
				if bytes.Contains(b, n.b) {
					t.Errorf("%s: %s holds %s", r.ID, p, n.what)
				}
			}
			if filepath.Base(p) == "state.bin" && bytes.Contains(b, []byte(auth.Hash(secrets[1]))) {
				hashInSnapshot = true
			}
		}
		if !hashInSnapshot {
			t.Errorf("%s: no snapshot holds alice's token hash: the scan did not see the accounts", r.ID)
		}
	}
	t.Logf("scanned %d files (%.1f MiB, snapshots included) on %d replicas for %d secrets in %d encodings", nfiles, float64(scanned)/(1<<20), c.N(), len(secrets), len(needles)/len(secrets))
}

// fill writes n entries (single-task submits that stay pending, there is
// no runner) through replica i with 16 clients.
func fill(t *testing.T, c *harness.Cluster, i, n int) {
	t.Helper()
	start := time.Now()
	var next, failed atomic.Int64
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) {
				ctx, cancel := context.WithTimeout(context.Background(), harness.WriteTimeout)
				a, _, err := c.Submit(ctx, i, api.SubmitRequest{Command: "true"})
				cancel()
				if err != nil || a.Status != http.StatusAccepted {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if f := failed.Load(); f > int64(n)/100 {
		t.Fatalf("fill: %d of %d submits failed", f, n)
	}
	t.Logf("fill: %d submits in %s", n, time.Since(start).Round(time.Millisecond))
}
