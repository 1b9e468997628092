package runner

import (
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/runner/executor"
)

// TestStatusUpdateUsage checks that a task's end carries its figures and
// signal, and that figures the host would refuse are left out (the end
// itself is still reported).
func TestStatusUpdateUsage(t *testing.T) {
	now := time.Now()
	end := func(u *executor.Usage, sig int) executor.State {
		return executor.State{TaskID: 7, Started: now, Exit: &executor.Exit{Code: -1, Signal: sig, StartedAt: now, EndedAt: now, Usage: u}}
	}
	u := statusUpdate(end(&executor.Usage{UserNs: 2e9, SystemNs: 1e8, PeakBytes: 200 << 20, Source: "cgroup"}, 9))
	if u.Status != "failed" || u.Usage == nil || u.Usage.CPUUserNs != 2e9 || u.Usage.CPUSystemNs != 1e8 ||
		u.Usage.PeakMemoryBytes != 200<<20 || u.Usage.Signal != 9 || u.Usage.Source != "cgroup" {
		t.Fatalf("report %+v usage %+v", u, u.Usage)
	}
	if u := statusUpdate(end(nil, 0)); u.Status != "failed" || u.Usage != nil {
		t.Fatalf("unmeasured end: %+v usage %+v", u, u.Usage)
	}
	if u := statusUpdate(end(&executor.Usage{UserNs: -1}, 0)); u.Status != "failed" || u.Usage != nil {
		t.Fatalf("negative counter: %+v usage %+v, want the end without figures", u, u.Usage)
	}
	if u := statusUpdate(executor.State{TaskID: 7, Running: true, Started: now}); u.Usage != nil {
		t.Fatalf("running: usage %+v", u.Usage)
	}
}
