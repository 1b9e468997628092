package docker

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// busyScript keeps the shell busy until it has used 2 s of CPU time
// (utime+stime of /proc/$$/stat, in 1/100 s) with builtins only: the work
// is fixed, not the wall-clock time.
const busyScript = `while :; do read -r _ _ _ _ _ _ _ _ _ _ _ _ _ ut st _ < /proc/$$/stat; ` +
	`[ $((ut+st)) -ge 200 ] && break; i=0; while [ $i -lt 2000 ]; do i=$((i+1)); done; done`

// TestTaskUsage checks the figures of a container task's end, read from
// its cgroup parent after the container stopped: the CPU time of 2 s of
// CPU work and the peak memory of a 200 MiB buffer; and that forgetting
// the task removes the parent.
func TestTaskUsage(t *testing.T) {
	cfg := testConfig(t)
	e := newTestExecutor(t, cfg)
	ctx := context.Background()
	busy, mem := testTaskID(), testTaskID()
	for id, script := range map[int64]string{busy: busyScript, mem: "dd if=/dev/zero of=/dev/null bs=200M count=1 2>/dev/null"} {
		if err := e.Start(ctx, taskSpec(cfg, id, testImage, "sh", "-c", script)); err != nil {
			t.Fatal(err)
		}
	}
	if !e.cgroupfsDriver(ctx) {
		t.Skip("the engine's cgroup driver is not cgroupfs: task containers are not measured")
	}
	ex := waitExit(t, e, busy, 2*time.Minute)
	if ex.Code != 0 || ex.Usage == nil || ex.Usage.Source != "cgroup" {
		t.Fatalf("busy loop: exit %+v usage %+v, want code 0 measured by its cgroup", ex, ex.Usage)
	}
	cpu := time.Duration(ex.Usage.UserNs + ex.Usage.SystemNs)
	t.Logf("busy loop: user %s system %s (wall %s)", time.Duration(ex.Usage.UserNs), time.Duration(ex.Usage.SystemNs), ex.EndedAt.Sub(ex.StartedAt))
	if cpu < 1500*time.Millisecond || cpu > 2600*time.Millisecond {
		t.Errorf("busy loop of 2 s of CPU work: measured %s, want 1.5 s to 2.6 s", cpu)
	}
	ex = waitExit(t, e, mem, 2*time.Minute)
	if ex.Code != 0 || ex.Usage == nil {
		t.Fatalf("200 MiB: exit %+v, want code 0 with usage", ex)
	}
	t.Logf("200 MiB buffer: peak %.1f MiB", float64(ex.Usage.PeakBytes)/(1<<20))
	if ex.Usage.PeakBytes < 200<<20 {
		t.Errorf("200 MiB buffer: peak memory %d bytes, want at least %d", ex.Usage.PeakBytes, 200<<20)
	}
	for _, id := range []int64{busy, mem} {
		parent := e.cgroupParentOf(ctx, id)
		if err := e.Forget(ctx, id); err != nil {
			t.Fatal(err)
		}
		for _, h := range []string{"cpuacct", "memory", ""} {
			if _, err := os.Stat(filepath.Join(cgroupRoot, h, parent)); err == nil {
				t.Errorf("cgroup parent %s left in %q after Forget", parent, h)
			}
		}
	}
	// A parent left behind (its container removed by hand) is swept.
	stray := e.cgroupParentOf(ctx, testTaskID())
	for _, h := range []string{"cpuacct", "memory"} {
		if err := os.MkdirAll(filepath.Join(cgroupRoot, h, stray), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	e.sweepParents(map[int64]bool{})
	for _, h := range []string{"cpuacct", "memory"} {
		if _, err := os.Stat(filepath.Join(cgroupRoot, h, stray)); err == nil {
			t.Errorf("stray cgroup parent %s not swept in %q", stray, h)
		}
	}
}
