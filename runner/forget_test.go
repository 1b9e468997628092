package runner_test

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/runner/executor"
	"github.com/hakuriver/hakuriver-ha/runner/executor/native"
)

// heldForget is the real native executor whose first Forget waits until
// released, as a Docker container's removal or a slow disk would hold it.
type heldForget struct {
	*native.Executor
	once    sync.Once
	held    chan int64    // receives the ID whose Forget is held
	release chan struct{} // closed: the held Forget goes on
}

func (h *heldForget) Forget(ctx context.Context, id int64) error {
	first := false
	h.once.Do(func() { first = true })
	if first {
		h.held <- id
		select {
		case <-h.release:
		case <-ctx.Done():
		}
	}
	return h.Executor.Forget(ctx, id)
}

// TestEndReportNotHeldByForget: while the executor's Forget of one ended
// task is held, the end of the next task is still reported and the
// cluster records it completed; once released, the first task's directory
// goes, and it stays completed.
func TestEndReportNotHeldByForget(t *testing.T) {
	shim := shimBinary(t)
	shared := t.TempDir()
	h := startTestHost(t, shared, nil)
	hf := &heldForget{held: make(chan int64, 1), release: make(chan struct{})}
	var releaseOnce sync.Once
	release := func() { releaseOnce.Do(func() { close(hf.release) }) }
	defer release()
	a, c, tasksDir := startProxiedRunner(t, h, h.APIURL(), shim, shared, "hakuriver-forget-test",
		func(ex *native.Executor) executor.Executor { hf.Executor = ex; return hf })
	defer a.Close(context.Background()) //nolint:errcheck // test cleanup
	ctx := context.Background()
	null := "NULL"
	submit := func() string {
		t.Helper()
		sr, err := c.Submit(ctx, api.SubmitRequest{Command: "true", ContainerName: &null})
		if err != nil {
			t.Fatal(err)
		}
		return sr.TaskIDs[0]
	}
	completed := func(id string, within time.Duration) bool {
		end := time.Now().Add(within)
		for {
			if tk, err := c.Status(ctx, id); err == nil && tk.Status == "completed" {
				return true
			}
			if time.Now().After(end) {
				return false
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	first := submit()
	var heldID int64
	select {
	case heldID = <-hf.held:
	case <-time.After(30 * time.Second):
		t.Fatalf("task %s: its end was never acknowledged and forgotten", first)
	}
	if !completed(first, 10*time.Second) {
		t.Fatalf("task %s is not completed though its Forget began", first)
	}
	second := submit()
	if !completed(second, 15*time.Second) {
		tk, err := c.Status(ctx, second)
		t.Fatalf("task %s while the Forget of task %d is held: %s (%v), want completed", second, heldID, tk.Status, err)
	}
	release()
	dir := filepath.Join(tasksDir, first)
	for end := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(dir); os.IsNotExist(err) {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("%s still there after the held Forget was released", dir)
		}
	}
	if tk, err := c.Status(ctx, first); err != nil || tk.Status != "completed" {
		t.Fatalf("task %s after its Forget: %+v %v", first, tk, err)
	}
}
