//go:build integration

package integration

import (
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/fsm"
)

// TestDockerAccounting runs container tasks through a 3-replica cluster
// with Docker runners: the CPU time of 2 s of CPU work and the peak memory
// of a 200 MiB buffer are measured from each container's cgroup parent
// after the container stopped, and reach the task's record.
func TestDockerAccounting(t *testing.T) {
	requireDocker(t, busyboxImage)
	c, names := startDockerCluster(t, "dkacct")
	env := envName("hkt-acct")
	createEnvironment(t, c, busyboxImage, env)
	createTar(t, c, env)
	busy := submitCLI(t, c, []string{"--target", names[0], "--container", env}, "sh", "-c", usageBusyScript)
	mem := submitCLI(t, c, []string{"--target", names[1], "--container", env}, "sh", "-c", "dd if=/dev/zero of=/dev/null bs=200M count=1 2>/dev/null")
	ended := c.WaitAllFinal([]string{busy, mem}, usageTimeout)
	b, m := ended[busy], ended[mem]
	if b.Status != fsm.StatusCompleted || b.Usage == nil || b.Usage.Source != "cgroup" {
		t.Fatalf("busy loop in a container: %s usage %+v, want completed with figures from its cgroup", describe(b), b.Usage)
	}
	cpu := b.Usage.CPUTime()
	t.Logf("container busy loop: CPU %s (user %s, system %s)", cpu, time.Duration(b.Usage.CPUUserNs), time.Duration(b.Usage.CPUSystemNs))
	if cpu < 1500*time.Millisecond || cpu > 2600*time.Millisecond {
		t.Errorf("container busy loop of 2 s of CPU work: measured %s, want 1.5 s to 2.6 s", cpu)
	}
	if m.Status != fsm.StatusCompleted || m.Usage == nil || m.Usage.PeakMemoryBytes < 200<<20 {
		t.Fatalf("200 MiB in a container: %s usage %+v, want completed with a peak of at least %d bytes", describe(m), m.Usage, 200<<20)
	}
	t.Logf("container 200 MiB buffer: peak %.1f MiB", float64(m.Usage.PeakMemoryBytes)/(1<<20))
}
