//go:build integration

package integration

import (
	"path/filepath"
	"testing"

	"github.com/hakuriver/hakuriver-ha/integration/harness"
)

// TestWebhookRetriedTask: a task failing with exit 3 and --retries 2 is
// notified once per target, when its last attempt ended (the payload
// carries the last attempt's end and the key that attempt's number), not
// when a retried attempt ended.
func TestWebhookRetriedTask(t *testing.T) {
	rcv := newReceiver(t, false)
	c := startCluster(t, harness.Options{HeartbeatInterval: hbInterval, HeartbeatTimeoutFactor: hbFactor,
		Args: webhookArgs(rcv.url("/hook"), rcv.url("/task/"))})
	c.StartRunner("n1", twoCores)
	l := c.WaitLeader(harness.LeaderTimeout)
	waitWebhooksRegistered(t, c)
	file := filepath.Join(sharedDir(t, c, "retries-notify"), "runs")
	req := retryReq(file, "")
	req.Notify = rcv.url("/task/retry")
	id := submitOne(t, c, l, req)
	killOnFailure(t, c, id)
	task := waitDone(c, id)
	if len(task.Attempts) != 3 || task.CompletedAt == nil {
		t.Fatalf("task: %s, attempts %+v", describe(task), task.Attempts)
	}
	waitDelivered(t, c, id, 2)
	for _, path := range []string{"/hook", "/task/retry"} {
		n := 0
		for _, h := range rcv.hooks() {
			if h.path != path || h.payload.TaskID != id {
				continue
			}
			n++
			// The idempotency key names the attempt that ended: two
			// attempts' events are two deliveries, never one.
			if want := id + "-3-failed"; h.key != want {
				t.Errorf("%s: delivery key %q, want %q (the third attempt's)", path, h.key, want)
			}
			if h.payload.Status != "failed" || !h.payload.Final || h.payload.CompletedAt == nil || !h.payload.CompletedAt.Equal(*task.CompletedAt) {
				t.Errorf("%s: payload %+v, want the last attempt's end (completed %s)", path, h.payload, task.CompletedAt)
			}
		}
		if n != 1 {
			t.Errorf("%s: %d notifications of task %s, want 1", path, n, id)
		}
	}
	if got := runs(t, file); got != 3 {
		t.Fatalf("the task ran %d times, want 3", got)
	}
}
