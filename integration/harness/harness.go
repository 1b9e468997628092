//go:build integration

// Package harness starts real `hakuriver host` and `hakuriver runner`
// processes on loopback for the integration tests and the benchmark, injects
// faults into them (SIGKILL, SIGSTOP/SIGCONT, restart) and talks to them over
// the REST API.
//
// Every process gets its own directory (data or local temp dir, log file)
// and ports picked by listening on 127.0.0.1:0; all of them share one
// shared dir and one cluster token. Everything, including native tasks
// whose supervisors outlive their runner, is killed when the TB's cleanups
// run. The package does not import "testing": a *testing.T satisfies TB,
// and the benchmark passes its own implementation.
package harness

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
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
	// Token is the cluster token of every host and runner; "" means a
	// random one. It reaches them through a file (--cluster-token-file), so
	// it appears on no command line and in no log.
	Token string
	// InsecureNoToken starts every host and runner without a cluster token,
	// with --insecure-no-token (Token then reaches none of them).
	InsecureNoToken bool
	// HeartbeatInterval (seconds) and HeartbeatTimeoutFactor are passed to
	// every host and runner when > 0.
	HeartbeatInterval      int
	HeartbeatTimeoutFactor int
	// Args are extra flags for every replica.
	Args []string
	// AnonymousRole is passed as --anonymous-role when set ("user" gives
	// the original HakuRiver's open API).
	AnonymousRole string
	// NoBootstrap leaves the accounts unbootstrapped. Otherwise
	// StartCluster bootstraps them with the cluster token, and Call, CLI
	// and friends act as that first admin (AdminToken).
	NoBootstrap bool
	// ReplicaBin maps a replica index to another binary than Bin, for a
	// cluster of mixed versions (a rolling upgrade).
	ReplicaBin map[int]string
	// Addresses, when set, puts replica i on Addresses[i] (a loopback
	// address such as 127.0.0.11) instead of 127.0.0.1, every replica with
	// the same ports, as on machines of their own; runners started with
	// RunnerOptions.Address use those ports too.
	Addresses []string
	// BeforeStart, when set, is called with each replica StartCluster
	// starts, after its directories exist and before its process starts
	// (e.g. to mount a small filesystem on its data dir).
	BeforeStart func(r *Replica) error
	// Netns, when set, runs replica i inside network namespace Netns[i]
	// (with `ip netns exec`), e.g. a Bridge member whose address is
	// Addresses[i].
	Netns []string
	// TLS runs the cluster with TLS: `hakuriver tls init` makes a CA and a
	// certificate per host and runner (TLSDir), every process gets
	// --cert-file, --key-file and --ca-file, APIs are https:// and the
	// harness's own calls and CLI runs (HAKURIVER_CA_FILE) verify the CA.
	TLS bool
	// RestoreFrom, when set, is a snapshot file (`hakuriver cluster
	// snapshot save`) restored into the first replica's data dir with
	// `hakuriver cluster snapshot restore` and that replica's own flags
	// before it starts: the cluster serves the saved state. Use it with
	// NoBootstrap-like AdminToken, since the accounts come from the file.
	RestoreFrom string
	// RestoreTimeout bounds that restore (CLITimeout when 0), and
	// StartTimeout the wait for a replica's API (StartTimeout when 0):
	// a replica restoring a large state takes longer.
	RestoreTimeout time.Duration
	StartTimeout   time.Duration
	// AdminToken, when set, is the API token of an admin that already
	// exists (in the RestoreFrom state): StartCluster does not bootstrap
	// the accounts and acts as that admin.
	AdminToken string
}

// Cluster is a set of host processes. Its methods are safe for concurrent
// use, except that those taking no error return report through TB.Fatalf
// and must be called from the goroutine running the test.
type Cluster struct {
	tb TB
	*cluster
}

// cluster is the state a Cluster and its views (For) share.
type cluster struct {
	opts      Options
	base      string
	shared    string
	tokenFile string
	// tag marks the environment of this cluster's runners, and so of their
	// task supervisors, for the cleanup.
	tag string
	hc  *http.Client

	// admin is the bootstrap admin's API token ("" with NoBootstrap).
	admin string
	// tlsDir holds the CA and node certificates ("" without Options.TLS).
	tlsDir string

	// same is the one port set of every member with Options.Addresses.
	same *replicaPorts

	mu       sync.Mutex
	replicas []*Replica
	runners  []*Runner
}

// Replica is one `hakuriver host` process with a fixed identity: node ID,
// ports and directories survive Restart.
type Replica struct {
	// ID is the node ID (--node-id).
	ID string
	// Dir holds data/ and host.log.
	Dir string
	// API is the base URL of its REST API.
	API string
	// Gossip and Raft are host:port addresses.
	Gossip string
	Raft   string

	proc *process
}

// DataDir returns the replica's --data-dir.
func (r *Replica) DataDir() string { return filepath.Join(r.Dir, "data") }

// LogPath returns the file its stdout and stderr go to (appended across
// restarts).
func (r *Replica) LogPath() string { return r.proc.logPath }

// PID returns the process ID of the current process, or 0 when down.
func (r *Replica) PID() int { return r.proc.pid() }

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

// BuildWithTags builds the hakuriver binary with the given build tags into
// dir (an older build emulated by tags, for upgrade tests).
func BuildWithTags(dir string, tags ...string) (string, error) {
	out := filepath.Join(dir, "hakuriver-"+strings.Join(tags, "-"))
	cmd := exec.Command("go", "build", "-tags", strings.Join(tags, ","), "-o", out, "github.com/hakuriver/hakuriver-ha/cmd/hakuriver")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build -tags %s hakuriver: %w\n%s", strings.Join(tags, ","), err, b)
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
	c := &Cluster{tb: tb, cluster: &cluster{
		opts: opts,
		base: tb.TempDir(),
		tag:  randomHex(8),
		// No client timeout: every call carries a ctx deadline instead.
		hc: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, IdleConnTimeout: 30 * time.Second}},
	}}
	// Registered after TempDir, so it runs before the directory is removed.
	tb.Cleanup(c.shutdown)
	if c.opts.Token == "" {
		c.opts.Token = randomHex(16)
	}
	c.shared = filepath.Join(c.base, "shared")
	c.tokenFile = filepath.Join(c.base, "cluster.token")
	if err := os.MkdirAll(c.shared, 0o755); err != nil {
		tb.Fatalf("harness: create shared dir: %v", err)
	}
	if err := os.WriteFile(c.tokenFile, []byte(c.opts.Token+"\n"), 0o600); err != nil {
		tb.Fatalf("harness: write cluster token file: %v", err)
	}

	if opts.TLS {
		c.tlsDir = filepath.Join(c.base, "tls")
		pool, err := c.issueCert("client")
		if err != nil {
			tb.Fatalf("harness: %v", err)
		}
		c.hc.Transport.(*http.Transport).TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	ports, err := reservePorts(opts.Replicas)
	if err != nil {
		tb.Fatalf("harness: %v", err)
	}
	defer ports.release()
	if len(opts.Addresses) > 0 {
		if len(opts.Addresses) < opts.Replicas {
			tb.Fatalf("harness: %d Addresses for %d replicas", len(opts.Addresses), opts.Replicas)
		}
		same := ports.ports[0]
		c.same = &same
		for i := range ports.ports {
			ports.ports[i] = same
		}
	}
	var joins []string
	for i := range opts.Replicas {
		joins = append(joins, net.JoinHostPort(c.replicaAddr(i), strconv.Itoa(ports.ports[i].gossip)))
	}
	for i := range opts.Replicas {
		r, err := c.newReplica(fmt.Sprintf("h%d", i+1), c.replicaAddr(i), ports.ports[i], joins)
		if err != nil {
			tb.Fatalf("harness: %v", err)
		}
		if i < len(opts.Netns) {
			r.proc.netns = opts.Netns[i]
		}
		c.mu.Lock()
		c.replicas = append(c.replicas, r)
		c.mu.Unlock()
	}
	ports.release()
	for i, bin := range opts.ReplicaBin {
		c.SetBinary(i, bin)
	}
	if opts.RestoreFrom != "" {
		if err := c.restore(0, opts.RestoreFrom); err != nil {
			tb.Fatalf("harness: %v", err)
		}
	}
	for i := range opts.Replicas {
		if opts.BeforeStart != nil {
			if err := opts.BeforeStart(c.Replica(i)); err != nil {
				tb.Fatalf("harness: before starting %s: %v", c.Replica(i).ID, err)
			}
		}
		if err := c.startProcess(i); err != nil {
			tb.Fatalf("harness: %v", err)
		}
	}
	for i := range opts.Replicas {
		c.WaitAPI(i)
	}
	c.WaitStableLeader(LeaderTimeout, SettleTime)
	c.WaitVoters(opts.Replicas, LeaderTimeout)
	switch {
	case opts.AdminToken != "":
		c.admin = opts.AdminToken
		c.waitTokenEverywhere(c.admin, time.Now().Add(LeaderTimeout))
	case !opts.NoBootstrap:
		c.bootstrap()
	}
	return c
}

// restore runs `hakuriver cluster snapshot restore file` with the flags
// replica i starts with, so that it starts on the saved state.
func (c *Cluster) restore(i int, file string) error {
	r := c.Replica(i)
	args := append([]string{"cluster", "snapshot", "restore", file}, r.proc.args[1:]...)
	res := RunCLI(context.Background(), CLICommand{Bin: c.opts.Bin, Args: args, Timeout: c.opts.RestoreTimeout})
	if res.Code != 0 {
		return fmt.Errorf("restore %s into %s: %s", file, r.ID, res)
	}
	c.tb.Logf("harness: %s", strings.TrimSpace(res.Stdout))
	return nil
}

// bootstrap creates the first admin with the cluster token and a secret
// chosen here, retrying through leader changes: an attempt whose answer
// was lost may have committed (409 on the retry), and the secret is known
// either way.
func (c *Cluster) bootstrap() {
	c.tb.Helper()
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		c.tb.Fatalf("harness: %v", err)
	}
	secret := "hkr_" + base64.RawURLEncoding.EncodeToString(b[:])
	deadline := time.Now().Add(LeaderTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		a, err := c.CallInternal(ctx, 0, http.MethodPost, "/api/auth/bootstrap", map[string]string{"user": "admin", "token": secret})
		cancel()
		if err == nil && (a.Status == http.StatusCreated || a.Status == http.StatusConflict) {
			c.admin = secret
			c.waitTokenEverywhere(secret, deadline)
			return
		}
		if time.Now().After(deadline) {
			c.tb.Fatalf("harness: bootstrap the accounts: %v %s", err, a)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitTokenEverywhere waits until every running replica accepts token.
func (c *Cluster) waitTokenEverywhere(token string, deadline time.Time) {
	c.tb.Helper()
	for _, i := range c.Running() {
		for {
			ctx, cancel := context.WithTimeout(context.Background(), ReadTimeout)
			a, err := c.CallAs(ctx, i, http.MethodGet, "/api/auth/whoami", token, nil)
			cancel()
			if err == nil && a.Status == http.StatusOK {
				break
			}
			if time.Now().After(deadline) {
				c.tb.Fatalf("harness: replica %s does not accept the admin token: %v %s", c.Replica(i).ID, err, a)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// AdminToken returns the API token of the admin StartCluster bootstrapped.
func (c *Cluster) AdminToken() string { return c.admin }

// For returns a view of the cluster that reports failures to tb, for use
// in a subtest (whose failures must not be reported through its parent).
// The processes stay the cluster's: they are killed at the cleanup of the
// TB that started it.
func (c *Cluster) For(tb TB) *Cluster { return &Cluster{tb: tb, cluster: c.cluster} }

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
	r, err := c.newReplica(id, "127.0.0.1", ports.ports[0], joins)
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

// replicaAddr is the address of replica i: Options.Addresses[i], or
// 127.0.0.1.
func (c *Cluster) replicaAddr(i int) string {
	if i < len(c.opts.Addresses) {
		return c.opts.Addresses[i]
	}
	return "127.0.0.1"
}

func (c *Cluster) newReplica(id, addr string, p replicaPorts, joins []string) (*Replica, error) {
	dir, err := os.MkdirTemp(c.base, id+"-")
	if err != nil {
		return nil, fmt.Errorf("create replica dir: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o750); err != nil {
		return nil, fmt.Errorf("create replica dir: %w", err)
	}
	r := &Replica{
		ID:     id,
		Dir:    dir,
		API:    c.scheme() + net.JoinHostPort(addr, strconv.Itoa(p.api)),
		Gossip: net.JoinHostPort(addr, strconv.Itoa(p.gossip)),
		Raft:   net.JoinHostPort(addr, strconv.Itoa(p.raft)),
	}
	args := []string{"host",
		"--node-id", id,
		"--data-dir", r.DataDir(),
		"--shared-dir", c.shared,
		"--bind", addr,
		"--advertise", addr,
		"--api-port", strconv.Itoa(p.api),
		"--raft-port", strconv.Itoa(p.raft),
		"--gossip-port", strconv.Itoa(p.gossip),
		"--ssh-proxy-port", strconv.Itoa(p.ssh),
		"--bootstrap-expect", strconv.Itoa(c.opts.BootstrapExpect),
		"--join", strings.Join(joins, ","),
	}
	if c.opts.LeaderWaitSeconds > 0 {
		args = append(args, "--leader-wait-seconds", strconv.Itoa(c.opts.LeaderWaitSeconds))
	}
	args = append(args, c.commonArgs(c.opts.HeartbeatInterval, c.opts.HeartbeatTimeoutFactor)...)
	tlsArgs, err := c.tlsArgs(id)
	if err != nil {
		return nil, err
	}
	args = append(args, tlsArgs...)
	args = append(args, c.opts.Args...)
	r.proc = c.newProcess(id, args, filepath.Join(dir, "host.log"))
	return r, nil
}

// scheme is the scheme of the API URLs: https:// with Options.TLS.
func (c *Cluster) scheme() string {
	if c.opts.TLS {
		return "https://"
	}
	return "http://"
}

// TLSDir returns the directory of the CA (ca.pem) and the node
// certificates, "" without Options.TLS.
func (c *Cluster) TLSDir() string { return c.tlsDir }

// CAFile returns the CA certificate, "" without Options.TLS.
func (c *Cluster) CAFile() string {
	if c.tlsDir == "" {
		return ""
	}
	return filepath.Join(c.tlsDir, "ca.pem")
}

// issueCert runs `hakuriver tls init` for node name (the CA is made by the
// first call and reused after) and returns the CA pool.
func (c *Cluster) issueCert(name string) (*x509.CertPool, error) {
	res := RunCLI(context.Background(), CLICommand{Bin: c.opts.Bin, Args: []string{"tls", "init", "--dir", c.tlsDir, "--node", name, "-o", "json"}})
	if res.Code != 0 {
		return nil, fmt.Errorf("tls init for %s: %s", name, res)
	}
	b, err := os.ReadFile(c.CAFile())
	if err != nil {
		return nil, fmt.Errorf("read the CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, errors.New("the CA file holds no certificate")
	}
	return pool, nil
}

// tlsArgs issues a certificate for node name and returns its flags; none
// without Options.TLS.
func (c *Cluster) tlsArgs(name string) ([]string, error) {
	if !c.opts.TLS {
		return nil, nil
	}
	if _, err := c.issueCert(name); err != nil {
		return nil, err
	}
	return []string{"--cert-file", filepath.Join(c.tlsDir, name+".pem"), "--key-file", filepath.Join(c.tlsDir, name+"-key.pem"), "--ca-file", c.CAFile()}, nil
}

// commonArgs are the flags every host and runner gets: log level, cluster
// token (or --insecure-no-token) and heartbeat timing (when > 0).
func (c *Cluster) commonArgs(hbInterval, hbFactor int) []string {
	level := c.opts.LogLevel
	if level == "" {
		level = "info"
	}
	args := []string{"--log-level", level, "--cluster-token-file", c.tokenFile}
	if c.opts.InsecureNoToken {
		args = []string{"--log-level", level, "--insecure-no-token"}
	}
	if c.opts.AnonymousRole != "" {
		args = append(args, "--anonymous-role", c.opts.AnonymousRole)
	}
	if hbInterval > 0 {
		args = append(args, "--heartbeat-interval", strconv.Itoa(hbInterval))
	}
	if hbFactor > 0 {
		args = append(args, "--heartbeat-timeout-factor", strconv.Itoa(hbFactor))
	}
	return args
}

// newProcess prepares a process of the binary under test with args; its
// environment is the harness's without HAKURIVER_CONFIG, plus the
// cluster's cleanup tag.
func (c *Cluster) newProcess(name string, args []string, logPath string) *process {
	env := append(withoutEnv(os.Environ(), "HAKURIVER_CONFIG"), tagEnv+"="+c.tag)
	return &process{name: name, bin: c.opts.Bin, args: args, env: env, logPath: logPath}
}

// SharedDir returns the shared dir of every host and runner.
func (c *Cluster) SharedDir() string { return c.shared }

// Token returns the cluster token.
func (c *Cluster) Token() string { return c.opts.Token }

// TokenFile returns the file holding the cluster token (for
// HAKURIVER_TOKEN_FILE and --token-file).
func (c *Cluster) TokenFile() string { return c.tokenFile }

// randomHex returns n random bytes in hex.
func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b) //nolint:errcheck // crypto/rand.Read never fails
	return hex.EncodeToString(b)
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
		if r.proc.running() {
			out = append(out, i)
		}
	}
	return out
}

// startProcess launches replica i's process with its fixed arguments.
func (c *Cluster) startProcess(i int) error { return c.Replica(i).proc.start() }

func withoutEnv(env []string, name string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, name+"=") {
			out = append(out, kv)
		}
	}
	return out
}

// Kill sends SIGKILL to replica i and waits until the process is reaped.
func (c *Cluster) Kill(i int) {
	c.tb.Helper()
	if err := c.Replica(i).proc.kill(); err != nil {
		c.tb.Fatalf("harness: %v", err)
	}
}

// Stop freezes replica i with SIGSTOP: its sockets stay open but nothing
// answers, like a partitioned or hung machine.
func (c *Cluster) Stop(i int) {
	c.tb.Helper()
	p := c.Replica(i).proc
	if err := p.signal(syscall.SIGSTOP, stateStopped); err != nil {
		c.tb.Fatalf("harness: %v", err)
	}
	// The kernel stops the process's threads as each reaches it: on a
	// loaded machine that takes a moment, during which it may still answer.
	if err := waitStopped(p.pid(), exitTimeout); err != nil {
		c.tb.Fatalf("harness: %s: %v", p.name, err)
	}
}

// waitStopped waits until every thread of process pid is stopped (state T
// in /proc/<pid>/task/*/stat).
func waitStopped(pid int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		running := 0
		tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
		if err != nil {
			return fmt.Errorf("wait for SIGSTOP: %w", err)
		}
		for _, t := range tasks {
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/stat", pid, t.Name()))
			if err != nil {
				continue // the thread exited
			}
			// The state follows the ")" closing the command name.
			if i := strings.LastIndexByte(string(b), ')'); i > 0 && i+2 < len(b) && b[i+2] != 'T' && b[i+2] != 't' {
				running++
			}
		}
		if running == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d threads still not stopped %s after SIGSTOP", running, timeout)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// Cont resumes a replica frozen by Stop.
func (c *Cluster) Cont(i int) {
	c.tb.Helper()
	if err := c.Replica(i).proc.signal(syscall.SIGCONT, stateRunning); err != nil {
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
	wait := StartTimeout
	if c.opts.StartTimeout > 0 {
		wait = c.opts.StartTimeout
	}
	deadline := time.Now().Add(wait)
	var lastErr error
	for time.Now().Before(deadline) {
		if exited, waitErr := r.proc.exitedEarly(); exited {
			c.tb.Fatalf("harness: %s exited while starting: %v\n%s", r.ID, waitErr, tail(r.LogPath(), 40))
		}
		if _, err := c.Status(i); err == nil {
			return
		} else {
			lastErr = err
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.tb.Fatalf("harness: %s did not serve its API within %s: %v", r.ID, wait, lastErr)
}

// shutdown kills every process, runners first, then what their native
// tasks left running, and prints the logs when the test failed.
func (c *Cluster) shutdown() {
	c.mu.Lock()
	rs := append([]*Replica(nil), c.replicas...)
	runners := append([]*Runner(nil), c.runners...)
	c.mu.Unlock()
	var errs []error
	var procs []*process
	for _, r := range runners {
		procs = append(procs, r.proc)
	}
	for _, r := range rs {
		procs = append(procs, r.proc)
	}
	for _, p := range procs {
		if p.pid() != 0 {
			if err := p.kill(); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if len(runners) > 0 {
		if err := killTagged(c.tag); err != nil {
			errs = append(errs, err)
		}
	}
	c.hc.CloseIdleConnections()
	if c.tb.Failed() || len(errs) > 0 {
		for _, p := range procs {
			c.tb.Logf("---- log of %s (%s), last %d lines ----\n%s", p.name, p.logPath, logTailLines, tail(p.logPath, logTailLines))
		}
	}
	if err := errors.Join(errs...); err != nil {
		c.tb.Logf("harness: shutdown: %v", err)
	}
}

// LogTail returns the last n lines of replica i's log.
func (c *Cluster) LogTail(i, n int) string { return tail(c.Replica(i).LogPath(), n) }

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

// SetBinary makes the next start of replica i run bin instead of the
// cluster's binary, as an upgrade (or a downgrade) of that machine would;
// the running process is not touched.
func (c *Cluster) SetBinary(i int, bin string) { c.Replica(i).proc.setBinary(bin) }

// TerminateTimeout bounds a graceful stop (Terminate, TerminateRunner): a
// host closes its API, gossip and Raft within 10 s.
const TerminateTimeout = 20 * time.Second

// Terminate stops replica i gracefully with SIGTERM, as a service manager
// does, waits until it has exited and returns its wait error: nil when it
// exited 0. A replica still running after TerminateTimeout is killed and
// the error says so.
func (c *Cluster) Terminate(i int) error { return c.Replica(i).proc.terminate(TerminateTimeout) }

// Exe returns the binary replica i's current process runs (read from
// /proc/PID/exe), "" when it is down.
func (r *Replica) Exe() string { return r.proc.exe() }

// StartReplica starts replica i again after Kill without waiting for its
// API (see Restart), for a start that is expected to fail.
func (c *Cluster) StartReplica(i int) {
	c.tb.Helper()
	if err := c.startProcess(i); err != nil {
		c.tb.Fatalf("harness: %v", err)
	}
}

// WaitExit waits up to d for replica i's process to exit by itself and
// returns its wait error (nil for exit status 0); it fails the test when
// the process still runs after d.
func (c *Cluster) WaitExit(i int, d time.Duration) error {
	c.tb.Helper()
	p := c.Replica(i).proc
	p.mu.Lock()
	exited := p.exited
	p.mu.Unlock()
	select {
	case <-exited:
	case <-time.After(d):
		c.tb.Fatalf("harness: %s still runs after %s\n%s", p.name, d, tail(c.Replica(i).LogPath(), 40))
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.waitErr
}
