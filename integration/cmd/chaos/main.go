//go:build integration

// Command chaos runs a randomized fault campaign against a 3-replica
// HakuRiver cluster and one native runner, each in its own network
// namespace on a bridge (integration/chaos): faults drawn by seed one after
// the other under client load (2|1 partition with the leader in the
// minority, isolated leader with clients attached, one-way partition,
// 1|1|1 partition, SIGKILL of the leader, the leader's disk full, SIGSTOP
// of a random member, SIGKILL and restart of all replicas at once, packet
// loss on every link, the runner cut from the hosts, the leader cut from
// gossip only or from Raft only, replica clocks off by minutes, added
// latency on one member's TCP links), each
// healed and followed by the history checker.
// It prints a summary table (operations, faults, anomalies by kind) and
// exits 1 on any anomaly, 2 when the cluster misbehaved otherwise.
//
//	go run -tags integration ./integration/cmd/chaos -duration 30m -seed 42
//
// The same seed draws the same faults, holds and client counts (timing,
// and so the histories, still vary). It needs root (network namespaces,
// iptables). The binary under test is $HAKURIVER_SKEW_BIN, or one built
// with `go build -tags hakuriver_clockskew` (the product with a wall clock
// the test can shift; cluster/clock).
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/signal"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/hakuriver/hakuriver-ha/integration/chaos"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout))
}

func run(args []string, out io.Writer) int {
	fs := flag.NewFlagSet("chaos", flag.ContinueOnError)
	duration := fs.Duration("duration", 5*time.Minute, "how long to keep injecting faults (the last one is finished and checked after)")
	seed := fs.Uint64("seed", 0, "seed of the fault schedule; 0 picks one from the clock (printed)")
	holdFlag := fs.Duration("hold", 0, "how long each fault lasts (0: drawn by the seed, 3-12 s)")
	only := fs.String("faults", "", "comma-separated fault kinds to draw from (default: all of "+strings.Join(chaos.FaultNames(), ",")+")")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	names := chaos.FaultNames()
	if *only != "" {
		names = nil
		for _, n := range strings.Split(*only, ",") {
			if !slices.Contains(chaos.FaultNames(), n) {
				fmt.Fprintf(os.Stderr, "chaos: -faults: unknown fault kind %q (known: %s)\n", n, strings.Join(chaos.FaultNames(), ","))
				return 2
			}
			names = append(names, n)
		}
	}
	if *seed == 0 {
		*seed = uint64(time.Now().UnixNano())
	}
	fmt.Fprintf(out, "chaos: seed %d, duration %s\n", *seed, *duration)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	tb := &scope{}
	defer tb.close()
	bin, err := chaos.SkewBinary(tb.TempDir())
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		return 2
	}
	env, err := chaos.NewEnv(tb, bin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		return 2
	}
	rng := rand.New(rand.NewPCG(*seed, 0))
	faults := chaos.Faults()
	injected := map[string]int{}
	anomalies := map[chaos.Kind]int{}
	end := time.Now().Add(*duration)
	for n := 0; time.Now().Before(end) && ctx.Err() == nil; n++ {
		name := names[rng.IntN(len(names))]
		hold := time.Duration(3+rng.IntN(10)) * time.Second
		if *holdFlag > 0 {
			hold = *holdFlag
		}
		hold = max(hold, faults[name].MinHold)
		clients, pinned := 2+rng.IntN(7), rng.IntN(3)
		fmt.Fprintf(out, "chaos: fault %d: %s for %s, %d clients + %d on the leader\n", n+1, name, hold, clients, pinned)
		rep, err := env.Run(ctx, faults[name], clients, pinned, hold, *seed+uint64(n)*16)
		if err != nil {
			fmt.Fprintln(os.Stderr, "chaos:", err)
			return 2
		}
		injected[name]++
		anoms, err := env.Check()
		if err != nil {
			fmt.Fprintln(os.Stderr, "chaos:", err)
			return 2
		}
		// Check checks the whole history so far: its latest count is the
		// run's.
		for k, v := range chaos.Summary(anoms) {
			anomalies[k] = v
		}
		for _, a := range anoms {
			fmt.Fprintf(out, "chaos:   anomaly %v\n", a)
		}
		ran, notRun := env.Losses()
		fmt.Fprintf(out, "chaos:   %d writes during the fault, %.0f%% not acknowledged, resume %s, recovery %s; so far %d tasks reported lost after running, %d before\n",
			rep.Writes, 100*rep.ErrorRate(), rep.Resume, rep.Recovery, ran, notRun)
	}
	summary(out, env, injected, anomalies)
	total := 0
	for _, v := range anomalies {
		total += v
	}
	if total > 0 {
		return 1
	}
	return 0
}

// summary prints operations, faults and anomalies as tables.
func summary(out io.Writer, env *chaos.Env, injected map[string]int, anomalies map[chaos.Kind]int) {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "operation\tok\tfail\tinfo\t")
	counts := env.Hist.Count()
	for _, k := range []chaos.OpKind{chaos.OpSubmit, chaos.OpKill, chaos.OpRead} {
		c := counts[k]
		fmt.Fprintf(w, "%s\t%d\t%d\t%d\t\n", k, c[chaos.Ok], c[chaos.Fail], c[chaos.Info])
	}
	w.Flush()
	ran, notRun := env.Losses()
	fmt.Fprintf(out, "tasks reported lost: %d after running (their token written once: a reported loss, not a double run), %d before running\n", ran, notRun)
	fmt.Fprintln(out)
	reps := env.Reports()
	sort.SliceStable(reps, func(i, j int) bool { return reps[i].Fault < reps[j].Fault })
	fmt.Fprint(out, chaos.FormatReports(reps))
	fmt.Fprintln(out)
	fmt.Fprint(out, chaos.FormatByKind(reps))
	fmt.Fprintln(out)
	w = tabwriter.NewWriter(out, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "fault kind\tinjected\t")
	for _, n := range chaos.FaultNames() {
		fmt.Fprintf(w, "%s\t%d\t\n", n, injected[n])
	}
	fmt.Fprintln(w, "\t\t")
	fmt.Fprintln(w, "anomaly kind\tcount\t")
	for _, k := range chaos.AllKinds() {
		fmt.Fprintf(w, "%s\t%d\t\n", k, anomalies[k])
	}
	w.Flush()
}

// scope implements harness.TB for the whole run: it owns the cleanups
// (processes, namespaces, the bridge and its firewall rule) and runs them
// at close, also when Fatalf exits.
type scope struct {
	mu       sync.Mutex
	cleanups []func()
	failed   bool
	closed   bool
}

func (s *scope) Helper() {}

func (s *scope) Logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "chaos: %s\n", fmt.Sprintf(format, args...))
}

func (s *scope) Fatalf(format string, args ...any) {
	s.mu.Lock()
	s.failed = true
	s.mu.Unlock()
	fmt.Fprintf(os.Stderr, "chaos: FATAL: %s\n", fmt.Sprintf(format, args...))
	s.close()
	os.Exit(2)
}

func (s *scope) Cleanup(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cleanups = append(s.cleanups, f)
}

func (s *scope) TempDir() string {
	dir, err := os.MkdirTemp("", "hakuriver-chaos-")
	if err != nil {
		s.Fatalf("temp dir: %v", err)
	}
	s.Cleanup(func() {
		if err := os.RemoveAll(dir); err != nil {
			s.Logf("remove %s: %v", dir, err)
		}
	})
	return dir
}

func (s *scope) Failed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failed
}

// close runs the cleanups, last registered first, once.
func (s *scope) close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	fs := s.cleanups
	s.cleanups = nil
	s.mu.Unlock()
	for i := len(fs) - 1; i >= 0; i-- {
		fs[i]()
	}
}
