//go:build integration

package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/hakuriver/hakuriver-ha/integration/harness"
)

// Bounds of the SSH measurements.
const (
	vpsBudget      = 2 * time.Minute
	sshCallBudget  = 30 * time.Second
	transferBudget = 10 * time.Minute
)

// sshSetupSamples is how many `true` sessions each setup row times.
func sshSetupSamples(s settings) int {
	if s.quick {
		return 10
	}
	return 30
}

// transferBytes is the size of the timed transfer.
func transferBytes(s settings) int64 {
	if s.quick {
		return 256 << 20
	}
	return 1 << 30
}

// sshResult gathers the SSH proxy measurements.
type sshResult struct {
	vps, runner    string
	bytes          int64
	setupProxy     []time.Duration // `hakuriver ssh <id> -- true` wall time, sorted
	setupDirect    []time.Duration // `ssh -p <port> root@127.0.0.1 true` wall time, sorted
	transferProxy  time.Duration
	transferDirect time.Duration
	firstErr       string
	skipped        string
}

func (r *sshResult) fail(format string, args ...any) {
	if r.firstErr == "" {
		r.firstErr = fmt.Sprintf(format, args...)
	}
}

// sshSection runs and prints the "ssh" part.
func sshSection(out io.Writer, root *scope, bin string, s settings) {
	printSSH(out, sshBench(root, bin, s))
}

// zeros is an endless reader of zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// timedCommand runs name args with n zero bytes on stdin (none when n is
// 0) and returns its wall time.
func timedCommand(budget time.Duration, n int64, name string, args ...string) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), budget)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	if n > 0 {
		cmd.Stdin = io.LimitReader(zeros{}, n)
	}
	t0 := time.Now()
	out, err := cmd.CombinedOutput()
	d := time.Since(t0)
	if err != nil {
		return d, fmt.Errorf("%s %v: %w: %.300s", name, args, err, out)
	}
	return d, nil
}

// sshBench starts 1 replica and 1 Docker runner, creates a VPS from the
// sshd test image with a generated key, and times `true` sessions and a
// transfer into `cat > /dev/null` through `hakuriver ssh` (the replica's
// SSH proxy, line protocol) and with plain ssh to the VPS's published port.
func sshBench(parent *scope, bin string, s settings) sshResult {
	var res sshResult
	if p := harness.DockerProblem(benchSSHD); p != "" {
		res.skipped = p
		return res
	}
	if _, err := exec.LookPath("ssh"); err != nil {
		res.skipped = "the OpenSSH client is missing"
		return res
	}
	sc := parent.child("ssh")
	defer sc.close()
	c, runner := startDockerBench(sc, bin, 1, "bs")
	res.runner = runner
	env := "hkb-sshd-" + benchSuffix()
	benchEnvironment(sc, c, benchSSHD, env)
	benchCreateTar(sc, c, env)

	key := filepath.Join(sc.TempDir(), "vps_ed25519")
	r := c.CLIVia(nil, vpsBudget, "", "-o", "json", "vps", "create", "--wait", "--poll-interval", "200ms",
		"--container", env, "--cores", "1", "--target", runner, "--gen-ssh-key", "--key-out", key)
	if r.Code != 0 {
		sc.Fatalf("vps create: %s", r)
	}
	var created struct {
		TaskID         string `json:"task_id"`
		PrivateKeyFile string `json:"private_key_file"`
		Task           *struct {
			Status  string `json:"status"`
			SSHPort int    `json:"ssh_port"`
		} `json:"task"`
	}
	if err := r.Decode(&created); err != nil || created.Task == nil || created.Task.SSHPort <= 0 {
		sc.Fatalf("vps create --wait: want a running VPS with an SSH port, got %s (%v)", r.Stdout, err)
	}
	res.vps = created.TaskID
	if created.PrivateKeyFile != "" {
		key = created.PrivateKeyFile
	}
	sc.Cleanup(func() {
		c.CLI("vps", "stop", created.TaskID)
		harness.RemoveContainers(sc, "hakuriver-vps-"+created.TaskID)
	})
	_, proxyPort, err := net.SplitHostPort(c.SSHProxy(0))
	if err != nil {
		sc.Fatalf("SSH proxy address: %v", err)
	}
	sshOpts := []string{"-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "ConnectTimeout=10",
		"-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR"}
	proxyArgs := func(command string) []string {
		// The proxy lets the VPS's owner through: the admin's token.
		a := []string{"--host", c.HostFlag(0), "--token", c.AdminToken(), "ssh", "--proxy-port", proxyPort, "--key", key, created.TaskID, "--"}
		return append(append(a, sshOpts...), command)
	}
	directArgs := func(command string) []string {
		a := []string{"-p", strconv.Itoa(created.Task.SSHPort), "-i", key}
		return append(append(a, sshOpts...), "root@127.0.0.1", command)
	}

	// Setup latency: `true`, alternating proxy and direct, after warm-ups.
	const warmup = 2
	for k := range sshSetupSamples(s) + warmup {
		dp, err := timedCommand(sshCallBudget, 0, bin, proxyArgs("true")...)
		if err != nil {
			res.fail("proxy: %v", err)
		} else if k >= warmup {
			res.setupProxy = append(res.setupProxy, dp)
		}
		dd, err := timedCommand(sshCallBudget, 0, "ssh", directArgs("true")...)
		if err != nil {
			res.fail("direct: %v", err)
		} else if k >= warmup {
			res.setupDirect = append(res.setupDirect, dd)
		}
	}
	slices.Sort(res.setupProxy)
	slices.Sort(res.setupDirect)

	// Throughput: n zero bytes into `cat > /dev/null`.
	res.bytes = transferBytes(s)
	if d, err := timedCommand(transferBudget, res.bytes, "ssh", directArgs("cat > /dev/null")...); err != nil {
		res.fail("direct transfer: %v", err)
	} else {
		res.transferDirect = d
	}
	if d, err := timedCommand(transferBudget, res.bytes, bin, proxyArgs("cat > /dev/null")...); err != nil {
		res.fail("proxy transfer: %v", err)
	} else {
		res.transferProxy = d
	}
	return res
}

// mibps returns n bytes over d in MiB/s.
func mibps(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / (1 << 20) / d.Seconds()
}

func printSSH(out io.Writer, r sshResult) {
	if r.skipped != "" {
		fmt.Fprintf(out, "SSH proxy: skipped: %s\n", r.skipped)
		return
	}
	fmt.Fprintf(out, "SSH proxy: VPS %s (hakuriver-test/sshd, 1 core) on Docker runner %s, 1 replica; both paths use OpenSSH with the same ed25519 key, so the ratio isolates the proxy\n", r.vps, r.runner)
	fmt.Fprintln(out, "(proxy = `hakuriver ssh --proxy-port P --key K <id> -- <cmd>`: CLI start, REQUEST_TUNNEL through the replica's proxy, local port, system ssh; direct = `ssh -p <published port> -i K root@127.0.0.1 <cmd>`; wall time of the client process)")
	tw := table(out)
	fmt.Fprintln(tw, "setup (`true`)\tsamples\tp50 ms\tp99 ms\tmax ms\tadded p50 ms\ttarget\tfirst error\t")
	added := pctD(r.setupProxy, 0.5) - pctD(r.setupDirect, 0.5)
	fmt.Fprintf(tw, "proxy\t%d\t%.1f\t%.1f\t%.1f\t%.1f\t< 2\t%s\t\n", len(r.setupProxy),
		msf(pctD(r.setupProxy, 0.5)), msf(pctD(r.setupProxy, 0.99)), msf(pctD(r.setupProxy, 1)), msf(added), orDash(r.firstErr))
	fmt.Fprintf(tw, "direct\t%d\t%.1f\t%.1f\t%.1f\t-\t-\t-\t\n", len(r.setupDirect),
		msf(pctD(r.setupDirect, 0.5)), msf(pctD(r.setupDirect, 0.99)), msf(pctD(r.setupDirect, 1)))
	tw.Flush() //nolint:errcheck // stdout

	fmt.Fprintln(out)
	fmt.Fprintf(out, "SSH transfer of %s MiB of zeros from stdin into `cat > /dev/null` in the VPS (wall time of the client process, setup included)\n", mib(r.bytes))
	tw = table(out)
	fmt.Fprintln(tw, "path\tseconds\tMiB/s\tproxy / direct\ttarget\t")
	ratioTP := "-"
	if r.transferProxy > 0 && r.transferDirect > 0 {
		ratioTP = fmt.Sprintf("%.2fx", mibps(r.bytes, r.transferProxy)/mibps(r.bytes, r.transferDirect))
	}
	fmt.Fprintf(tw, "proxy\t%.2f\t%.1f\t%s\t>= 0.9x\t\n", r.transferProxy.Seconds(), mibps(r.bytes, r.transferProxy), ratioTP)
	fmt.Fprintf(tw, "direct\t%.2f\t%.1f\t-\t-\t\n", r.transferDirect.Seconds(), mibps(r.bytes, r.transferDirect))
	tw.Flush() //nolint:errcheck // stdout
}
