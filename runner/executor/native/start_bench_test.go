package native

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/runner/executor"
)

// BenchmarkStartTrue starts `true` through the real path: the task
// directory, the supervisor process, its cgroups (v1 or v2 where writable:
// run as root) and the task's process. One op is one Start, from the call
// until Start returns (the task's process is recorded). It reports, at the
// 10th, 50th and 99th percentile (p10 is close to what a quiet machine
// gives):
//
//   - exec-*: from the call until the supervisor had started the task (its
//     procRecord: the task had exec'd);
//   - run-*: until Start returned;
//   - end-*: from the task's end (the EndedAt its supervisor recorded) until
//     Exits delivered it, which is when a runner reports it.
//
// In "paced" the Starts are benchPace apart and each finds the warm
// supervisors booted (the runner's steady state when tasks come no faster
// than a supervisor boots; the wait is outside the timer); in "back-to-back" the next Start follows at once,
// so supervisors boot while tasks start. Each op's task is waited for and
// forgotten outside the timer.
//
// The shim is the test binary, re-executed through /usr/bin/env; set
// HAKURIVER_SHIM_BINARY to a built hakuriver-shim (what a runner uses
// when it sits beside hakuriver) or hakuriver binary to measure the shim a
// runner really uses:
//
//	go build -o bin/hakuriver-shim ./cmd/hakuriver-shim
//	HAKURIVER_SHIM_BINARY=$PWD/bin/hakuriver-shim go test -run '^$' -bench StartTrue ./runner/executor/native
func BenchmarkStartTrue(b *testing.B) {
	b.Run("paced", func(b *testing.B) { benchStartTrue(b, true) })
	b.Run("back-to-back", func(b *testing.B) { benchStartTrue(b, false) })
}

func benchStartTrue(b *testing.B, paced bool) {
	h := newHarness(b, nil)
	h.requireLimited()
	runCtx, stop := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() {
		defer close(ran)
		h.e.Run(runCtx) //nolint:errcheck // Run returns nil
	}()
	defer func() { stop(); <-ran }()
	var execs, runs, ends []time.Duration
	id := int64(0)
	var last time.Time
	for b.Loop() {
		if paced && id > 0 {
			b.StopTimer()
			h.awaitWarm()
			time.Sleep(time.Until(last.Add(benchPace)))
			b.StartTimer()
		}
		id++
		t0 := time.Now()
		last = t0
		if err := h.e.Start(ctx(b), executor.Spec{TaskID: id, Command: "true"}); err != nil {
			b.Fatalf("Start: %v", err)
		}
		runs = append(runs, time.Since(t0))
		b.StopTimer()
		var p procRecord
		if ok, err := readJSON(filepath.Join(h.e.taskDir(id), fileProc), &p); err != nil || !ok {
			b.Fatalf("task %d has no process record (ok=%v err=%v)", id, ok, err)
		}
		execs = append(execs, p.StartedAt.Sub(t0))
		h.rememberShim(id)
		got := h.awaitExit(id)
		ex := h.wait(id)
		if ex.Code != 0 {
			b.Fatalf("task %d: exit %+v", id, ex)
		}
		ends = append(ends, got.Sub(ex.EndedAt))
		if err := h.e.Forget(ctx(b), id); err != nil {
			b.Fatalf("Forget: %v", err)
		}
		h.reapShims()
		b.StartTimer()
	}
	report := func(d []time.Duration, name string) {
		slices.Sort(d)
		b.ReportMetric(ms(d[len(d)/10]), name+"-p10-ms")
		b.ReportMetric(ms(d[len(d)/2]), name+"-p50-ms")
		b.ReportMetric(ms(d[len(d)*99/100]), name+"-p99-ms")
	}
	report(execs, "exec")
	report(runs, "run")
	report(ends, "end")
	if os.Getenv(shimBinaryEnv) == "" {
		b.Logf("shim: the test binary through /usr/bin/env (set %s for the real one)", shimBinaryEnv)
	}
}

// benchPace is the least time between two Starts in "paced".
const benchPace = 150 * time.Millisecond

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// awaitWarm waits (bounded) until the executor has warmShims booted
// supervisors waiting.
func (h *harness) awaitWarm() {
	h.t.Helper()
	eventually(h.t, 20*time.Second, "warm supervisors", func() bool { return len(h.e.warmPIDs()) == warmShims })
}

// awaitExit waits until Exits delivers task id (Run must run) and returns
// when it did.
func (h *harness) awaitExit(id int64) time.Time {
	h.t.Helper()
	c := ctx(h.t)
	for {
		select {
		case got := <-h.e.Exits():
			if got == id {
				return time.Now()
			}
		case <-c.Done():
			h.t.Fatalf("task %d: no exit delivered: %v", id, c.Err())
		}
	}
}

// reapShims reaps the supervisors remembered so far.
func (h *harness) reapShims() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for pid := range h.shims {
		reap(h.t, pid)
		delete(h.shims, pid)
	}
}
