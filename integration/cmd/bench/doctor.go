//go:build integration

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/hakuriver/hakuriver-ha/integration/harness"
)

// doctorRuns is how many timed `hakuriver doctor` runs the doctor row takes
// its median from (after one warm-up run).
const doctorRuns = 5

// doctorTarget is the wall-time target of one `hakuriver doctor` run.
const doctorTarget = 3 * time.Second

// doctorResult is the outcome of the doctor measurement.
type doctorResult struct {
	walls    []time.Duration
	members  int
	checks   int
	fails    int
	firstErr string
}

// doctorSection runs and prints the doctor row when the "doctor" or the
// "runners" part of the bench is selected. It is the one call main needs:
//
//	doctorSection(out, root, bin, s)
func doctorSection(out io.Writer, root *scope, bin string, s settings) {
	if !s.sections["doctor"] && !s.sections["runners"] {
		return
	}
	fmt.Fprintln(out)
	printDoctor(out, doctorBench(root, bin))
}

// doctorBench times `hakuriver doctor -o json` against 3 replicas and 2
// runners on loopback, doctorRuns times after a warm-up run.
func doctorBench(parent *scope, bin string) doctorResult {
	sc := parent.child("doctor")
	defer sc.close()
	c := startRunnerBenchCluster(sc, bin)
	for _, name := range []string{"d1", "d2"} {
		c.StartRunner(name, harness.RunnerOptions{Cores: 1, Memory: "1G", NoDocker: true})
	}
	var res doctorResult
	for n := range doctorRuns + 1 {
		r := harness.RunCLI(context.Background(), harness.CLICommand{Bin: bin, Timeout: time.Minute,
			Args: []string{"--host", c.HostFlag(), "-o", "json", "doctor", "--token", c.Token()}})
		var rep struct {
			Members []struct {
				Checks []json.RawMessage `json:"checks"`
			} `json:"members"`
			Summary struct {
				Fail int `json:"fail"`
			} `json:"summary"`
		}
		if err := json.Unmarshal([]byte(r.Stdout), &rep); err != nil || r.Code < 0 {
			if res.firstErr == "" {
				res.firstErr = fmt.Sprintf("exit %d: %v %v", r.Code, r.Err, err)
			}
			continue
		}
		if n == 0 {
			continue // warm-up
		}
		res.walls = append(res.walls, r.Elapsed)
		res.members, res.checks, res.fails = len(rep.Members), 0, max(res.fails, rep.Summary.Fail)
		for _, m := range rep.Members {
			res.checks += len(m.Checks)
		}
	}
	return res
}

// printDoctor prints the doctor row.
func printDoctor(out io.Writer, r doctorResult) {
	fmt.Fprintf(out, "`hakuriver doctor -o json` against 3 replicas + 2 runners on loopback: %d runs after 1 warm-up (wall time of the CLI process)\n", len(r.walls))
	tw := table(out)
	fmt.Fprintln(tw, "runs\tmembers\tchecks\tmost failed\tmedian ms\tmin ms\tmax ms\ttarget\tfirst error\t")
	fmt.Fprintf(tw, "%d\t%d\t%d\t%d\t%s\t%s\t%s\t< %s ms\t%s\t\n", len(r.walls), r.members, r.checks, r.fails,
		ms(median(r.walls)), ms(minD(r.walls)), ms(maxD(r.walls)), ms(doctorTarget), orDash(r.firstErr))
	tw.Flush() //nolint:errcheck // stdout
}
