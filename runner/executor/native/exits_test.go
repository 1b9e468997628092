package native

import (
	"context"
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/runner/executor"
)

// TestExitsWithoutPolling checks that the end of a task this Executor
// started reaches Exits when its supervisor exits, not at the next poll:
// the poll interval is an hour, so only the supervisor's exit can deliver
// it.
func TestExitsWithoutPolling(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.PollInterval = time.Hour })
	run, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.e.Run(run) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	for id := int64(1); id <= 3; id++ {
		h.start(executor.Spec{TaskID: id, Command: "sh", Args: []string{"-c", "exit 4"}})
		select {
		case got := <-h.e.Exits():
			if got != id {
				t.Fatalf("Exits delivered %d, want %d", got, id)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("no exit notification for task %d (poll interval 1h)", id)
		}
		if s := listOne(t, h.e, id); s.Exit == nil || s.Exit.Code != 4 {
			t.Fatalf("task %d: %+v, want ended with code 4", id, s)
		}
	}
}
