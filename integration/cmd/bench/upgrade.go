//go:build integration

package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/integration/harness"
	"github.com/hakuriver/hakuriver-ha/ops/environment"
)

// Bounds of the rolling-upgrade measurement.
const (
	upgradeClients   = 4
	upgradePace      = 100 * time.Millisecond
	upgradePerClient = 5000
	// upgradeStepWait bounds `cluster wait-healthy` after one restart.
	upgradeStepWait = 60 * time.Second
	// upgradeQuiet is the window without restarts measured for comparison.
	upgradeQuiet = 5 * time.Second
)

// upgradeStep is one restart of a rolling upgrade.
type upgradeStep struct {
	kind       string // "follower", "leader" or "runner"
	member     string
	begin, end time.Time
	gap        time.Duration // longest time without an acknowledged submit, begin → next step
}

// upgradeRound is one full rolling upgrade.
type upgradeRound struct {
	took      time.Duration
	gap       time.Duration
	retryable int
	acked     int
	steps     []upgradeStep
}

// upgradeSection starts 3 replicas and 2 native runners and, while 4
// clients submit native `true` (each pausing 100 ms between acknowledged
// submits, retrying a failed attempt on the next replica), upgrades every
// member the README's way s.trials times, alternating between two copies
// of the binary: followers, then the leader after `cluster
// transfer-leadership`, then the runners, each stopped with SIGTERM and
// followed by `cluster wait-healthy`.
func upgradeSection(out io.Writer, parent *scope, bin string, s settings) {
	sc := parent.child("upgrade")
	defer sc.close()
	bins := [2]string{bin, copyBin(sc, bin)}
	c := harness.StartCluster(sc, harness.Options{Bin: bin, Replicas: 3, LogLevel: "warn",
		HeartbeatInterval: benchHBInterval, HeartbeatTimeoutFactor: 10})
	runners := []string{"u1", "u2"}
	for _, name := range runners {
		c.StartRunner(name, harness.RunnerOptions{Cores: 16, Memory: "8G", NoDocker: true})
	}
	null := environment.Native
	load := c.StartLoad(harness.LoadOptions{Clients: upgradeClients, Pace: upgradePace, MaxPerClient: upgradePerClient,
		Request: func(k, n int) api.SubmitRequest {
			return api.SubmitRequest{Command: "true", ContainerName: &null, RequestID: fmt.Sprintf("up-%d-%d", k, n)}
		}})
	if err := load.WaitEach(3, 30*time.Second); err != nil {
		sc.Fatalf("clients before the upgrade: %v", err)
	}
	// The same measure without any restart, for comparison.
	quietFrom := time.Now()
	time.Sleep(upgradeQuiet)
	quietTo := time.Now()
	var rounds []upgradeRound
	for n := range s.trials {
		rounds = append(rounds, upgradeOnce(sc, c, bins[(n+1)%2], runners))
		if err := load.WaitEach(3, 30*time.Second); err != nil {
			sc.Fatalf("clients after upgrade %d: %v", n, err)
		}
	}
	res := load.Stop()
	if len(res.Failures) > 0 {
		sc.Fatalf("clients failed during the upgrades: %v", res.Failures)
	}
	for k := range rounds {
		r := &rounds[k]
		last := r.steps[len(r.steps)-1]
		to := last.end
		if k+1 < len(rounds) {
			to = rounds[k+1].steps[0].begin
		}
		r.gap, _ = res.MaxGap(r.steps[0].begin, to)
		for i := range r.steps {
			end := to
			if i+1 < len(r.steps) {
				end = r.steps[i+1].begin
			}
			r.steps[i].gap, _ = res.MaxGap(r.steps[i].begin, end)
		}
		for _, e := range res.Retryable {
			if !e.At.Before(r.steps[0].begin) && !e.At.After(to) {
				r.retryable++
			}
		}
		for _, a := range res.Acks {
			if !a.At.Before(r.steps[0].begin) && !a.At.After(to) {
				r.acked++
			}
		}
	}
	quiet, _ := res.MaxGap(quietFrom, quietTo)
	printUpgrade(out, rounds, len(res.Acks), quiet)
}

// copyBin copies bin to a new file: the "new version" of an upgrade.
func copyBin(sc *scope, bin string) string {
	b, err := os.ReadFile(bin)
	if err != nil {
		sc.Fatalf("read %s: %v", bin, err)
	}
	out := filepath.Join(sc.TempDir(), "hakuriver-new")
	if err := os.WriteFile(out, b, 0o755); err != nil {
		sc.Fatalf("copy the binary: %v", err)
	}
	return out
}

// upgradeOnce restarts every member of c from bin, the README's way.
func upgradeOnce(sc *scope, c *harness.Cluster, bin string, runners []string) upgradeRound {
	start := time.Now()
	var r upgradeRound
	leader := c.WaitLeader(harness.LeaderTimeout)
	order := append(c.Followers(), leader)
	for _, i := range order {
		st := upgradeStep{kind: "follower", member: c.Replica(i).ID, begin: time.Now()}
		if l := c.WaitLeader(harness.LeaderTimeout); l == i {
			st.kind = "leader"
			to := c.Replica(order[0]).ID
			if res := c.CLIVia(nil, upgradeStepWait, "", "cluster", "transfer-leadership", "--to", to, "--token-file", c.TokenFile()); res.Code != 0 {
				sc.Fatalf("transfer leadership away from %s: %s", st.member, res)
			}
			c.WaitNewLeader(i, harness.LeaderTimeout)
		}
		if err := c.Terminate(i); err != nil {
			sc.Fatalf("stop %s: %v", st.member, err)
		}
		c.SetBinary(i, bin)
		c.Restart(i)
		benchWaitHealthy(sc, c)
		st.end = time.Now()
		r.steps = append(r.steps, st)
	}
	for _, name := range runners {
		st := upgradeStep{kind: "runner", member: name, begin: time.Now()}
		if err := c.TerminateRunner(name); err != nil {
			sc.Fatalf("stop runner %s: %v", name, err)
		}
		c.SetRunnerBinary(name, bin)
		c.RestartRunner(name)
		benchWaitHealthy(sc, c, "--runner", name)
		st.end = time.Now()
		r.steps = append(r.steps, st)
	}
	r.took = time.Since(start)
	return r
}

// benchWaitHealthy runs `cluster wait-healthy` with args.
func benchWaitHealthy(sc *scope, c *harness.Cluster, args ...string) {
	res := c.CLIVia(nil, upgradeStepWait+10*time.Second, "", append([]string{"-o", "json", "cluster", "wait-healthy", "--timeout", upgradeStepWait.String()}, args...)...)
	var rep struct {
		Healthy bool `json:"healthy"`
	}
	if res.Code != 0 || json.Unmarshal([]byte(res.Stdout), &rep) != nil || !rep.Healthy {
		sc.Fatalf("cluster wait-healthy %v: %s", args, res)
	}
}

func printUpgrade(out io.Writer, rounds []upgradeRound, acked int, quiet time.Duration) {
	fmt.Fprintf(out, "Rolling upgrade of 3 replicas + 2 native runners (README procedure: SIGTERM, new binary, `cluster wait-healthy` after each;\n"+
		"leader last after `cluster transfer-leadership`), %d clients submitting native `true` with request_ids, 100 ms apart; %d rounds, %d submits acknowledged\n",
		upgradeClients, len(rounds), acked)
	fmt.Fprintf(out, "(gap = longest time in which no client had a submit acknowledged: %s ms over %s without restarts; retryable = failed attempts retried on the next replica)\n",
		ms(quiet), upgradeQuiet)
	tw := table(out)
	fmt.Fprintln(tw, "round\tupgrade s\tmax gap ms\tretryable\tacked\t")
	for k, r := range rounds {
		fmt.Fprintf(tw, "%d\t%.1f\t%s\t%d\t%d\t\n", k+1, r.took.Seconds(), ms(r.gap), r.retryable, r.acked)
	}
	tw.Flush() //nolint:errcheck // stdout
	byKind := map[string][]upgradeStep{}
	for _, r := range rounds {
		for _, st := range r.steps {
			byKind[st.kind] = append(byKind[st.kind], st)
		}
	}
	tw = table(out)
	fmt.Fprintln(tw, "step\tsamples\tp50 s\tmax s\tp50 gap ms\tmax gap ms\t")
	for _, kind := range []string{"follower", "leader", "runner"} {
		steps := byKind[kind]
		var took, gaps []time.Duration
		for _, st := range steps {
			took = append(took, st.end.Sub(st.begin))
			gaps = append(gaps, st.gap)
		}
		slices.Sort(took)
		slices.Sort(gaps)
		fmt.Fprintf(tw, "%s\t%d\t%.2f\t%.2f\t%s\t%s\t\n", kind, len(steps), pctD(took, 0.5).Seconds(), pctD(took, 1).Seconds(), ms(pctD(gaps, 0.5)), ms(pctD(gaps, 1)))
	}
	tw.Flush() //nolint:errcheck // stdout
}
