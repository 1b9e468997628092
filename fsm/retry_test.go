package fsm_test

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/fsm"
)

// retryTask submits task id with retries and runs its first attempt on
// node n to a failed exit 3.
func (h *harness) retryTask(id int64, retries int, n string) {
	h.t.Helper()
	tk := newTask(id)
	tk.Retries, tk.RetryOn, tk.Attempt, tk.RetryDelayMS = retries, fsm.DefaultRetryOn(), 1, 5000
	h.ok(&fsm.SubmitTasks{Tasks: []*fsm.Task{tk}})
	h.runAttempt(id, 1, n, 3)
}

// runAttempt places task id's pending attempt on n and ends it with exit
// code (failed when non-zero).
func (h *harness) runAttempt(id int64, attempt int, n string, code int) {
	h.t.Helper()
	h.ok(&fsm.AssignTask{TaskID: id, Node: n, At: at(10 * attempt)})
	h.ok(&fsm.UpdateTask{TaskID: id, Attempt: attempt, Status: fsm.StatusRunning, StartedAt: timep(at(10*attempt + 1)), At: at(10*attempt + 1)})
	st := fsm.StatusFailed
	if code == 0 {
		st = fsm.StatusCompleted
	}
	h.ok(&fsm.UpdateTask{TaskID: id, Attempt: attempt, Status: st, ExitCode: intp(code), CompletedAt: timep(at(10*attempt + 2)), At: at(10*attempt + 2)})
}

func TestRetryTaskStartsNextAttemptOnce(t *testing.T) {
	h := newHarness(t)
	h.register("n1", 0)
	h.retryTask(1, 2, "n1")
	tk := h.task(1)
	if tk.Status != fsm.StatusFailed || !tk.RetryPending() || tk.Done() {
		t.Fatalf("after attempt 1: status %s, RetryPending %v, Done %v; want failed, retry pending", tk.Status, tk.RetryPending(), tk.Done())
	}
	if got := h.m.RetryPending(); len(got) != 1 || got[0].TaskID != 1 {
		t.Fatalf("RetryPending() = %v, want task 1", got)
	}
	retry := &fsm.RetryTask{TaskID: 1, Attempt: 1, NotBefore: at(100)}
	h.ok(retry)
	tk = h.task(1)
	if tk.Status != fsm.StatusPending || tk.CurrentAttempt() != 2 || tk.NotBefore == nil || !tk.NotBefore.Equal(at(100)) ||
		tk.ExitCode != nil || tk.AssignedNode != "" || tk.StartedAt != nil {
		t.Fatalf("after retry: %s", taskJSON(t, tk))
	}
	if len(h.m.RetryPending()) != 0 {
		t.Fatalf("RetryPending() after the retry = %v, want none", h.m.RetryPending())
	}
	// The same command again (a new leader proposing it once more) is a
	// no-op: no third attempt, nothing changed.
	h.unchanged(retry)
	if got := h.task(1).CurrentAttempt(); got != 2 {
		t.Fatalf("attempt after duplicate retry = %d, want 2", got)
	}
	// Attempts 2 and 3 fail too; the third is the last.
	h.runAttempt(1, 2, "n1", 3)
	h.unchanged(retry) // the duplicate of retry 1 still does nothing at attempt 2's end
	h.ok(&fsm.RetryTask{TaskID: 1, Attempt: 2, NotBefore: at(200)})
	h.runAttempt(1, 3, "n1", 3)
	tk = h.task(1)
	if tk.RetryPending() || !tk.Done() || tk.Status != fsm.StatusFailed {
		t.Fatalf("after attempt 3: status %s, RetryPending %v; want failed and done", tk.Status, tk.RetryPending())
	}
	h.unchanged(&fsm.RetryTask{TaskID: 1, Attempt: 3, NotBefore: at(300)})
	if len(tk.Attempts) != 3 {
		t.Fatalf("attempts = %d, want 3: %s", len(tk.Attempts), taskJSON(t, tk))
	}
	// Accounting counts every attempt's run time (1 s each here).
	if f := fsm.FiguresOf(tk, at(1000)); f.Elapsed != 3*time.Second {
		t.Fatalf("FiguresOf elapsed = %s, want 3s (three attempts of 1s)", f.Elapsed)
	}
	for i, a := range tk.Attempts {
		if a.Attempt != i+1 || a.Status != fsm.StatusFailed || a.ExitCode == nil || *a.ExitCode != 3 || a.Node != "n1" || a.StartedAt == nil || a.CompletedAt == nil {
			t.Fatalf("attempt record %d = %+v, want attempt %d failed exit 3 on n1 with times", i, a, i+1)
		}
	}
}

func TestRetryStaleReportIgnored(t *testing.T) {
	h := newHarness(t)
	h.register("n1", 0)
	h.retryTask(1, 2, "n1")
	h.ok(&fsm.RetryTask{TaskID: 1, Attempt: 1, NotBefore: at(30)})
	// Attempt 1's end re-sent (a runner retrying after a failover) and a
	// late "running" of attempt 1 must not touch attempt 2.
	h.reject(&fsm.UpdateTask{TaskID: 1, Attempt: 1, Status: fsm.StatusFailed, ExitCode: intp(3), At: at(40)}, fsm.ErrConflict)
	h.reject(&fsm.UpdateTask{TaskID: 1, Attempt: 1, Status: fsm.StatusRunning, At: at(41)}, fsm.ErrConflict)
	// The same in a batch: rejected alone, the others applied.
	h.ok(&fsm.AssignTask{TaskID: 1, Node: "n1", At: at(42)})
	res := h.ok(&fsm.UpdateTasks{Updates: []fsm.UpdateTask{
		{TaskID: 1, Attempt: 1, Status: fsm.StatusCompleted, ExitCode: intp(0), At: at(43)},
	}}).Value.(fsm.UpdateResults)
	if !errors.Is(res[0], fsm.ErrConflict) {
		t.Fatalf("batched stale report: %v, want ErrConflict", res[0])
	}
	if tk := h.task(1); tk.Status != fsm.StatusAssigning || tk.CurrentAttempt() != 2 {
		t.Fatalf("after stale reports: %s attempt %d, want assigning attempt 2", tk.Status, tk.CurrentAttempt())
	}
	// The current attempt's report applies.
	h.ok(&fsm.UpdateTask{TaskID: 1, Attempt: 2, Status: fsm.StatusRunning, At: at(44)})
}

func TestRetryKillStopsRetries(t *testing.T) {
	h := newHarness(t)
	h.register("n1", 0)
	h.retryTask(1, 3, "n1")
	h.ok(&fsm.KillTask{TaskID: 1, Message: "stop", At: at(30)})
	if tk := h.task(1); tk.RetryPending() || !tk.Done() {
		t.Fatalf("killed while a retry was due: RetryPending %v", tk.RetryPending())
	}
	h.unchanged(&fsm.RetryTask{TaskID: 1, Attempt: 1, NotBefore: at(31)})
	// Killed while waiting for its delay: killed, no retry.
	h.retryTask(2, 3, "n1")
	h.ok(&fsm.RetryTask{TaskID: 2, Attempt: 1, NotBefore: at(100)})
	h.ok(&fsm.KillTask{TaskID: 2, Message: "stop", At: at(31)})
	if tk := h.task(2); tk.Status != fsm.StatusKilled || tk.RetryPending() {
		t.Fatalf("killed in its delay: %s, RetryPending %v", tk.Status, tk.RetryPending())
	}
}

func TestRetryOnPolicy(t *testing.T) {
	h := newHarness(t)
	h.register("n1", 0)
	tk := newTask(1)
	tk.Retries, tk.RetryOn, tk.Attempt = 1, []string{fsm.RetryOnLost}, 1
	h.ok(&fsm.SubmitTasks{Tasks: []*fsm.Task{tk}})
	h.runAttempt(1, 1, "n1", 3)
	if h.task(1).RetryPending() {
		t.Fatalf("retry_on lost retried a failed exit")
	}
	// Lost by its node going offline: retried.
	tk = newTask(2)
	tk.Retries, tk.RetryOn, tk.Attempt = 1, []string{fsm.RetryOnLost}, 1
	h.ok(&fsm.SubmitTasks{Tasks: []*fsm.Task{tk}})
	h.ok(&fsm.AssignTask{TaskID: 2, Node: "n1", At: at(50)})
	h.ok(&fsm.SetNodeStatus{Hostname: "n1", Status: fsm.NodeOffline, At: at(60)})
	got := h.task(2)
	if got.Status != fsm.StatusLost || !got.RetryPending() || len(got.Attempts) != 1 || got.Attempts[0].Status != fsm.StatusLost {
		t.Fatalf("lost task: %s", taskJSON(t, got))
	}
	// An OOM kill is retried only when retry_on names oom.
	h.register("n2", 70)
	for id, on := range map[int64][]string{3: fsm.DefaultRetryOn(), 4: {fsm.RetryOnOOM}} {
		tk := newTask(id)
		tk.Retries, tk.RetryOn, tk.Attempt = 1, on, 1
		h.ok(&fsm.SubmitTasks{Tasks: []*fsm.Task{tk}})
		h.ok(&fsm.AssignTask{TaskID: id, Node: "n2", At: at(80)})
		h.ok(&fsm.UpdateTask{TaskID: id, Attempt: 1, Status: fsm.StatusRunning, At: at(81)})
		h.ok(&fsm.UpdateTask{TaskID: id, Attempt: 1, Status: fsm.StatusKilledOOM, ExitCode: intp(137), At: at(82)})
		if got, want := h.task(id).RetryPending(), id == 4; got != want {
			t.Errorf("killed_oom with retry_on %v: RetryPending %v, want %v", on, got, want)
		}
	}
}

func TestRetrySnapshotRoundTrip(t *testing.T) {
	h := newHarness(t)
	h.register("n1", 0)
	h.retryTask(1, 2, "n1")
	h.ok(&fsm.RetryTask{TaskID: 1, Attempt: 1, NotBefore: at(100)})
	h.retryTask(2, 2, "n1") // retry pending at the snapshot
	before := snapshotBytes(t, h.m)
	m2 := fsm.New()
	if err := m2.Restore(bytes.NewReader(before)); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if after := snapshotBytes(t, m2); !bytes.Equal(before, after) {
		assertSameState(t, "snapshot round trip", before, after)
	}
	tk, _ := m2.Task(1)
	if tk.CurrentAttempt() != 2 || len(tk.Attempts) != 1 || tk.Attempts[0].ExitCode == nil || *tk.Attempts[0].ExitCode != 3 || tk.NotBefore == nil {
		t.Fatalf("restored task 1: %s", taskJSON(t, tk))
	}
	if got := m2.RetryPending(); len(got) != 1 || got[0].TaskID != 2 {
		t.Fatalf("restored RetryPending() = %v, want task 2", got)
	}
}

func TestNormalizeRetryOn(t *testing.T) {
	got, err := fsm.NormalizeRetryOn([]string{"oom", "exit", "oom"})
	if err != nil || fsm.RetryOnString(got) != "exit,oom" {
		t.Fatalf("NormalizeRetryOn = %v, %v; want exit,oom", got, err)
	}
	if _, err := fsm.NormalizeRetryOn([]string{"exit", "sometimes"}); err == nil {
		t.Fatalf("NormalizeRetryOn accepted an unknown condition")
	}
}
