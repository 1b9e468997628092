package native

import (
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
// until Start returns (the task's process is recorded); exec-* is the time
// from the call until the supervisor had started the task (its procRecord:
// the task had exec'd), run-* until Start returned, at the 10th, 50th and
// 99th percentile (p10 is close to what a quiet machine gives). Each op's task is waited for and
// forgotten outside the timer.
//
// The shim is the test binary, re-executed through /usr/bin/env; set
// HAKURIVER_SHIM_BINARY to a built hakuriver binary to measure the shim a
// runner really uses:
//
//	go build -o bin/hakuriver ./cmd/hakuriver
//	HAKURIVER_SHIM_BINARY=$PWD/bin/hakuriver go test -run '^$' -bench StartTrue ./runner/executor/native
func BenchmarkStartTrue(b *testing.B) {
	h := newHarness(b, nil)
	h.requireLimited()
	var execs, runs []time.Duration
	id := int64(0)
	for b.Loop() {
		id++
		t0 := time.Now()
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
		if ex := h.wait(id); ex.Code != 0 {
			b.Fatalf("task %d: exit %+v", id, ex)
		}
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
	if os.Getenv(shimBinaryEnv) == "" {
		b.Logf("shim: the test binary through /usr/bin/env (set %s for the real one)", shimBinaryEnv)
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// reapShims reaps the supervisors remembered so far.
func (h *harness) reapShims() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for pid := range h.shims {
		reap(h.t, pid)
		delete(h.shims, pid)
	}
}
