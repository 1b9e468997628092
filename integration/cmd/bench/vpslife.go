//go:build integration

package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/hakuriver/hakuriver-ha/integration/harness"
)

// vpsLifeSamples is how many creates and stop→start cycles the "vpslife"
// part times.
func vpsLifeSamples(s settings) int {
	if s.quick {
		return 3
	}
	return 8
}

// vpsLifeResult is what the "vpslife" part measured.
type vpsLifeResult struct {
	runner, loadavg   string
	create, stop, run []time.Duration // create --wait; stop; start --wait
	firstErr, skipped string
}

// vpsLifeSection runs and prints the "vpslife" part: VPS stop→start time
// against create time, through the CLI of a 1-replica cluster with one
// Docker runner (the image is already loaded, so create measures the
// container, key, sshd and the cluster's round trips, not a tarball load).
func vpsLifeSection(out io.Writer, root *scope, bin string, s settings) {
	printVPSLife(out, vpsLifeBench(root, bin, s))
}

func vpsLifeBench(parent *scope, bin string, s settings) vpsLifeResult {
	var res vpsLifeResult
	if p := harness.DockerProblem(benchSSHD); p != "" {
		res.skipped = p
		return res
	}
	sc := parent.child("vpslife")
	defer sc.close()
	c, runner := startDockerBench(sc, bin, 1, "bl")
	res.runner = runner
	env := "hkb-vpslife-" + benchSuffix()
	benchEnvironment(sc, c, benchSSHD, env)
	benchCreateTar(sc, c, env)
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		res.loadavg = strings.Join(strings.Fields(string(b))[:3], " ")
	}
	fail := func(format string, args ...any) {
		if res.firstErr == "" {
			res.firstErr = fmt.Sprintf(format, args...)
		}
	}
	key := filepath.Join(sc.TempDir(), "vps_ed25519")
	created := func() (string, time.Duration, bool) {
		t0 := time.Now()
		r := c.CLIVia(nil, vpsBudget, "", "-o", "json", "vps", "create", "--wait", "--poll-interval", "50ms",
			"--container", env, "--cores", "1", "--target", runner, "--public-key-file", key+".pub")
		d := time.Since(t0)
		var out struct {
			TaskID string `json:"task_id"`
		}
		if r.Code != 0 || r.Decode(&out) != nil || out.TaskID == "" {
			fail("vps create: %s", r)
			return "", 0, false
		}
		sc.Cleanup(func() {
			c.CLI("vps", "kill", out.TaskID)
			harness.RemoveContainers(sc, "hakuriver-vps-"+out.TaskID)
		})
		return out.TaskID, d, true
	}
	if r := harness.RunCLI(context.Background(), harness.CLICommand{Bin: "ssh-keygen", Timeout: time.Minute,
		Args: []string{"-q", "-t", "ed25519", "-N", "", "-f", key}}); r.Code != 0 {
		sc.Fatalf("ssh-keygen: %s", r)
	}
	// Warm-up: the first create may load the image.
	id, _, ok := created()
	if !ok {
		return res
	}
	c.CLI("vps", "kill", id)
	for range vpsLifeSamples(s) {
		id, d, ok := created()
		if !ok {
			break
		}
		res.create = append(res.create, d)
		c.CLI("vps", "kill", id)
	}
	id, _, ok = created()
	if !ok {
		return res
	}
	for range vpsLifeSamples(s) {
		t0 := time.Now()
		if r := c.CLIVia(nil, vpsBudget, "", "vps", "stop", id); r.Code != 0 {
			fail("vps stop: %s", r)
			break
		}
		res.stop = append(res.stop, time.Since(t0))
		t0 = time.Now()
		if r := c.CLIVia(nil, vpsBudget, "", "vps", "start", id, "--wait", "--poll-interval", "50ms"); r.Code != 0 {
			fail("vps start: %s", r)
			break
		}
		res.run = append(res.run, time.Since(t0))
	}
	return res
}

func printVPSLife(out io.Writer, r vpsLifeResult) {
	if r.skipped != "" {
		fmt.Fprintf(out, "VPS lifecycle: skipped: %s\n", r.skipped)
		return
	}
	fmt.Fprintf(out, "VPS lifecycle: hakuriver-test/sshd VPS (1 core) on Docker runner %s, 1 replica, load average %s at the start\n", r.runner, r.loadavg)
	fmt.Fprintln(out, "(wall time of the CLI: `vps create --wait` until sshd answers; `vps stop` (mark on the runner, commit, docker stop; container kept); `vps start --wait` until sshd answers on its new port)")
	tw := table(out)
	fmt.Fprintln(tw, "step\tsamples\tp50 ms\tp99 ms\tmax ms\tfirst error\t")
	for _, row := range []struct {
		name string
		d    []time.Duration
	}{{"create", r.create}, {"stop", r.stop}, {"start (stopped → running)", r.run}} {
		d := slices.Clone(row.d)
		slices.Sort(d)
		e := "-"
		if row.name == "create" {
			e = orDash(r.firstErr)
		}
		setupRowErr(tw, row.name, d, e)
	}
	if len(r.create) > 0 && len(r.run) > 0 {
		c, s := r.create, r.run
		slices.Sort(c)
		slices.Sort(s)
		fmt.Fprintf(tw, "start / create (p50)\t-\t%.2f\t-\t-\t-\t\n", float64(pctD(s, 0.5))/float64(pctD(c, 0.5)))
	}
	tw.Flush() //nolint:errcheck // stdout
}

func setupRowErr(tw io.Writer, name string, sorted []time.Duration, firstErr string) {
	fmt.Fprintf(tw, "%s\t%d\t%.2f\t%.2f\t%.2f\t%s\t\n", name, len(sorted),
		msf(pctD(sorted, 0.5)), msf(pctD(sorted, 0.99)), msf(pctD(sorted, 1)), strings.TrimSpace(firstErr))
}
