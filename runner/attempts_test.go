package runner_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/runner"
	"github.com/hakuriver/hakuriver-ha/runner/executor/native"
)

// TestRunOneAttemptAtATime sends /run for attempts of one task to a real
// runner with no host (so no end is ever acknowledged): attempt 1 starts;
// attempt 2 is refused with 503 while attempt 1 runs, and still after it
// ended, since its end is not acknowledged; attempt 1 again is the
// idempotent "already tracked". Only one process ever ran, and the runner
// recorded the attempt in its state directory.
func TestRunOneAttemptAtATime(t *testing.T) {
	ctx := context.Background()
	tmp, shared, state := t.TempDir(), t.TempDir(), t.TempDir()
	nc := native.DefaultConfig()
	nc.StateDir = filepath.Join(state, "tasks")
	nc.ShimCommand = []string{shimBinary(t), "runner-shim"}
	nc.CgroupParent = "hakuriver-attempts-test"
	ex, err := native.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	rc := runner.DefaultConfig()
	rc.Name, rc.BindAddr, rc.AdvertiseAddr, rc.Port, rc.GossipPort = "r1", "127.0.0.1", "127.0.0.1", 0, 0
	rc.Join, rc.Token, rc.SharedDir, rc.LocalTempDir = []string{"127.0.0.1:1"}, "secret-token", shared, tmp
	rc.StateDir = state
	rc.FastGossip, rc.Native, rc.NativeLimited = true, ex, ex.Limited()
	rc.Logger = logger(t)
	a, err := runner.Start(ctx, rc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(context.Background()) })
	cc := api.DefaultClientConfig()
	cc.Hosts, cc.Token = []string{a.URL()}, "secret-token"
	cc.RetryBudget = time.Nanosecond // a 503 is the answer under test, not one to wait out
	c, err := api.NewClient(cc)
	if err != nil {
		t.Fatal(err)
	}
	runs := filepath.Join(shared, "runs")
	// AllowRoot: the task runs as the runner's own user, who may write there.
	req := api.RunRequest{TaskID: 77, TaskType: "command", Command: "sh", ContainerName: "NULL", Attempt: 1, AllowRoot: true,
		Arguments: []string{"-c", "echo run >> " + runs + "; sleep 1"}}
	run := func(attempt int) error {
		r := req
		r.Attempt = attempt
		_, err := c.Do(ctx, "POST", "/run", r, nil)
		return err
	}
	if err := run(1); err != nil {
		t.Fatalf("attempt 1: %v", err)
	}
	t.Cleanup(func() { c.Do(context.Background(), "POST", "/kill", api.TaskRef{TaskID: 77}, nil) }) //nolint:errcheck // best effort
	if err := run(2); err == nil || !strings.Contains(err.Error(), "HTTP 503") || !strings.Contains(err.Error(), "attempt 1") {
		t.Fatalf("attempt 2 while attempt 1 runs: %v, want HTTP 503 naming attempt 1", err)
	}
	if err := run(1); err != nil {
		t.Fatalf("attempt 1 again: %v, want the idempotent answer", err)
	}
	if b, err := os.ReadFile(filepath.Join(state, "attempts", "77")); err != nil || string(b) != "1" {
		t.Fatalf("recorded attempt: %q %v, want 1", b, err)
	}
	// Attempt 1 ends (sleep 1); its end is never acknowledged here.
	deadline := time.Now().Add(30 * time.Second)
	for {
		states, err := ex.List(ctx)
		if err == nil && len(states) == 1 && states[0].Exit != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("attempt 1 never ended: %+v %v", states, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := run(2); err == nil || !strings.Contains(err.Error(), "HTTP 503") {
		t.Fatalf("attempt 2 after an unacknowledged end: %v, want HTTP 503", err)
	}
	if b, _ := os.ReadFile(runs); strings.Count(string(b), "run\n") != 1 {
		t.Fatalf("the task ran %q, want once", b)
	}
}
