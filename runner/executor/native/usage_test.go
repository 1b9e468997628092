package native

import (
	"context"
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/runner/executor"
)

// busyScript keeps the shell busy until it has used 2 s of CPU time
// (utime+stime of /proc/$$/stat, in USER_HZ = 1/100 s), with builtins
// only: the work done, not the wall-clock time, is fixed, so a loaded
// machine makes it slower, not different.
const busyScript = `while :; do read -r _ _ _ _ _ _ _ _ _ _ _ _ _ ut st _ < /proc/$$/stat; ` +
	`[ $((ut+st)) -ge 200 ] && break; i=0; while [ $i -lt 2000 ]; do i=$((i+1)); done; done`

// usageWait bounds the wait for the end of 2 s of CPU work.
const usageWait = 3 * time.Minute

// TestUsageMeasured checks the figures of a task's end: the CPU time of
// a task that did 2 s of CPU work, the peak memory of one that held a
// 200 MiB buffer, and the signal that ended one; from the task's cgroup,
// and from the reaped processes' resource usage without cgroups.
func TestUsageMeasured(t *testing.T) {
	modes(t, func(t *testing.T, h *harness) {
		h.start(executor.Spec{TaskID: 1, Command: "sh", Args: []string{"-c", busyScript}})
		h.start(executor.Spec{TaskID: 2, Command: "sh", Args: []string{"-c", "dd if=/dev/zero of=/dev/null bs=200M count=1 2>/dev/null"}})
		h.start(executor.Spec{TaskID: 3, Command: "sh", Args: []string{"-c", "kill -TERM $$"}})
		// 2 s of CPU work takes much longer in wall-clock time on a
		// loaded machine: wait up to usageWait (ctx's 15 s is too short).
		wait := func(id int64) executor.Exit {
			t.Helper()
			c, cancel := context.WithTimeout(context.Background(), usageWait)
			defer cancel()
			ex, err := h.e.Wait(c, id)
			if err != nil {
				t.Fatalf("Wait(%d): %v", id, err)
			}
			return ex
		}
		source := "cgroup"
		if h.e.layout == nil {
			source = "rusage"
		}
		ex := wait(1)
		if ex.Code != 0 || ex.Usage == nil || ex.Usage.Source != source {
			t.Fatalf("busy loop: exit %+v usage %+v, want code 0 measured by %s", ex, ex.Usage, source)
		}
		cpu := time.Duration(ex.Usage.UserNs + ex.Usage.SystemNs)
		t.Logf("busy loop: user %s system %s (wall %s)", time.Duration(ex.Usage.UserNs), time.Duration(ex.Usage.SystemNs), ex.EndedAt.Sub(ex.StartedAt))
		if cpu < 1500*time.Millisecond || cpu > 2600*time.Millisecond {
			t.Errorf("busy loop of 2 s of CPU work: measured %s, want 1.5 s to 2.6 s", cpu)
		}
		ex = wait(2)
		if ex.Code != 0 || ex.Usage == nil {
			t.Fatalf("200 MiB: exit %+v, want code 0 with usage", ex)
		}
		t.Logf("200 MiB buffer: peak %d bytes (%.1f MiB)", ex.Usage.PeakBytes, float64(ex.Usage.PeakBytes)/(1<<20))
		if ex.Usage.PeakBytes < 200<<20 {
			t.Errorf("200 MiB buffer: peak memory %d bytes, want at least %d", ex.Usage.PeakBytes, 200<<20)
		}
		if ex = wait(3); ex.Signal != 15 || ex.Code != -1 {
			t.Errorf("SIGTERM: exit %+v, want signal 15, code -1", ex)
		}
	})
}
