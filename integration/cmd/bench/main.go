//go:build integration

// Command bench measures a 3-replica HakuRiver host cluster of real
// `hakuriver host` processes on loopback, fsync on: submit throughput
// through the leader and a follower, failover time after SIGKILL of the
// leader, host memory at many tasks, snapshot/restore cost, backup files
// (`cluster snapshot save|inspect|restore`) at many tasks, native task
// latency on a real `hakuriver runner`, the time to notice a dead runner,
// the leader's cost of 1,000 heart-beating runners, and the cost of
// authenticating every request with an account token, and a rolling upgrade
// under load (its duration, the longest pause of acknowledged writes). It
// prints tables and never passes or fails on speed; it exits non-zero only
// when the cluster misbehaves (no leader, lost tasks).
//
//	go run -tags integration ./integration/cmd/bench [-quick] [-sections runners,heartbeats]
//
// The binary under test is $HAKURIVER_BIN, or one built with `go build`.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hakuriver/hakuriver-ha/integration/harness"
)

// settings are the bench's parameters, from flags.
type settings struct {
	quick        bool
	duration     time.Duration
	maxRequests  int
	trials       int
	tasks        int
	snapshotWait time.Duration
	// runner benchmarks
	runnerSamples int
	offlineTrials int
	simRunners    int
	simDuration   time.Duration
	sections      map[string]bool
	// historySizes are the task counts of the history section.
	historySizes string
}

// allSections lists the bench's parts in the order they run.
var allSections = []string{"throughput", "failover", "scale", "fsm", "snapshot", "runners", "heartbeats", "doctor", "docker", "ssh", "vpslife", "auth", "ui", "upgrade", "notify", "access", "usage", "exec", "sweep", "history"}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout))
}

func run(args []string, out io.Writer) int {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	var s settings
	fs.BoolVar(&s.quick, "quick", false, "short run: 1 s throughput runs, 3 failover trials, 10,000 tasks, no wait for a snapshot, 30 native tasks, 10 s of 200 simulated runners' heartbeats")
	fs.DurationVar(&s.duration, "duration", 3*time.Second, "time limit of each throughput run")
	fs.IntVar(&s.maxRequests, "max-requests", 20000, "request limit of each throughput run")
	fs.IntVar(&s.trials, "trials", 5, "failover trials, and rolling-upgrade rounds")
	fs.IntVar(&s.tasks, "tasks", 100000, "tasks in the FSM for the memory and snapshot measurements")
	fs.DurationVar(&s.snapshotWait, "snapshot-wait", 250*time.Second, "how long to wait for Raft's periodic snapshot (every 120-240 s) before the restart measurement; 0 = do not wait")
	fs.IntVar(&s.runnerSamples, "runner-samples", 100, "native `true` tasks timed on one runner")
	fs.IntVar(&s.offlineTrials, "offline-trials", 3, "runner SIGKILL → offline trials")
	fs.IntVar(&s.simRunners, "sim-runners", 1000, "simulated runners heart-beating every second")
	fs.DurationVar(&s.simDuration, "sim-duration", 60*time.Second, "measurement window of the simulated heartbeats")
	fs.StringVar(&s.historySizes, "history-sizes", "10000,100000,1000000", "finished tasks in the state of each history row (comma-separated)")
	sections := fs.String("sections", strings.Join(allSections, ","), "comma-separated parts to run: "+strings.Join(allSections, ", "))
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if s.quick {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		defaults := map[string]func(){
			"duration":       func() { s.duration = time.Second },
			"max-requests":   func() { s.maxRequests = 5000 },
			"trials":         func() { s.trials = 3 },
			"tasks":          func() { s.tasks = 10000 },
			"snapshot-wait":  func() { s.snapshotWait = 0 },
			"runner-samples": func() { s.runnerSamples = 30 },
			"sim-duration":   func() { s.simDuration = 10 * time.Second },
			"sim-runners":    func() { s.simRunners = 200 },
			"history-sizes":  func() { s.historySizes = "10000,100000" },
		}
		for name, apply := range defaults {
			if !set[name] {
				apply()
			}
		}
	}

	s.sections = map[string]bool{}
	for _, name := range strings.Split(*sections, ",") {
		name = strings.TrimSpace(name)
		if !slices.Contains(allSections, name) {
			fmt.Fprintf(os.Stderr, "bench: -sections: unknown part %q (have %s)\n", name, strings.Join(allSections, ", "))
			return 2
		}
		s.sections[name] = true
	}

	root := newScope("bench")
	defer root.close()
	bin, err := harness.Binary(root.TempDir())
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	host, _ := os.Hostname() //nolint:errcheck // informative only
	fmt.Fprintf(out, "HakuRiver HA host benchmark: %d cores (GOMAXPROCS %d), %s/%s, %s, host %q, %s\n",
		runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.GOOS, runtime.GOARCH, runtime.Version(), host, time.Now().UTC().Format(time.RFC3339))
	fmt.Fprintf(out, "3 `hakuriver host` replicas on loopback, Raft log fsync on (default), binary %s", bin)
	if s.quick {
		fmt.Fprint(out, ", -quick")
	}
	fmt.Fprintln(out)

	var sizes []int
	if s.sections["history"] {
		var err error
		if sizes, err = parseSizes(s.historySizes); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			return 2
		}
	}
	parts := benchParts(sizes)
	for _, name := range allSections {
		if s.sections[name] {
			fmt.Fprintln(out)
			parts[name](out, root, bin, s)
		}
	}
	return 0
}

// part measures one section of the bench and prints its tables.
type part func(out io.Writer, root *scope, bin string, s settings)

// benchParts maps every name in allSections to its part; sizes are the
// history section's task counts.
func benchParts(sizes []int) map[string]part {
	return map[string]part{
		"throughput": func(out io.Writer, root *scope, bin string, s settings) {
			printThroughput(out, s, throughput(root, bin, s))
		},
		"failover": func(out io.Writer, root *scope, bin string, s settings) {
			printFailover(out, s, failover(root, bin, s))
		},
		"scale": func(out io.Writer, root *scope, bin string, s settings) {
			printState(out, s, stateAtScale(root, bin, s))
		},
		"fsm": func(out io.Writer, _ *scope, _ string, s settings) { printFSM(out, fsmSnapshot(s.tasks)) },
		"snapshot": func(out io.Writer, root *scope, bin string, s settings) {
			printBackup(out, backupSection(root, bin, s))
		},
		"runners": func(out io.Writer, root *scope, bin string, s settings) {
			printRunner(out, s, runnerBench(root, bin, s))
		},
		"heartbeats": func(out io.Writer, root *scope, bin string, s settings) {
			printSimulated(out, simulatedRunners(root, bin, s))
		},
		"doctor":  doctorSection,
		"docker":  dockerSection,
		"ssh":     sshSection,
		"vpslife": vpsLifeSection,
		"auth":    authSection,
		"ui":      uiSection,
		"upgrade": upgradeSection,
		"notify":  notifySection,
		"access":  accessSection,
		"usage":   func(out io.Writer, _ *scope, _ string, s settings) { printUsageBench(out, usageSection(s.tasks)) },
		"exec":    execSection,
		"sweep":   sweepSection,
		"history": func(out io.Writer, root *scope, bin string, _ settings) {
			printHistory(out, historySection(root, bin, sizes))
		},
	}
}

// table returns a tabwriter for one aligned table.
func table(out io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
}

func ms(d time.Duration) string {
	return fmt.Sprintf("%.0f", float64(d)/float64(time.Millisecond))
}

func mib(b int64) string {
	return fmt.Sprintf("%.1f", float64(b)/(1<<20))
}
