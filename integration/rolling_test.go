//go:build integration

package integration

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/integration/harness"
)

// Bounds of TestRollingUpgradeUnderLoad.
const (
	// rollClients submit concurrently, each at most rollPerClient times,
	// pausing rollPace between two submits; every rollDockerEvery-th
	// submit is a Docker task.
	rollClients     = 8
	rollPerClient   = 200
	rollPace        = 400 * time.Millisecond
	rollDockerEvery = 8
	// rollHBFactor × 1 s heartbeats: a runner restart must end within this
	// heartbeat timeout, or its tasks are lost (as in production, where
	// it is 5 s × 6).
	rollHBFactor = 10
	// rollStepProgress bounds the wait for every client to be served again
	// after a step.
	rollStepProgress = 30 * time.Second
)

// TestRollingUpgradeUnderLoad upgrades a cluster of 3 replicas and 2
// runners (one native-only, one with Docker) the way the README says,
// while 8 clients submit tasks with request_ids and two long tasks (one
// native, one container) run: each replica in turn is stopped with SIGTERM
// and started from a new binary (the same build copied to another path,
// checked through /proc/PID/exe), the leader last after `cluster
// transfer-leadership` to an upgraded replica; then each runner. Between
// steps `cluster wait-healthy` decides when to go on. Checked: every
// acknowledged submit is exactly one task on every replica and completed,
// each ran exactly once (its token appears once in shared storage), the
// long tasks kept their process and container across their runner's
// restart and completed, each client saw at most one retryable error per
// restart, and no process logged an ERROR line.
func TestRollingUpgradeUnderLoad(t *testing.T) {
	requireDocker(t, busyboxImage)
	newBin := copyBinary(t, hostBin)
	suffix := uniqueSuffix()
	nat, dock := "roll-n-"+suffix, "roll-d-"+suffix
	c := startCluster(t, harness.Options{HeartbeatInterval: 1, HeartbeatTimeoutFactor: rollHBFactor})
	c.StartRunner(nat, harness.RunnerOptions{Cores: 4, Memory: "4G", NoDocker: true})
	c.StartRunner(dock, harness.RunnerOptions{Cores: 4, Memory: "4G"})
	t.Cleanup(func() { harness.RemoveRunnerContainers(t, dock) })
	env := envName("hkt-roll")
	createEnvironment(t, c, busyboxImage, env)
	createTar(t, c, env)

	// Tasks leave their token in shared_data/roll, which containers see as
	// /shared/roll.
	marks := sharedDir(t, c, "shared_data/roll")
	long := startLongTasks(t, c, marks, env, nat, dock)

	load := c.StartLoad(harness.LoadOptions{Clients: rollClients, Pace: rollPace, MaxPerClient: rollPerClient,
		Request: func(k, n int) api.SubmitRequest { return rollRequest(k, n, env, dock, marks) }})
	if err := load.WaitEach(2, rollStepProgress); err != nil {
		t.Fatalf("clients before the upgrade: %v", err)
	}
	started := time.Now()
	var steps []rollStep
	step := func(what string, do func()) {
		t.Helper()
		s := rollStep{what: what, begin: time.Now()}
		do()
		s.end = time.Now()
		steps = append(steps, s)
		if err := load.WaitEach(1, rollStepProgress); err != nil {
			t.Fatalf("clients after %s: %v", what, err)
		}
	}
	for _, i := range upgradeOrder(t, c) {
		id := c.Replica(i).ID
		step("replica "+id, func() { upgradeReplica(t, c, i, newBin) })
	}
	for _, name := range []string{nat, dock} {
		step("runner "+name, func() { upgradeRunner(t, c, name, newBin) })
	}
	upgradeTook := time.Since(started)
	long.checkSurvived(t, c)
	res := load.Stop()
	stopped := time.Now()

	for _, err := range res.Failures {
		t.Error(err)
	}
	reqs := map[string][]string{}
	var ids []string
	for _, a := range res.Acks {
		reqs[a.RequestID] = slices.Sorted(slices.Values(a.TaskIDs))
		ids = append(ids, a.TaskIDs...)
	}
	long.release(t)
	ids = append(ids, long.native, long.docker)
	tasks := c.WaitAllFinal(ids, 2*time.Minute)
	requireAll(t, tasks, "completed")
	logStderr(t, c, tasks)
	checkTasks(t, c, reqs, map[string]bool{long.native: true, long.docker: true}, 0, 1, 2)
	checkTokens(t, marks, reqs)
	long.checkRanOnce(t)
	checkRetryable(t, res, steps, started, stopped)
	for i := range c.N() {
		if exe := c.Replica(i).Exe(); exe != newBin {
			t.Errorf("replica %s runs %q, want the new binary %s", c.Replica(i).ID, exe, newBin)
		}
	}
	for _, name := range []string{nat, dock} {
		if exe := c.Runner(name).Exe(); exe != newBin {
			t.Errorf("runner %s runs %q, want the new binary %s", name, exe, newBin)
		}
	}
	var logs []string
	for i := range c.N() {
		logs = append(logs, c.Replica(i).LogPath())
	}
	logs = append(logs, c.Runner(nat).LogPath(), c.Runner(dock).LogPath())
	checkNoErrorLines(t, logs)
	gap, at := res.MaxGap(started, stopped)
	t.Logf("rolling upgrade of 3 replicas and 2 runners took %s; %d submits acknowledged (%d sent), %d retryable errors; longest time without an acknowledged submit %s (from %s)",
		upgradeTook.Round(time.Millisecond), len(res.Acks), res.Sent, len(res.Retryable), gap.Round(time.Millisecond), at.Format("15:04:05.000"))
}

// copyBinary copies bin to a new path: "the new version" of an upgrade.
func copyBinary(t *testing.T, bin string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "new")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "hakuriver")
	src, err := os.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(out, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	return out
}

// rollRequest is client k's n-th submit: a task that appends its request
// ID to its own file under marks, natively or (every rollDockerEvery-th)
// in a container of env on runner dock (the other runner has no Docker:
// it would run the container task natively).
func rollRequest(k, n int, env, dock, marks string) api.SubmitRequest {
	reqID := fmt.Sprintf("roll-c%d-%d", k, n)
	if (k+n)%rollDockerEvery == 0 {
		return api.SubmitRequest{Command: "sh", Arguments: []string{"-c", fmt.Sprintf("echo %[1]s >> /shared/roll/%[1]s", reqID)},
			ContainerName: &env, Targets: []string{dock}, RequestID: reqID}
	}
	req := shell(fmt.Sprintf("echo %[1]s >> %[2]s/%[1]s", reqID, marks))
	req.RequestID = reqID
	return req
}

// rollStep is one restart of the upgrade.
type rollStep struct {
	what       string
	begin, end time.Time
}

// upgradeOrder returns the replicas in the order to upgrade them: the
// followers, then the leader.
func upgradeOrder(t *testing.T, c *harness.Cluster) []int {
	t.Helper()
	leader := c.WaitLeader(harness.LeaderTimeout)
	return append(c.Followers(), leader)
}

// upgradeReplica moves leadership away from replica i when it leads (to an
// upgraded replica), stops it with SIGTERM, starts it from newBin and waits
// until `cluster wait-healthy` says the group has caught up.
func upgradeReplica(t *testing.T, c *harness.Cluster, i int, newBin string) {
	t.Helper()
	if l := c.WaitLeader(harness.LeaderTimeout); l == i {
		to := ""
		for j := range c.N() {
			if j != i && c.Replica(j).Exe() == newBin {
				to = c.Replica(j).ID
			}
		}
		r := c.CLIVia(nil, 30*time.Second, "", "cluster", "transfer-leadership", "--to", to, "--token-file", c.TokenFile())
		if r.Code != 0 {
			t.Fatalf("transfer leadership away from %s: %s", c.Replica(i).ID, r)
		}
		c.WaitNewLeader(i, harness.LeaderTimeout)
	}
	if err := c.Terminate(i); err != nil {
		t.Fatalf("stop replica %s: %v\n%s", c.Replica(i).ID, err, c.LogTail(i, 30))
	}
	c.SetBinary(i, newBin)
	c.Restart(i)
	// At once, before it has heard from the leader: a valid token is not
	// refused.
	ctx, cancel := context.WithTimeout(context.Background(), harness.WriteTimeout)
	a, err := c.CallAs(ctx, i, http.MethodGet, "/api/auth/whoami", c.AdminToken(), nil)
	cancel()
	if err != nil || a.Status != http.StatusOK {
		t.Errorf("whoami on %s just restarted: %v %s, want 200", c.Replica(i).ID, err, a)
	}
	waitHealthy(t, c)
}

// upgradeRunner stops runner name with SIGTERM, starts it from newBin and
// waits until it heart-beats again.
func upgradeRunner(t *testing.T, c *harness.Cluster, name, newBin string) {
	t.Helper()
	if err := c.TerminateRunner(name); err != nil {
		t.Fatalf("stop runner %s: %v", name, err)
	}
	c.SetRunnerBinary(name, newBin)
	c.RestartRunner(name)
	waitHealthy(t, c, "--runner", name)
}

// waitHealthy runs `cluster wait-healthy` with args and fails unless it
// says healthy within a minute.
func waitHealthy(t *testing.T, c *harness.Cluster, args ...string) {
	t.Helper()
	r := c.CLIVia(nil, 90*time.Second, "", append([]string{"-o", "json", "cluster", "wait-healthy", "--timeout", "60s"}, args...)...)
	var rep struct {
		Healthy bool    `json:"healthy"`
		Waited  float64 `json:"waited_seconds"`
		Leader  string  `json:"leader"`
	}
	if r.Code != 0 || r.Decode(&rep) != nil || !rep.Healthy {
		t.Fatalf("cluster wait-healthy %v: %s", args, r)
	}
	t.Logf("wait-healthy %v: healthy after %.1f s, leader %s", args, rep.Waited, rep.Leader)
}

// longTasks are the two tasks that run through the whole upgrade.
type longTasks struct {
	marks          string
	native, docker string
	pid            int
	pidStart       int64
	container      string // ID and start time of the Docker task's container
}

// longScript appends "start" to dir/name, waits for dir/release, then
// appends "done".
func longScript(dir, name string) string {
	return fmt.Sprintf(`echo start >> %[1]s/%[2]s; echo $$ > %[1]s/%[2]s.pid; while [ ! -e %[1]s/release ]; do sleep 0.2; done; echo done >> %[1]s/%[2]s`, dir, name)
}

// startLongTasks starts the long native task on runner nat and the long
// container task on runner dock, and waits until both run.
func startLongTasks(t *testing.T, c *harness.Cluster, marks, env, nat, dock string) *longTasks {
	t.Helper()
	l := &longTasks{marks: marks}
	l.native = submitOne(t, c, 0, onTarget(shell(longScript(marks, "long-native")), nat))
	l.docker = submitOne(t, c, 0, api.SubmitRequest{Command: "sh", Arguments: []string{"-c", longScript("/shared/roll", "long-docker")},
		ContainerName: &env, Targets: []string{dock}})
	killOnFailure(t, c, l.native, l.docker)
	c.WaitStatus(l.native, "running", taskTimeout)
	c.WaitStatus(l.docker, "running", dockerTaskTimeout)
	l.pid, l.pidStart = readPID(t, c, filepath.Join(marks, "long-native.pid"))
	var err error
	if l.container, err = harness.Docker("container", "inspect", "--format", "{{.Id}} {{.State.StartedAt}}", "hakuriver-task-"+l.docker); err != nil {
		t.Fatal(err)
	}
	return l
}

// checkSurvived checks that both long tasks still run, in the same process
// and the same container as before the upgrade.
func (l *longTasks) checkSurvived(t *testing.T, c *harness.Cluster) {
	t.Helper()
	leader := c.WaitLeader(harness.LeaderTimeout)
	for _, id := range []string{l.native, l.docker} {
		if got, err := c.Task(leader, id); err != nil || got.Status != "running" {
			t.Errorf("long task %s after the upgrade: %+v %v, want running", id, got.Status, err)
		}
	}
	if harness.ProcessGone(l.pid, l.pidStart) {
		t.Errorf("the long native task's process %d is gone after its runner's restart", l.pid)
	}
	now, err := harness.Docker("container", "inspect", "--format", "{{.Id}} {{.State.StartedAt}}", "hakuriver-task-"+l.docker)
	if err != nil || now != l.container {
		t.Errorf("the long container task's container: %q %v, want the same as before the upgrade (%q)", now, err, l.container)
	}
}

// release lets the long tasks end.
func (l *longTasks) release(t *testing.T) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(l.marks, "release"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
}

// checkRanOnce checks that each long task started once and ended once.
func (l *longTasks) checkRanOnce(t *testing.T) {
	t.Helper()
	for _, name := range []string{"long-native", "long-docker"} {
		b, err := os.ReadFile(filepath.Join(l.marks, name))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if got := strings.Fields(string(b)); !slices.Equal(got, []string{"start", "done"}) {
			t.Errorf("%s left %q, want one start and one done", name, got)
		}
	}
}

// checkTokens checks that every acknowledged request's task left its token
// exactly once, and that no other load task ran.
func checkTokens(t *testing.T, marks string, reqs map[string][]string) {
	t.Helper()
	for reqID := range reqs {
		b, err := os.ReadFile(filepath.Join(marks, reqID))
		if err != nil {
			t.Errorf("request %s: %v", reqID, err)
			continue
		}
		if got := strings.Fields(string(b)); len(got) != 1 || got[0] != reqID {
			t.Errorf("request %s ran %d times: %q", reqID, len(got), got)
		}
	}
	ents, err := os.ReadDir(marks)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		name := e.Name()
		if _, ok := reqs[name]; !ok && strings.HasPrefix(name, "roll-") {
			t.Errorf("task of request %s ran but the request was never acknowledged", name)
		}
	}
	t.Logf("%d acknowledged requests each ran exactly once", len(reqs))
}

// checkRetryable checks that each client saw at most one retryable error
// per restart: the errors are counted per client in windows, one before
// the first step and one from the start of each step to the start of the
// next (the last to the end of the load).
func checkRetryable(t *testing.T, res harness.LoadResult, steps []rollStep, started, stopped time.Time) {
	t.Helper()
	type window struct {
		what  string
		begin time.Time
	}
	ws := []window{{"before the upgrade", time.Time{}}}
	for _, s := range steps {
		ws = append(ws, window{s.what, s.begin})
	}
	counts := map[[2]int]int{}
	for _, e := range res.Retryable {
		w := 0
		for k := range ws {
			if !e.At.Before(ws[k].begin) {
				w = k
			}
		}
		counts[[2]int{e.Client, w}]++
		t.Logf("client %d, %s: retryable error from %s at %s: %s", e.Client, ws[w].what, e.Host, e.At.Format("15:04:05.000"), e.Err)
	}
	for key, n := range counts {
		if n > 1 {
			t.Errorf("client %d saw %d retryable errors during %s, want at most 1", key[0], n, ws[key[1]].what)
		}
	}
	for k, s := range steps {
		end := stopped
		if k+1 < len(steps) {
			end = steps[k+1].begin
		}
		gap, _ := res.MaxGap(s.begin, end)
		t.Logf("%s: took %s; longest time without an acknowledged submit %s", s.what, s.end.Sub(s.begin).Round(time.Millisecond), gap.Round(time.Millisecond))
	}
}

// checkNoErrorLines fails for every ERROR line in the logs: a clean
// restart is not an error. WARN lines are listed.
func checkNoErrorLines(t *testing.T, logs []string) {
	t.Helper()
	for _, path := range logs {
		f, err := os.Open(path)
		if err != nil {
			t.Error(err)
			continue
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.Contains(line, "level=ERROR"):
				t.Errorf("%s: %s", filepath.Base(filepath.Dir(path)), line)
			case strings.Contains(line, "level=WARN"):
				t.Logf("WARN %s: %s", filepath.Base(filepath.Dir(path)), line)
			}
		}
		f.Close()
	}
}

// logStderr logs the stderr of the first tasks that did not complete.
func logStderr(t *testing.T, c *harness.Cluster, tasks map[string]api.Task) {
	t.Helper()
	n := 0
	for id, task := range tasks {
		if task.Status == "completed" || n >= 5 {
			continue
		}
		n++
		ctx, cancel := context.WithTimeout(context.Background(), harness.ReadTimeout)
		a, err := c.Call(ctx, 0, http.MethodGet, "/api/task/"+id+"/stderr", nil)
		cancel()
		t.Logf("stderr of %s: %v %s", describe(task), err, a)
	}
}

// TestRestartedReplicaChecksTokensWithTheLeader: a replica restarted from
// its data dir knows no account until it has heard from a leader. Started
// while the leader is frozen, it gets a valid token at once: it must not
// answer 401 (a client takes that as final) but wait for the new leader to
// check the token, and a wrong token still gets 401.
func TestRestartedReplicaChecksTokensWithTheLeader(t *testing.T) {
	// A long leader wait: the election must fit in it on a loaded machine
	// (without a leader the answer is 503, never 401).
	c := startCluster(t, harness.Options{LeaderWaitSeconds: 30})
	leader := c.WaitLeader(harness.LeaderTimeout)
	f := c.Followers()[0]
	c.WaitSameApplied(catchUpTimeout, 0, 1, 2)
	if err := c.Terminate(f); err != nil {
		t.Fatal(err)
	}
	c.Stop(leader)
	defer c.Cont(leader)
	c.Restart(f)
	for _, k := range []struct {
		token string
		want  int
	}{{c.AdminToken(), http.StatusOK}, {"hkr_" + strings.Repeat("x", 43), http.StatusUnauthorized}} {
		ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
		a, err := c.CallAs(ctx, f, http.MethodGet, "/api/auth/whoami", k.token, nil)
		cancel()
		if err != nil || a.Status != k.want {
			t.Errorf("whoami on %s restarted without a leader: %v %s, want %d", c.Replica(f).ID, err, a, k.want)
		} else {
			t.Logf("whoami on %s restarted without a leader: %s", c.Replica(f).ID, a)
		}
	}
}
