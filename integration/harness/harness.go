//go:build integration

// Package harness starts real `hakuriver host` processes on loopback for the
// integration tests and the benchmark, injects faults into them (SIGKILL,
// SIGSTOP/SIGCONT, restart) and talks to them over the REST API.
//
// Every replica gets its own directory (data dir, shared dir, log file),
// ports picked by listening on 127.0.0.1:0, and is killed when the TB's
// cleanups run. The package does not import "testing": a *testing.T
// satisfies TB, and the benchmark passes its own implementation.
package harness

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// TB is the part of testing.TB the harness uses. Fatalf must stop the
// calling goroutine (as testing.T's does) or the whole program.
type TB interface {
	Helper()
	Logf(format string, args ...any)
	Fatalf(format string, args ...any)
	Cleanup(func())
	TempDir() string
	Failed() bool
}

// Bounds used by the harness itself.
const (
	// StartTimeout bounds the wait for one process to serve its API.
	StartTimeout = 20 * time.Second
	// LeaderTimeout bounds the wait for a (new) leader.
	LeaderTimeout = 20 * time.Second
	// SettleTime is how long StartCluster wants one leader in one term
	// before it returns.
	SettleTime = time.Second
	// exitTimeout bounds the wait for a killed process to be reaped.
	exitTimeout = 10 * time.Second
	// logTailLines is how much of each replica's log is printed on failure.
	logTailLines = 150
)

// Options configures a Cluster.
type Options struct {
	// Bin is the hakuriver binary; required (see Binary).
	Bin string
	// Replicas is the number of host replicas StartCluster starts.
	Replicas int
	// BootstrapExpect is passed as --bootstrap-expect; 0 means 3, or
	// Replicas when that is smaller.
	BootstrapExpect int
	// LeaderWaitSeconds is passed as --leader-wait-seconds when > 0.
	LeaderWaitSeconds int
	// LogLevel is passed as --log-level; "" means info.
	LogLevel string
	// Args are extra flags for every replica.
	Args []string
}

// Cluster is a set of host processes. Its methods are safe for concurrent
// use, except that those taking no error return report through TB.Fatalf
// and must be called from the goroutine running the test.
type Cluster struct {
	tb   TB
	opts Options
	base string
	hc   *http.Client

	mu       sync.Mutex
	replicas []*Replica
}

// procState is what the harness did last to a replica's process.
type procState int

const (
	stateDown    procState = iota // never started, killed or exited
	stateRunning                  // started or continued
	stateStopped                  // SIGSTOPped
)

// Replica is one `hakuriver host` process with a fixed identity: node ID,
// ports and directories survive Restart.
type Replica struct {
	// ID is the node ID (--node-id).
	ID string
	// Dir holds data/, shared/ and host.log.
	Dir string
	// API is the base URL of its REST API.
	API string
	// Gossip and Raft are host:port addresses.
	Gossip string
	Raft   string

	args    []string
	logPath string

	mu      sync.Mutex
	state   procState
	cmd     *exec.Cmd
	exited  chan struct{}
	waitErr error
	starts  int
}

// DataDir returns the replica's --data-dir.
func (r *Replica) DataDir() string { return filepath.Join(r.Dir, "data") }

// LogPath returns the file its stdout and stderr go to (appended across
// restarts).
func (r *Replica) LogPath() string { return r.logPath }

// PID returns the process ID of the current process, or 0 when down.
func (r *Replica) PID() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.state == stateDown || r.cmd == nil || r.cmd.Process == nil {
		return 0
	}
	return r.cmd.Process.Pid
}

// Binary returns $HAKURIVER_BIN when set, otherwise builds the hakuriver
// binary into dir (which must exist) with `go build` and returns its path.
func Binary(dir string) (string, error) {
	if p := os.Getenv("HAKURIVER_BIN"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("HAKURIVER_BIN: %w", err)
		}
		return p, nil
	}
	out := filepath.Join(dir, "hakuriver")
	cmd := exec.Command("go", "build", "-o", out, "github.com/hakuriver/hakuriver-ha/cmd/hakuriver")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build hakuriver: %w\n%s", err, b)
	}
	return out, nil
}

// StartCluster starts opts.Replicas replicas (3 when unset) that bootstrap
// one Raft group, and returns once every one serves its API, one leader has
// held one term for SettleTime and it lists all of them as voters. Every
// process is killed at cleanup, and the logs are printed when tb failed.
func StartCluster(tb TB, opts Options) *Cluster {
	tb.Helper()
	if opts.Bin == "" {
		tb.Fatalf("harness: Options.Bin is empty")
	}
	if opts.Replicas < 1 {
		opts.Replicas = 3
	}
	if opts.BootstrapExpect == 0 {
		opts.BootstrapExpect = min(3, opts.Replicas)
	}
	c := &Cluster{
		tb:   tb,
		opts: opts,
		base: tb.TempDir(),
		// No client timeout: every call carries a ctx deadline instead.
		hc: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 32, IdleConnTimeout: 30 * time.Second}},
	}
	// Registered after TempDir, so it runs before the directory is removed.
	tb.Cleanup(c.shutdown)

	ports, err := reservePorts(opts.Replicas)
	if err != nil {
		tb.Fatalf("harness: %v", err)
	}
	defer ports.release()
	var joins []string
	for i := range opts.Replicas {
		joins = append(joins, net.JoinHostPort("127.0.0.1", strconv.Itoa(ports.ports[i].gossip)))
	}
	for i := range opts.Replicas {
		r, err := c.newReplica(fmt.Sprintf("h%d", i+1), ports.ports[i], joins)
		if err != nil {
			tb.Fatalf("harness: %v", err)
		}
		c.mu.Lock()
		c.replicas = append(c.replicas, r)
		c.mu.Unlock()
	}
	ports.release()
	for i := range opts.Replicas {
		if err := c.startProcess(i); err != nil {
			tb.Fatalf("harness: %v", err)
		}
	}
	for i := range opts.Replicas {
		c.WaitAPI(i)
	}
	c.WaitStableLeader(LeaderTimeout, SettleTime)
	c.WaitVoters(opts.Replicas, LeaderTimeout)
	return c
}

// AddReplica starts one more replica that joins through the gossip address
// of every existing replica (and itself), with the same --bootstrap-expect,
// and returns its index once it serves its API.
func (c *Cluster) AddReplica() int {
	c.tb.Helper()
	ports, err := reservePorts(1)
	if err != nil {
		c.tb.Fatalf("harness: %v", err)
	}
	defer ports.release()
	c.mu.Lock()
	var joins []string
	for _, r := range c.replicas {
		joins = append(joins, r.Gossip)
	}
	id := fmt.Sprintf("h%d", len(c.replicas)+1)
	c.mu.Unlock()
	joins = append(joins, net.JoinHostPort("127.0.0.1", strconv.Itoa(ports.ports[0].gossip)))
	r, err := c.newReplica(id, ports.ports[0], joins)
	if err != nil {
		c.tb.Fatalf("harness: %v", err)
	}
	c.mu.Lock()
	c.replicas = append(c.replicas, r)
	i := len(c.replicas) - 1
	c.mu.Unlock()
	ports.release()
	if err := c.startProcess(i); err != nil {
		c.tb.Fatalf("harness: %v", err)
	}
	c.WaitAPI(i)
	return i
}

func (c *Cluster) newReplica(id string, p replicaPorts, joins []string) (*Replica, error) {
	dir, err := os.MkdirTemp(c.base, id+"-")
	if err != nil {
		return nil, fmt.Errorf("create replica dir: %w", err)
	}
	for _, sub := range []string{"data", "shared"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o750); err != nil {
			return nil, fmt.Errorf("create replica dir: %w", err)
		}
	}
	r := &Replica{
		ID:      id,
		Dir:     dir,
		API:     "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(p.api)),
		Gossip:  net.JoinHostPort("127.0.0.1", strconv.Itoa(p.gossip)),
		Raft:    net.JoinHostPort("127.0.0.1", strconv.Itoa(p.raft)),
		logPath: filepath.Join(dir, "host.log"),
	}
	level := c.opts.LogLevel
	if level == "" {
		level = "info"
	}
	r.args = []string{"host",
		"--node-id", id,
		"--data-dir", r.DataDir(),
		"--shared-dir", filepath.Join(dir, "shared"),
		"--bind", "127.0.0.1",
		"--api-port", strconv.Itoa(p.api),
		"--raft-port", strconv.Itoa(p.raft),
		"--gossip-port", strconv.Itoa(p.gossip),
		"--ssh-proxy-port", strconv.Itoa(p.ssh),
		"--bootstrap-expect", strconv.Itoa(c.opts.BootstrapExpect),
		"--join", strings.Join(joins, ","),
		"--log-level", level,
	}
	if c.opts.LeaderWaitSeconds > 0 {
		r.args = append(r.args, "--leader-wait-seconds", strconv.Itoa(c.opts.LeaderWaitSeconds))
	}
	r.args = append(r.args, c.opts.Args...)
	return r, nil
}

// N returns the number of replicas ever started (including dead ones).
func (c *Cluster) N() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.replicas)
}

// Replica returns replica i.
func (c *Cluster) Replica(i int) *Replica {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.replicas[i]
}

// Index returns the index of the replica with node ID id, or -1.
func (c *Cluster) Index(id string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, r := range c.replicas {
		if r.ID == id {
			return i
		}
	}
	return -1
}

// Running returns the indexes of replicas whose process runs (not stopped,
// not dead).
func (c *Cluster) Running() []int {
	c.mu.Lock()
	rs := append([]*Replica(nil), c.replicas...)
	c.mu.Unlock()
	var out []int
	for i, r := range rs {
		r.mu.Lock()
		if r.state == stateRunning {
			out = append(out, i)
		}
		r.mu.Unlock()
	}
	return out
}

// startProcess launches replica i's process with its fixed arguments.
func (c *Cluster) startProcess(i int) error {
	r := c.Replica(i)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.state != stateDown {
		return fmt.Errorf("start %s: already running", r.ID)
	}
	logf, err := os.OpenFile(r.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open log of %s: %w", r.ID, err)
	}
	defer logf.Close()
	r.starts++
	fmt.Fprintf(logf, "=== harness: start #%d of %s at %s: %s %s\n", r.starts, r.ID,
		time.Now().Format(time.RFC3339Nano), c.opts.Bin, strings.Join(r.args, " "))
	cmd := exec.Command(c.opts.Bin, r.args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = withoutEnv(os.Environ(), "HAKURIVER_CONFIG")
	// The replica dies with the harness even when cleanups never run.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", r.ID, err)
	}
	exited := make(chan struct{})
	r.cmd, r.exited, r.state, r.waitErr = cmd, exited, stateRunning, nil
	go func() {
		err := cmd.Wait()
		r.mu.Lock()
		r.waitErr = err
		if r.cmd == cmd {
			r.state = stateDown
		}
		r.mu.Unlock()
		close(exited)
	}()
	return nil
}

func withoutEnv(env []string, name string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, name+"=") {
			out = append(out, kv)
		}
	}
	return out
}

// signal sends sig to replica i's process and records the new state.
func (c *Cluster) signal(i int, sig syscall.Signal, next procState) error {
	r := c.Replica(i)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd == nil || r.cmd.Process == nil || r.state == stateDown {
		return fmt.Errorf("signal %v to %s: not running", sig, r.ID)
	}
	if err := r.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("signal %v to %s: %w", sig, r.ID, err)
	}
	r.state = next
	return nil
}

// Kill sends SIGKILL to replica i and waits until the process is reaped.
func (c *Cluster) Kill(i int) {
	c.tb.Helper()
	if err := c.kill(i); err != nil {
		c.tb.Fatalf("harness: %v", err)
	}
}

func (c *Cluster) kill(i int) error {
	r := c.Replica(i)
	r.mu.Lock()
	exited := r.exited
	r.mu.Unlock()
	if err := c.signal(i, syscall.SIGKILL, stateDown); err != nil {
		return err
	}
	select {
	case <-exited:
		return nil
	case <-time.After(exitTimeout):
		return fmt.Errorf("kill %s: process not reaped after %s", r.ID, exitTimeout)
	}
}

// Stop freezes replica i with SIGSTOP: its sockets stay open but nothing
// answers, like a partitioned or hung machine.
func (c *Cluster) Stop(i int) {
	c.tb.Helper()
	if err := c.signal(i, syscall.SIGSTOP, stateStopped); err != nil {
		c.tb.Fatalf("harness: %v", err)
	}
}

// Cont resumes a replica frozen by Stop.
func (c *Cluster) Cont(i int) {
	c.tb.Helper()
	if err := c.signal(i, syscall.SIGCONT, stateRunning); err != nil {
		c.tb.Fatalf("harness: %v", err)
	}
}

// Restart starts replica i again, after Kill, with the same flags, ports
// and data dir, and waits until it serves its API.
func (c *Cluster) Restart(i int) {
	c.tb.Helper()
	if err := c.startProcess(i); err != nil {
		c.tb.Fatalf("harness: %v", err)
	}
	c.WaitAPI(i)
}

// WaitAPI waits until replica i answers GET /api/cluster, failing early
// when its process exits.
func (c *Cluster) WaitAPI(i int) {
	c.tb.Helper()
	r := c.Replica(i)
	deadline := time.Now().Add(StartTimeout)
	var lastErr error
	for time.Now().Before(deadline) {
		r.mu.Lock()
		exited, waitErr := r.exited, r.waitErr
		r.mu.Unlock()
		select {
		case <-exited:
			c.tb.Fatalf("harness: %s exited while starting: %v\n%s", r.ID, waitErr, tail(r.logPath, 40))
		default:
		}
		if _, err := c.Status(i); err == nil {
			return
		} else {
			lastErr = err
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.tb.Fatalf("harness: %s did not serve its API within %s: %v", r.ID, StartTimeout, lastErr)
}

// shutdown kills every process and prints the logs when the test failed.
func (c *Cluster) shutdown() {
	c.mu.Lock()
	rs := append([]*Replica(nil), c.replicas...)
	c.mu.Unlock()
	var errs []error
	for i := range rs {
		if rs[i].PID() != 0 {
			if err := c.kill(i); err != nil {
				errs = append(errs, err)
			}
		}
	}
	c.hc.CloseIdleConnections()
	if c.tb.Failed() || len(errs) > 0 {
		for _, r := range rs {
			c.tb.Logf("---- log of %s (%s), last %d lines ----\n%s", r.ID, r.logPath, logTailLines, tail(r.logPath, logTailLines))
		}
	}
	if err := errors.Join(errs...); err != nil {
		c.tb.Logf("harness: shutdown: %v", err)
	}
}

// LogTail returns the last n lines of replica i's log.
func (c *Cluster) LogTail(i, n int) string { return tail(c.Replica(i).logPath, n) }

func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(read %s: %v)", path, err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
