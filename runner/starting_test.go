package runner_test

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
)

// TestAgentReportsRunningOnceStarted holds a native task's supervisor back
// before it starts the task's process: the cluster keeps the task
// assigning (a pause is refused with 409, not sent to a runner that could
// not pause it yet) until the process exists; then it is running and the
// pause sent right away pauses it. Before the fix the runner reported the
// task running as soon as its launch record existed, and a pause in that
// window failed (the dashboard's rare "pause did nothing" flake).
func TestAgentReportsRunningOnceStarted(t *testing.T) {
	shim := shimBinary(t)
	shared, tmp, state := t.TempDir(), t.TempDir(), t.TempDir()
	gate := filepath.Join(t.TempDir(), "gate")
	wait := `while [ ! -e "$0" ]; do sleep 0.01; done; exec "$@"`
	h := startTestHost(t, shared, nil)
	a := startNativeRunner(t, h, []string{"/bin/sh", "-c", wait, gate, shim, "runner-shim"}, shared, state, tmp, "hakuriver-starting-test", nil)
	t.Cleanup(func() { a.Close(context.Background()) })
	// Open the gate before closing the runner, also when the test fails
	// early: its /run waits on the held-back supervisor.
	t.Cleanup(func() { os.WriteFile(gate, nil, 0o644) }) //nolint:errcheck // best effort
	ctx := context.Background()
	cc := api.DefaultClientConfig()
	cc.Hosts = []string{h.APIURL()}
	c, err := api.NewClient(cc)
	if err != nil {
		t.Fatal(err)
	}
	null := "NULL"
	sr, err := c.Submit(ctx, api.SubmitRequest{Command: "sleep", Arguments: []string{"60"}, ContainerName: &null})
	if err != nil {
		t.Fatal(err)
	}
	id := sr.TaskIDs[0]
	t.Cleanup(func() { c.Kill(context.Background(), id) }) //nolint:errcheck // best effort

	// The runner tracks the task (its launch record exists) but its
	// process waits behind the gate.
	spec := filepath.Join(state, "tasks", id, "spec.json")
	for deadline := time.Now().Add(20 * time.Second); !fileExists(spec); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the runner never took task %s", id)
		}
	}
	// Several watch-loop rounds (100 ms each) and a heartbeat (500 ms):
	// the task is still not running, so pausing it is refused.
	for range 10 {
		time.Sleep(100 * time.Millisecond)
		tk, err := c.Status(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if tk.Status != "assigning" {
			t.Fatalf("task is %s before its process started, want assigning", tk.Status)
		}
	}
	if _, err := c.Pause(ctx, id); api.StatusCode(err) != http.StatusConflict {
		t.Fatalf("pause before the process started: %v, want 409", err)
	}

	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	waitStatus := func(want string) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			tk, err := c.Status(ctx, id)
			if err == nil && string(tk.Status) == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("task %s never reached %s: %+v %v", id, want, tk, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitStatus("running")
	// At once, as a user clicking the button the moment it shows.
	if _, err := c.Pause(ctx, id); err != nil {
		t.Fatalf("pause as soon as the task runs: %v", err)
	}
	waitStatus("paused")
	if _, err := c.Kill(ctx, id); err != nil {
		t.Fatal(err)
	}
	waitStatus("killed")
}
