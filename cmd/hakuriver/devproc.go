package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/ops/certs"
	"github.com/hakuriver/hakuriver-ha/ops/config"
	"github.com/hakuriver/hakuriver-ha/runner/executor/native"
	"github.com/hakuriver/hakuriver-ha/runner/statedir"
)

// devStopTimeout bounds a member's graceful stop (SIGTERM) before dev
// SIGKILLs it.
const devStopTimeout = 15 * time.Second

// devSupervisor runs the members of a dev cluster as child processes
// (`hakuriver host|runner --config <generated>`), each in its own process
// group and killed by the kernel if dev dies (Pdeathsig), and keeps
// <data-dir>/dev.json current.
type devSupervisor struct {
	bin       string
	logLevel  string
	logFormat string
	withEnvs  bool
	tokenFile string
	tlsDir    string
	clientTLS *tls.Config
	stderr    io.Writer
	log       *slog.Logger

	// quiet stops echoing the members' output to stderr (their logs keep
	// it): set while dev stops them, whose parting complaints about each
	// other are no news.
	quiet atomic.Bool

	mu    sync.Mutex
	state *devState
	procs map[string]*devProc
}

// devProc is one running child.
type devProc struct {
	cmd  *exec.Cmd
	done chan struct{}
	// stopping is set when dev itself ends the process (kill, restart,
	// shutdown): its end is then no news.
	stopping bool
}

// writeConfigs writes every member's config file (mode 0600).
func (s *devSupervisor) writeConfigs() error {
	st := s.state
	var join []string
	for _, r := range st.replicas() {
		join = append(join, addr(r.GossipPort))
	}
	for _, m := range st.Members {
		c := config.Default()
		c.Network.HostBindIP = "127.0.0.1"
		c.Network.HostReachableAddress = "127.0.0.1"
		c.Paths.SharedDir = filepath.Join(st.DataDir, "shared")
		c.Timing.HeartbeatInterval = 1
		c.Cluster.GossipPort = m.GossipPort
		c.Cluster.Join = join
		c.Cluster.TokenFile = s.tokenFile
		if st.TLS {
			c.TLS = config.TLS{
				CertFile: filepath.Join(s.tlsDir, certs.CertFile(m.NodeID)),
				KeyFile:  filepath.Join(s.tlsDir, certs.KeyFile(m.NodeID)),
				CAFile:   filepath.Join(s.tlsDir, certs.CAFile),
			}
		}
		if m.Kind == kindHost {
			c.Cluster.NodeID = m.NodeID
			c.Cluster.DataDir = filepath.Join(st.DataDir, m.NodeID)
			c.Cluster.RaftPort = m.RaftPort
			c.Cluster.BootstrapExpect = len(join)
			c.Network.HostPort = m.APIPort
			c.Network.HostSSHProxyPort = m.SSHProxyPort
			c.Network.RunnerPort = 0
		} else {
			c.Network.HostPort, c.Network.HostSSHProxyPort = 0, 0
			c.Network.RunnerAddress = "127.0.0.1"
			c.Network.RunnerPort = m.APIPort
			c.Cluster.RaftPort = 0
			c.Paths.LocalTempDir = filepath.Join(st.DataDir, m.NodeID)
			// The runner's private state, next to (never inside) its
			// scratch directory.
			c.Paths.RunnerStateDir = filepath.Join(st.DataDir, m.NodeID+"-state")
		}
		if err := c.Validate(); err != nil {
			return fmt.Errorf("config of %s: %w", m.Name, err)
		}
		var b strings.Builder
		fmt.Fprintf(&b, "# Written by `hakuriver dev` for %s (%s); rewritten on every start.\n", m.Name, m.NodeID)
		if err := toml.NewEncoder(&b).Encode(c); err != nil {
			return fmt.Errorf("config of %s: %w", m.Name, err)
		}
		if err := os.WriteFile(m.Config, []byte(b.String()), 0o600); err != nil {
			return fmt.Errorf("write config of %s: %w", m.Name, err)
		}
	}
	return nil
}

// args returns the command line of member m.
func (s *devSupervisor) args(m *devMember) []string {
	args := []string{m.Kind, "--config", m.Config, "--log-level", s.logLevel, "--log-format", s.logFormat, "--fast-gossip"}
	if m.Kind == kindRunner {
		args = append(args, "--name", m.NodeID, "--no-docker")
	} else if !s.withEnvs {
		args = append(args, "--no-docker-environments")
	}
	return args
}

// start starts member m's process. The caller holds s.mu.
func (s *devSupervisor) start(m *devMember) error {
	if p := s.procs[m.Name]; p != nil {
		return fmt.Errorf("%s is running (pid %d)", m.Name, p.cmd.Process.Pid)
	}
	logf, err := os.OpenFile(m.Log, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("open log of %s: %w", m.Name, err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		logf.Close() //nolint:errcheck // the pipe error is the one to report
		return fmt.Errorf("start %s: %w", m.Name, err)
	}
	cmd := exec.Command(s.bin, s.args(m)...)
	cmd.Stdout, cmd.Stderr = w, w
	cmd.Dir = s.state.DataDir
	// Its own process group: a Ctrl-C in the terminal reaches dev only,
	// which stops the members in order. Pdeathsig: a SIGKILLed dev takes
	// its members with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	err = cmd.Start()
	w.Close() //nolint:errcheck // the child holds its own copy
	if err != nil {
		r.Close()    //nolint:errcheck // unused
		logf.Close() //nolint:errcheck // unused
		return fmt.Errorf("start %s: %w", m.Name, err)
	}
	p := &devProc{cmd: cmd, done: make(chan struct{})}
	s.procs[m.Name] = p
	m.PID, m.State, m.Exit = cmd.Process.Pid, stateRunning, ""
	go s.copyOutput(m.Name, r, logf)
	go func() {
		err := cmd.Wait()
		s.mu.Lock()
		defer s.mu.Unlock()
		close(p.done)
		delete(s.procs, m.Name)
		m.PID = 0
		m.Exit = "exit status 0"
		if err != nil {
			m.Exit = err.Error()
		}
		if !p.stopping {
			m.State = stateExited
			if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				m.State = stateKilled
			}
			fmt.Fprintf(s.stderr, "dev: %s (%s, pid %d) ended: %s; `hakuriver dev restart %s` starts it again\n",
				m.Name, m.NodeID, cmd.Process.Pid, m.Exit, m.Name)
		}
		s.saveLocked()
	}()
	return nil
}

// copyOutput copies a member's output, line by line, to its log file and,
// prefixed with its name, to dev's stderr.
func (s *devSupervisor) copyOutput(name string, r io.ReadCloser, logf *os.File) {
	defer r.Close()
	defer logf.Close()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		fmt.Fprintln(logf, line)
		// The replicas print their addresses on stdout; dev prints its own.
		if strings.HasPrefix(line, "host ") || strings.HasPrefix(line, "runner ") {
			continue
		}
		if !s.quiet.Load() {
			fmt.Fprintf(s.stderr, "%s | %s\n", name, line)
		}
	}
}

// saveLocked writes dev.json; the caller holds s.mu.
func (s *devSupervisor) saveLocked() {
	if err := s.state.save(); err != nil {
		s.log.Warn("keep the dev state", "err", err)
	}
}

// signal sends sig to member m's process; the caller holds s.mu.
func (s *devSupervisor) signal(m *devMember, sig syscall.Signal) error {
	p := s.procs[m.Name]
	if p == nil {
		return fmt.Errorf("%s is not running (%s)", m.Name, m.State)
	}
	if err := p.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("signal %s: %w", m.Name, err)
	}
	return nil
}

// stop ends member m's process: SIGKILL at once when hard, else SIGTERM
// (and SIGCONT, for a paused one) and SIGKILL after devStopTimeout. It
// returns once the process is gone. The caller must not hold s.mu.
func (s *devSupervisor) stop(m *devMember, hard bool) {
	s.mu.Lock()
	p := s.procs[m.Name]
	if p == nil {
		s.mu.Unlock()
		return
	}
	p.stopping = true
	if hard {
		p.cmd.Process.Signal(syscall.SIGKILL) //nolint:errcheck // gone already is fine
	} else {
		p.cmd.Process.Signal(syscall.SIGTERM) //nolint:errcheck // gone already is fine
		p.cmd.Process.Signal(syscall.SIGCONT) //nolint:errcheck // gone already is fine
	}
	s.mu.Unlock()
	select {
	case <-p.done:
	case <-time.After(devStopTimeout):
		fmt.Fprintf(s.stderr, "dev: %s did not stop in %v: killing it\n", m.Name, devStopTimeout)
		p.cmd.Process.Signal(syscall.SIGKILL) //nolint:errcheck // gone already is fine
		<-p.done
	}
	s.mu.Lock()
	if hard {
		m.State = stateKilled
	} else {
		m.State = stateStopped
	}
	s.saveLocked()
	s.mu.Unlock()
}

// shutdown stops every member: the runners first, then (unless keepTasks)
// their native tasks, then the replicas.
func (s *devSupervisor) shutdown(keepTasks bool) {
	s.quiet.Store(true)
	var wg sync.WaitGroup
	each := func(kind string) {
		for _, m := range s.state.Members {
			if m.Kind == kind {
				wg.Add(1)
				go func() { defer wg.Done(); s.stop(m, false) }()
			}
		}
		wg.Wait()
	}
	each(kindRunner)
	if !keepTasks {
		for _, m := range s.state.Members {
			if m.Kind == kindRunner {
				s.killTasks(m)
			}
		}
		s.killShims()
	}
	each(kindHost)
}

// killTasks kills the native tasks runner m left running (a runner's
// shutdown leaves them: they survive its restart). The runner has stopped:
// dev takes its state directory's lock and kills each task's whole cgroup
// or process group as `task kill` would; the runner reports them killed
// when it starts again.
func (s *devSupervisor) killTasks(m *devMember) {
	dir := filepath.Join(s.state.DataDir, m.NodeID+"-state")
	if _, err := os.Stat(filepath.Join(dir, statedir.NativeTasks)); err != nil {
		return
	}
	sd, err := statedir.Open(dir)
	if err != nil {
		s.log.Warn("kill the tasks of a runner", "runner", m.Name, "err", err)
		return
	}
	defer sd.Close() //nolint:errcheck // releasing the lock
	nc := native.DefaultConfig()
	nc.StateDir = sd.Join(statedir.NativeTasks)
	nc.Logger = slog.New(slog.DiscardHandler)
	ex, err := native.New(nc)
	if err != nil {
		s.log.Warn("kill the tasks of a runner", "runner", m.Name, "err", err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), devStopTimeout)
	defer cancel()
	states, err := ex.List(ctx)
	if err != nil {
		s.log.Warn("kill the tasks of a runner", "runner", m.Name, "err", err)
		return
	}
	for _, st := range states {
		if st.Exit != nil {
			continue
		}
		if err := ex.Kill(ctx, st.TaskID); err != nil {
			s.log.Warn("kill a task", "runner", m.Name, "task_id", st.TaskID, "err", err)
		}
	}
}

// killShims waits (bounded) for the runner shims of this data dir to end
// once their task did, and SIGKILLs any left: `hakuriver runner-shim
// <data-dir>/...` and `hakuriver-shim <data-dir>/...` processes of this
// user.
func (s *devSupervisor) killShims() {
	deadline := time.Now().Add(5 * time.Second)
	for {
		pids := shimPIDs(s.state.DataDir)
		if len(pids) == 0 {
			return
		}
		if time.Now().After(deadline) {
			for _, pid := range pids {
				syscall.Kill(pid, syscall.SIGKILL) //nolint:errcheck // gone already is fine
			}
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// shimPIDs lists the live processes of this user whose command line is
// "<bin> runner-shim <dir inside dataDir>" or "<dir>/hakuriver-shim <dir
// inside dataDir>".
func shimPIDs(dataDir string) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	prefix := strings.TrimSuffix(dataDir, "/") + "/"
	var pids []int
	for _, e := range ents {
		var pid int
		if _, err := fmt.Sscan(e.Name(), &pid); err != nil || pid == os.Getpid() {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		argv := strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
		if len(argv) >= 3 && argv[1] == "runner-shim" && strings.HasPrefix(argv[2], prefix) ||
			len(argv) == 2 && filepath.Base(argv[0]) == native.SlimShimName && strings.HasPrefix(argv[1], prefix) {
			if fi, err := os.Stat(filepath.Join("/proc", e.Name())); err == nil {
				if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) == os.Getuid() {
					pids = append(pids, pid)
				}
			}
		}
	}
	return pids
}

// client returns an API client of the running replicas with the cluster
// token, each call bounded by timeout.
func (s *devSupervisor) client(timeout time.Duration) (*api.Client, error) {
	s.mu.Lock()
	var urls []string
	for _, m := range s.state.replicas() {
		if m.State == stateRunning {
			urls = append(urls, m.url(s.state.TLS))
		}
	}
	s.mu.Unlock()
	if len(urls) == 0 {
		return nil, errors.New("no replica is running")
	}
	tok, err := os.ReadFile(s.tokenFile)
	if err != nil {
		return nil, fmt.Errorf("read the cluster token: %w", err)
	}
	cfg := api.DefaultClientConfig()
	cfg.Hosts = urls
	cfg.Token = strings.TrimSpace(string(tok))
	cfg.TLS = s.clientTLS
	cfg.Timeout, cfg.DialTimeout, cfg.RetryBudget = timeout, timeout, 0
	cfg.UserAgent = "hakuriver-dev"
	return api.NewClient(cfg)
}

// leader returns the node ID of the current leader, as the running
// replicas report it.
func (s *devSupervisor) leader(ctx context.Context) (string, error) {
	c, err := s.client(2 * time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	st, err := c.Cluster(ctx, false)
	if err != nil {
		return "", err
	}
	if st.LeaderID == "" {
		return "", errors.New("the cluster has no leader now")
	}
	return st.LeaderID, nil
}

// waitLeader waits until the replicas report a leader and returns its
// node ID; a replica that exits meanwhile ends the wait with an error.
func (s *devSupervisor) waitLeader(ctx context.Context, within time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	var last error
	for {
		if err := s.exitedMember(); err != nil {
			return "", err
		}
		if id, err := s.leader(ctx); err == nil {
			return id, nil
		} else {
			last = err
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("no leader elected in %v: %w", within, last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// exitedMember returns an error naming a member that ended on its own,
// with the end of its log.
func (s *devSupervisor) exitedMember() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range s.state.Members {
		if m.State == stateExited || m.State == stateKilled {
			b, _ := os.ReadFile(m.Log)
			return fmt.Errorf("%s (%s) ended: %s; the end of %s:\n%s", m.Name, m.NodeID, m.Exit, m.Log, logTail(b, 2048))
		}
	}
	return nil
}

// logTail returns the last n bytes of b, from a line start.
func logTail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
		if i := strings.IndexByte(string(b), '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	return string(b)
}

// waitServing waits until member m accepts TCP connections on its API
// port, or ends.
func (s *devSupervisor) waitServing(ctx context.Context, m *devMember, within time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	for {
		s.mu.Lock()
		running, exit := s.procs[m.Name] != nil, m.Exit
		s.mu.Unlock()
		if !running {
			b, _ := os.ReadFile(m.Log)
			return fmt.Errorf("%s ended: %s; the end of %s:\n%s", m.Name, exit, m.Log, logTail(b, 2048))
		}
		if c, err := net.DialTimeout("tcp", addr(m.APIPort), time.Second); err == nil {
			c.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s does not serve on %s after %v", m.Name, addr(m.APIPort), within)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
