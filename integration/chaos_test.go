//go:build integration

package integration

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/integration/chaos"
	"github.com/hakuriver/hakuriver-ha/integration/harness"
)

// TestChaos runs one cluster whose three replicas and native runner each
// live in their own network namespace on a bridge, and injects real faults
// under client load, one after the other: a 2|1 partition with the leader
// (and the runner) on the minority side, the leader isolated from every
// member while clients pinned to it keep calling it, a one-way partition
// (the followers stop hearing the leader), a 1|1|1 partition (no majority
// anywhere: no write may be acknowledged), SIGKILL of the leader under 8
// clients, and the leader's data dir filesystem (a 64 MiB tmpfs) filled to
// the last byte, and the wall clocks of the leader and a follower stepped by
// minutes in opposite directions before leadership moves to that follower
// (every replica runs the hakuriver_clockskew test build, whose clock the
// test can shift), and 20–200 ms added each way to every TCP link of one
// member (a delaying relay in the namespaces; no netem). After each, the network is healed, the cluster quiesces and
// the history checker (integration/chaos) must find zero anomalies in the
// whole history so far; each fault's figures are logged.
func TestChaos(t *testing.T) {
	bin, err := chaos.SkewBinary(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	env, err := chaos.NewEnv(t, bin)
	if errors.Is(err, harness.ErrNetnsUnavailable) {
		skipUnlessRequired(t, netnsRequireEnv, "%v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	faults := chaos.Faults()
	for i, name := range chaos.CIFaultNames() {
		t.Run(name, func(t *testing.T) {
			env.TB = t
			env.C = env.C.For(t)
			clients, pinned := 4, 2
			if name == "kill" {
				clients, pinned = 8, 0
			}
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			lostBefore, notRunBefore := env.Losses()
			rep, err := env.Run(ctx, faults[name], clients, pinned, 6*time.Second, uint64(i+1))
			if err != nil {
				t.Fatal(err)
			}
			// The minority-ack check is not vacuous: clients pinned to the
			// cut-off leader did write to it during the fault.
			if pinned > 0 && len(rep.Minority) > 0 && rep.MinorityWrites == 0 {
				t.Errorf("no write reached the minority side during %s", rep.Fault)
			}
			t.Logf("%s: %d writes during the fault, %.0f%% not acknowledged, %d of them to the minority side, writes resumed on the majority after %s, full recovery (a write through every replica, runner online, gossip healed) %s after healing",
				rep.Fault, rep.Writes, 100*rep.ErrorRate(), rep.MinorityWrites, rep.Resume, rep.Recovery)
			anoms, err := env.Check()
			if err != nil {
				t.Fatal(err)
			}
			for _, a := range anoms {
				t.Errorf("anomaly: %v", a)
			}
			ran, notRun := env.Losses()
			t.Logf("history: %v; tasks reported lost: %d after running, %d before", env.Hist.Count(), ran, notRun)
			// Stepped clocks must not make the leader judge the heartbeating
			// runner silent (silence is measured on the monotonic clock):
			// no task may be lost to them.
			if name == "clockskew" && ran+notRun > lostBefore+notRunBefore {
				t.Errorf("%d tasks reported lost while clocks were stepped: the runner was judged silent", ran+notRun-lostBefore-notRunBefore)
			}
		})
	}
	t.Logf("\n%s", chaos.FormatReports(env.Reports()))
}
