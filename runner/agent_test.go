package runner_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster"
	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/fsm"
	"github.com/hakuriver/hakuriver-ha/ops/certs"
	"github.com/hakuriver/hakuriver-ha/runner"
	"github.com/hakuriver/hakuriver-ha/runner/executor/native"
)

// shimBinary builds the hakuriver binary once for the native executor's
// per-task supervisor.
func shimBinary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("HAKURIVER_BIN"); p != "" {
		return p
	}
	out := filepath.Join(t.TempDir(), "hakuriver")
	cmd := exec.Command("go", "build", "-o", out, "../cmd/hakuriver")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build hakuriver: %v\n%s", err, b)
	}
	return out
}

func logger(t *testing.T) *slog.Logger {
	if !testing.Verbose() {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, nil))
}

// TestAgentRunsTaskAndSurvivesRestart runs a real host replica and a real
// runner in-process: a submitted native task runs and completes with its
// output in shared storage; the cluster token is enforced; a task running
// while the runner restarts completes with its real exit code.
func TestAgentRunsTaskAndSurvivesRestart(t *testing.T) {
	shim := shimBinary(t)
	shared := t.TempDir()
	h := startTestHost(t, shared, nil)
	ctx := context.Background()

	tmp, state := t.TempDir(), t.TempDir()
	start := func() *runner.Agent {
		return startNativeRunner(t, h, []string{shim, "runner-shim"}, shared, state, tmp, "hakuriver-agent-test", nil)
	}
	a := start()
	cc := api.DefaultClientConfig()
	cc.Hosts = []string{h.APIURL()}
	c, err := api.NewClient(cc)
	if err != nil {
		t.Fatal(err)
	}
	wait := func(id, want string) api.Task {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			tk, err := c.Status(ctx, id)
			if err == nil && string(tk.Status) == want {
				return tk
			}
			time.Sleep(50 * time.Millisecond)
		}
		tk, _ := c.Status(ctx, id)
		t.Fatalf("task %s never reached %s: %+v", id, want, tk)
		return tk
	}
	null := "NULL"
	sr, err := c.Submit(ctx, api.SubmitRequest{Command: "sh", Arguments: []string{"-c", "echo out-$HAKURIVER_TASK_ID; echo err >&2"}, ContainerName: &null})
	if err != nil {
		t.Fatal(err)
	}
	id := sr.TaskIDs[0]
	tk := wait(id, "completed")
	if tk.AssignedNode != "r1" || tk.ExitCode == nil || *tk.ExitCode != 0 {
		t.Fatalf("completed task: %+v", tk)
	}
	out, _ := os.ReadFile(filepath.Join(shared, "task_outputs", id+".out"))
	if strings.TrimSpace(string(out)) != "out-"+id {
		t.Fatalf("stdout %q", out)
	}
	logs, _, _, err := c.Logs(ctx, id, "stderr", 0)
	if err != nil || !bytes.Equal(bytes.TrimSpace(logs), []byte("err")) {
		t.Fatalf("stderr via API: %q %v", logs, err)
	}

	// A /run re-sent after the task's end was acknowledged (a new leader
	// re-driving it) never runs it a second time.
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) && !fileExists(filepath.Join(tmp, "finished", id)) {
		time.Sleep(20 * time.Millisecond)
	}
	tokCfg := api.DefaultClientConfig()
	tokCfg.Hosts, tokCfg.Token = []string{a.URL()}, "secret-token"
	rtok, _ := api.NewClient(tokCfg)
	taskID, _ := strconv.ParseInt(id, 10, 64)
	var again map[string]any
	if _, err := rtok.Do(ctx, "POST", "/run", api.RunRequest{TaskID: taskID, Command: "sh", Arguments: []string{"-c", "echo out-$HAKURIVER_TASK_ID"},
		EnvVars: map[string]string{"HAKURIVER_TASK_ID": id}, StdoutPath: id + ".out", ContainerName: "NULL"}, &again); err != nil {
		t.Fatalf("re-sent /run: %v", err)
	}
	if msg, _ := again["message"].(string); !strings.Contains(msg, "already ran") {
		t.Fatalf("re-sent /run answered %v", again)
	}
	// A later task through the same runner completing proves the runner
	// has handled the re-sent /run (requests are served in order of arrival
	// and the refusal came first); only then is absence meaningful.
	ctl, err := c.Submit(ctx, api.SubmitRequest{Command: "true", ContainerName: &null})
	if err != nil {
		t.Fatal(err)
	}
	wait(ctl.TaskIDs[0], "completed")
	if out, _ := os.ReadFile(filepath.Join(shared, "task_outputs", id+".out")); strings.Count(string(out), "out-") != 1 {
		t.Fatalf("task ran twice: stdout %q", out)
	}

	// A call without the cluster token is refused by host and runner alike.
	noTok, _ := api.NewClient(cc)
	if _, err := noTok.Do(ctx, "POST", "/api/register", api.RegisterRequest{Hostname: "evil", TotalCores: 1, RunnerURL: "http://x:1"}, nil); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("register without token: %v", err)
	}
	cc2 := api.DefaultClientConfig()
	cc2.Hosts = []string{a.URL()}
	rcl, _ := api.NewClient(cc2)
	if _, err := rcl.Do(ctx, "POST", "/run", api.RunRequest{TaskID: 1, Command: "true"}, nil); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("/run without token: %v", err)
	}

	// Restart the runner while a task runs: the task keeps running and its
	// real exit code is reported.
	sr, err = c.Submit(ctx, api.SubmitRequest{Command: "sh", Arguments: []string{"-c", "sleep 2; exit 7"}, ContainerName: &null})
	if err != nil {
		t.Fatal(err)
	}
	id = sr.TaskIDs[0]
	wait(id, "running")
	if err := a.Close(ctx); err != nil {
		t.Fatal(err)
	}
	a = start()
	t.Cleanup(func() { a.Close(context.Background()) })
	tk = wait(id, "failed")
	if tk.ExitCode == nil || *tk.ExitCode != 7 {
		t.Fatalf("exit code after runner restart: %+v", tk)
	}
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// startTestHost starts one in-process host replica on loopback whose
// anonymous callers act as operators (these tests are about the runner,
// not accounts), with TLS when tls is set.
func startTestHost(t *testing.T, shared string, tls *certs.Bundle) *cluster.Host {
	t.Helper()
	hc := cluster.DefaultConfig()
	hc.NodeID, hc.DataDir, hc.SharedDir = "h1", t.TempDir(), shared
	hc.APIPort, hc.RaftPort, hc.GossipPort = 0, 0, 0
	hc.FastGossip, hc.ClusterToken, hc.TLS = true, "secret-token", tls
	hc.AnonymousRole = fsm.RoleOperator
	hc.HeartbeatInterval = 500 * time.Millisecond
	hc.Logger = logger(t)
	h, err := cluster.StartHost(context.Background(), hc)
	// A free port the host picked may be taken by a parallel test before
	// it binds it: start again on fresh ports (bounded).
	for try := 1; err != nil && strings.Contains(err.Error(), "address already in use") && try < 4; try++ {
		hc.DataDir = t.TempDir()
		h, err = cluster.StartHost(context.Background(), hc)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close(context.Background()) })
	return h
}

// startNativeRunner starts runner r1 with a native executor (shim command,
// state and temp dirs given, tasks in cgroupParent) that joins h, with TLS when
// tls is set. The caller closes it.
func startNativeRunner(t *testing.T, h *cluster.Host, shimCmd []string, shared, state, tmp, cgroupParent string, tls *certs.Bundle) *runner.Agent {
	t.Helper()
	nc := native.DefaultConfig()
	nc.StateDir = filepath.Join(state, "tasks")
	nc.ShimCommand = shimCmd
	nc.CgroupParent = cgroupParent
	ex, err := native.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	rc := runner.DefaultConfig()
	rc.Name, rc.BindAddr, rc.AdvertiseAddr, rc.Port, rc.GossipPort = "r1", "127.0.0.1", "127.0.0.1", 0, 0
	rc.Join, rc.Token, rc.SharedDir, rc.LocalTempDir = []string{h.GossipAddr()}, "secret-token", shared, tmp
	rc.StateDir, rc.TLS = state, tls
	rc.CopyHelper = []string{shimCmd[0], "runner-files"}
	rc.HeartbeatInterval, rc.FastGossip, rc.Native, rc.NativeLimited = 500*time.Millisecond, true, ex, ex.Limited()
	rc.Logger = logger(t)
	a, err := runner.Start(context.Background(), rc)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
