//go:build integration

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hakuriver/hakuriver-ha/integration/harness"
	"github.com/hakuriver/hakuriver-ha/sshproxy"
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

// tunnelSamples is how many tunnels the in-process setup rows open.
func tunnelSamples(s settings) int {
	if s.quick {
		return 30
	}
	return 100
}

// pairedBytes is the size of each paired transfer round; pairedRounds how
// many rounds (one direct and one proxied transfer each, in alternating
// order) are timed.
const pairedBytes = 256 << 20

func pairedRounds(s settings) int {
	if s.quick {
		return 3
	}
	return 5
}

// transferBytes is the size of the single long transfer of the full run
// (0: none with -quick).
func transferBytes(s settings) int64 {
	if s.quick {
		return 0
	}
	return 1 << 30
}

// transferPair is one paired round: the same transfer directly and through
// the proxy, with the CPU time each used.
type transferPair struct {
	direct, proxy time.Duration
	// directCPU is the ssh client's CPU time; proxyCPU that of hakuriver
	// ssh and its ssh client; replicaCPU that of the replica (its proxy)
	// during the proxied transfer, replicaIdleCPU during the direct one
	// (its background work).
	directCPU, proxyCPU, replicaCPU, replicaIdleCPU time.Duration
}

func (p transferPair) ratio() float64 {
	if p.proxy <= 0 || p.direct <= 0 {
		return 0
	}
	return p.direct.Seconds() / p.proxy.Seconds()
}

// sshResult gathers the SSH proxy measurements.
type sshResult struct {
	vps, runner string
	loadavg     string
	setupProxy  []time.Duration // `hakuriver ssh <id> -- true` wall time, sorted
	setupDirect []time.Duration // `ssh -p <port> root@127.0.0.1 true` wall time, sorted
	cliStart    []time.Duration // `hakuriver ssh --help` wall time, sorted
	setupAdded  []time.Duration // per round: proxy - CLI start - direct, sorted
	// openProxy and openDirect are in-process times to an open connection
	// to the VPS's published port: through the proxy (connect,
	// REQUEST_TUNNEL, SUCCESS) or directly (connect); sorted.
	openProxy, openDirect []time.Duration
	pairs                 []transferPair
	bytes                 int64 // the long transfer (0: none)
	transferProxy         time.Duration
	transferDirect        time.Duration
	firstErr              string
	skipped               string
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
// 0) and returns its wall time and CPU time (user and system, its waited-
// for children included).
func timedCommand(budget time.Duration, n int64, name string, args ...string) (wall, cpu time.Duration, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), budget)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	if n > 0 {
		cmd.Stdin = io.LimitReader(zeros{}, n)
	}
	t0 := time.Now()
	out, err := cmd.CombinedOutput()
	wall = time.Since(t0)
	if ps := cmd.ProcessState; ps != nil {
		cpu = ps.UserTime() + ps.SystemTime()
	}
	if err != nil {
		return wall, cpu, fmt.Errorf("%s %v: %w: %.300s", name, args, err, out)
	}
	return wall, cpu, nil
}

// processCPU returns the CPU time (user and system) process pid has used.
func processCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("cpu of %d: %w", pid, err)
	}
	// The fields after the command name, which is in parentheses.
	i := bytes.LastIndexByte(b, ')')
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("cpu of %d: short stat %q", pid, b)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("cpu of %d: %w", pid, err)
	}
	const clockTicks = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / clockTicks, nil
}

// openTime returns the time dial took to open a connection.
func openTime(dial func(ctx context.Context) (net.Conn, error)) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), sshCallBudget)
	defer cancel()
	t0 := time.Now()
	c, err := dial(ctx)
	d := time.Since(t0)
	if err != nil {
		return d, err
	}
	c.Close()
	return d, nil
}

// sshBench starts 1 replica and 1 Docker runner, creates a VPS from the
// sshd test image with a generated key, and times `true` sessions and
// transfers into `cat > /dev/null` through `hakuriver ssh` (the replica's
// SSH proxy, line protocol) and with plain ssh to the VPS's published port,
// the CLI's start alone (`hakuriver ssh --help`), and tunnels opened in
// this process through the proxy and directly.
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
		c.CLI("vps", "kill", created.TaskID)
		harness.RemoveContainers(sc, "hakuriver-vps-"+created.TaskID)
	})
	proxyAddr := c.SSHProxy(0)
	_, proxyPort, err := net.SplitHostPort(proxyAddr)
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

	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		res.loadavg = strings.Join(strings.Fields(string(b))[:3], " ")
	}

	// Setup latency: `true`, alternating proxy and direct, and the CLI's
	// start alone, after warm-ups.
	const warmup = 2
	for k := range sshSetupSamples(s) + warmup {
		dp, _, err := timedCommand(sshCallBudget, 0, bin, proxyArgs("true")...)
		if err != nil {
			res.fail("proxy: %v", err)
			dp = 0
		}
		dd, _, err := timedCommand(sshCallBudget, 0, "ssh", directArgs("true")...)
		if err != nil {
			res.fail("direct: %v", err)
			dd = 0
		}
		dc, _, err := timedCommand(sshCallBudget, 0, bin, "ssh", "--help")
		if err != nil {
			res.fail("CLI start: %v", err)
			dc = 0
		}
		if k < warmup {
			continue
		}
		if dp > 0 {
			res.setupProxy = append(res.setupProxy, dp)
		}
		if dd > 0 {
			res.setupDirect = append(res.setupDirect, dd)
		}
		if dc > 0 {
			res.cliStart = append(res.cliStart, dc)
		}
		if dp > 0 && dd > 0 && dc > 0 {
			res.setupAdded = append(res.setupAdded, dp-dc-dd)
		}
	}
	slices.Sort(res.setupProxy)
	slices.Sort(res.setupDirect)
	slices.Sort(res.cliStart)
	slices.Sort(res.setupAdded)

	// The tunnel alone, in this process: until the connection to the
	// published port is open, through the proxy and directly, alternating,
	// paced so that the VPS's sshd (which forks for each connection and
	// drops new ones beyond MaxStartups) keeps up.
	vpsAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(created.Task.SSHPort))
	id, _ := sshproxy.ParseTaskID(created.TaskID) //nolint:errcheck // the cluster's own ID
	proxyDial := func(ctx context.Context) (net.Conn, error) {
		return sshproxy.DialTunnelAs(ctx, proxyAddr, id, c.AdminToken(), sshCallBudget)
	}
	var nd net.Dialer
	directDial := func(ctx context.Context) (net.Conn, error) { return nd.DialContext(ctx, "tcp", vpsAddr) }
	for k := range tunnelSamples(s) + warmup {
		dp, err := openTime(proxyDial)
		if err != nil {
			res.fail("proxy tunnel: %v", err)
		} else if k >= warmup {
			res.openProxy = append(res.openProxy, dp)
		}
		dd, err := openTime(directDial)
		if err != nil {
			res.fail("direct connection: %v", err)
		} else if k >= warmup {
			res.openDirect = append(res.openDirect, dd)
		}
		time.Sleep(20 * time.Millisecond)
	}
	slices.Sort(res.openProxy)
	slices.Sort(res.openDirect)

	// Throughput: zero bytes into `cat > /dev/null`, paired rounds in
	// alternating order, then (full run) one long pair.
	pid := c.Replica(0).PID()
	timedTransfer := func(n int64, name string, args ...string) (wall, cpu, replica time.Duration, err error) {
		before, err := processCPU(pid)
		if err != nil {
			return 0, 0, 0, err
		}
		wall, cpu, err = timedCommand(transferBudget, n, name, args...)
		after, cerr := processCPU(pid)
		return wall, cpu, after - before, errors.Join(err, cerr)
	}
	directTransfer := func(n int64) (wall, cpu, replica time.Duration, err error) {
		return timedTransfer(n, "ssh", directArgs("cat > /dev/null")...)
	}
	proxyTransfer := func(n int64) (wall, cpu, replica time.Duration, err error) {
		return timedTransfer(n, bin, proxyArgs("cat > /dev/null")...)
	}
	for k := range pairedRounds(s) {
		var p transferPair
		var derr, perr error
		if k%2 == 0 {
			p.direct, p.directCPU, p.replicaIdleCPU, derr = directTransfer(pairedBytes)
			p.proxy, p.proxyCPU, p.replicaCPU, perr = proxyTransfer(pairedBytes)
		} else {
			p.proxy, p.proxyCPU, p.replicaCPU, perr = proxyTransfer(pairedBytes)
			p.direct, p.directCPU, p.replicaIdleCPU, derr = directTransfer(pairedBytes)
		}
		if err := errors.Join(derr, perr); err != nil {
			res.fail("transfer: %v", err)
			continue
		}
		res.pairs = append(res.pairs, p)
	}
	if res.bytes = transferBytes(s); res.bytes > 0 {
		if d, _, _, err := directTransfer(res.bytes); err != nil {
			res.fail("direct transfer: %v", err)
		} else {
			res.transferDirect = d
		}
		if d, _, _, err := proxyTransfer(res.bytes); err != nil {
			res.fail("proxy transfer: %v", err)
		} else {
			res.transferProxy = d
		}
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

// setupRow prints one row of the setup tables.
func setupRow(tw io.Writer, name string, sorted []time.Duration, target, firstErr string) {
	fmt.Fprintf(tw, "%s\t%d\t%.2f\t%.2f\t%.2f\t%s\t%s\t\n", name, len(sorted),
		msf(pctD(sorted, 0.5)), msf(pctD(sorted, 0.99)), msf(pctD(sorted, 1)), target, firstErr)
}

func printSSH(out io.Writer, r sshResult) {
	if r.skipped != "" {
		fmt.Fprintf(out, "SSH proxy: skipped: %s\n", r.skipped)
		return
	}
	fmt.Fprintf(out, "SSH proxy: VPS %s (hakuriver-test/sshd, 1 core) on Docker runner %s, 1 replica, load average %s at the start; both paths use OpenSSH with the same ed25519 key, so the ratio isolates the proxy\n", r.vps, r.runner, r.loadavg)
	fmt.Fprintln(out, "(proxy = `hakuriver ssh --proxy-port P --key K <id> -- <cmd>`: CLI start, REQUEST_TUNNEL through the replica's proxy, local port, system ssh; direct = `ssh -p <published port> -i K root@127.0.0.1 <cmd>`; CLI start = `hakuriver ssh --help`; wall time of the client process)")
	tw := table(out)
	fmt.Fprintln(tw, "setup (`true`)\tsamples\tp50 ms\tp99 ms\tmax ms\ttarget\tfirst error\t")
	setupRow(tw, "proxy", r.setupProxy, "-", orDash(r.firstErr))
	setupRow(tw, "direct", r.setupDirect, "-", "-")
	setupRow(tw, "CLI start", r.cliStart, "-", "-")
	setupRow(tw, "added: proxy - CLI start - direct, per round", r.setupAdded, "<= 2", "-")
	fmt.Fprintf(tw, "added p50: proxy p50 - direct p50 (CLI start included)\t-\t%.2f\t-\t-\t-\t-\t\n", msf(pctD(r.setupProxy, 0.5)-pctD(r.setupDirect, 0.5)))
	tw.Flush() //nolint:errcheck // stdout

	fmt.Fprintln(out)
	fmt.Fprintln(out, "SSH tunnel setup in the bench process, no processes started: until the connection to the VPS's published port is open, through the proxy (connect, REQUEST_TUNNEL with the token, SUCCESS) or directly (connect)")
	tw = table(out)
	fmt.Fprintln(tw, "tunnel\tsamples\tp50 ms\tp99 ms\tmax ms\ttarget\tfirst error\t")
	setupRow(tw, "proxy", r.openProxy, "-", "-")
	setupRow(tw, "direct", r.openDirect, "-", "-")
	fmt.Fprintf(tw, "added (p50, p99)\t-\t%.2f\t%.2f\t-\t<= 2\t-\t\n",
		msf(pctD(r.openProxy, 0.5)-pctD(r.openDirect, 0.5)), msf(pctD(r.openProxy, 0.99)-pctD(r.openDirect, 0.99)))
	tw.Flush() //nolint:errcheck // stdout

	fmt.Fprintln(out)
	fmt.Fprintf(out, "SSH transfer of %s MiB of zeros from stdin into `cat > /dev/null` in the VPS, paired rounds (direct and proxy back to back, order alternating; wall time of the client process, setup included; CPU: the client processes', and the replica's during the proxied transfer and, for its background work, during the direct one)\n", mib(pairedBytes))
	tw = table(out)
	fmt.Fprintln(tw, "round\tdirect s\tproxy s\tproxy / direct\tdirect client CPU s\tproxy client CPU s\treplica CPU s\treplica CPU (direct) s\t")
	ratios := make([]float64, 0, len(r.pairs))
	for i, p := range r.pairs {
		ratios = append(ratios, p.ratio())
		fmt.Fprintf(tw, "%d\t%.2f\t%.2f\t%.2fx\t%.2f\t%.2f\t%.2f\t%.2f\t\n", i+1, p.direct.Seconds(), p.proxy.Seconds(), p.ratio(),
			p.directCPU.Seconds(), p.proxyCPU.Seconds(), p.replicaCPU.Seconds(), p.replicaIdleCPU.Seconds())
	}
	tw.Flush() //nolint:errcheck // stdout
	if len(ratios) > 0 {
		slices.Sort(ratios)
		fmt.Fprintf(out, "proxy / direct throughput on %s MiB: median %.2fx, range %.2fx-%.2fx over %d rounds (target >= 0.9x)\n",
			mib(pairedBytes), ratios[len(ratios)/2], ratios[0], ratios[len(ratios)-1], len(ratios))
	}
	if r.bytes == 0 {
		return
	}

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
