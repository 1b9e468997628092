//go:build integration

package harness

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
)

// RunnerOptions configures one `hakuriver runner` process.
type RunnerOptions struct {
	// Cores is passed as --cores when > 0 (default: detected).
	Cores int
	// Memory is passed as --memory when set, e.g. "4G" (default: detected).
	Memory string
	// HeartbeatInterval (seconds) and HeartbeatTimeoutFactor override the
	// cluster's Options when > 0.
	HeartbeatInterval      int
	HeartbeatTimeoutFactor int
	// NoCgroups runs native tasks without cgroup limits.
	NoCgroups bool
	// NoDocker keeps the runner away from Docker (DOCKER_HOST points
	// nowhere): it runs every task natively and never sees the containers
	// of other runners on this machine, which a Docker executor otherwise
	// adopts when their runner has the same name (another test's cluster).
	NoDocker bool
	// Address puts the runner on this address instead of 127.0.0.1; in a
	// cluster with Options.Addresses it uses the replicas' API and gossip
	// port numbers, as on a machine of its own.
	Address string
	// Netns, when set, runs the runner (and so its native tasks) inside
	// this network namespace, e.g. the Bridge member holding Address.
	Netns string
	// Args are extra flags.
	Args []string
}

// Runner is one `hakuriver runner` process with a fixed identity: name,
// ports and directories survive RestartRunner, so a restarted runner finds
// the tasks its predecessor started.
type Runner struct {
	// Name is the node name (--name).
	Name string
	// Dir holds temp/ (--local-temp-dir), state/ (--runner-state-dir) and
	// runner.log.
	Dir string
	// API is the base URL of the runner API; Gossip its gossip address.
	API    string
	Gossip string

	proc *process
}

// LocalTempDir returns the runner's --local-temp-dir.
func (r *Runner) LocalTempDir() string { return filepath.Join(r.Dir, "temp") }

// StateDir returns the runner's --runner-state-dir: its private state,
// next to its temp dir and never inside it.
func (r *Runner) StateDir() string { return filepath.Join(r.Dir, "state") }

// LogPath returns the file its output goes to (appended across restarts).
func (r *Runner) LogPath() string { return r.proc.logPath }

// PID returns the process ID of the current runner process, or 0 when down.
func (r *Runner) PID() int { return r.proc.pid() }

// StartRunner starts a runner named name that joins the gossip pool through
// every replica's gossip address, and returns once the cluster lists it
// online. It is killed at cleanup, with whatever native tasks it started.
func (c *Cluster) StartRunner(name string, opts RunnerOptions) *Runner {
	c.tb.Helper()
	if c.Runner(name) != nil {
		c.tb.Fatalf("harness: runner %s exists already", name)
	}
	r, args, ports := c.prepareRunner(name, opts)
	defer ports.release()
	r.proc = c.newProcess("runner "+name, args, filepath.Join(r.Dir, "runner.log"))
	r.proc.netns = opts.Netns
	if opts.NoDocker {
		r.proc.env = append(withoutEnv(r.proc.env, "DOCKER_HOST"), "DOCKER_HOST=unix://"+filepath.Join(r.Dir, "no-docker.sock"))
	}
	c.mu.Lock()
	c.runners = append(c.runners, r)
	c.mu.Unlock()
	ports.release()
	if err := r.proc.start(); err != nil {
		c.tb.Fatalf("harness: %v", err)
	}
	c.waitRunnerUp(r)
	c.WaitNodeStatus(name, "online", StartTimeout)
	return r
}

// RunRunnerToExit runs a runner process named name (fresh ports and
// directories; opts.Args may override them, e.g. --runner-state-dir) in
// the foreground and returns how it exited, for a runner that is expected
// to refuse to start. A runner still running after timeout is killed: the
// result then has Code -1 and Err set.
func (c *Cluster) RunRunnerToExit(name string, opts RunnerOptions, timeout time.Duration) CLIResult {
	c.tb.Helper()
	_, args, ports := c.prepareRunner(name, opts)
	ports.release()
	return RunCLI(context.Background(), CLICommand{Bin: c.opts.Bin, Args: args, Timeout: timeout})
}

// prepareRunner reserves ports, creates the directories of runner name and
// returns it with its command line (still holding the ports: release
// them just before starting it).
func (c *Cluster) prepareRunner(name string, opts RunnerOptions) (*Runner, []string, *portSet) {
	c.tb.Helper()
	ports, err := reservePorts(1)
	if err != nil {
		c.tb.Fatalf("harness: %v", err)
	}
	p := ports.ports[0]
	addr := "127.0.0.1"
	if opts.Address != "" {
		addr = opts.Address
		if c.same != nil {
			p = *c.same
		}
	}
	dir, err := os.MkdirTemp(c.base, "runner-"+name+"-")
	if err != nil {
		c.tb.Fatalf("harness: create runner dir: %v", err)
	}
	r := &Runner{
		Name:   name,
		Dir:    dir,
		API:    c.scheme() + net.JoinHostPort(addr, strconv.Itoa(p.api)),
		Gossip: net.JoinHostPort(addr, strconv.Itoa(p.gossip)),
	}
	if err := os.MkdirAll(r.LocalTempDir(), 0o750); err != nil {
		c.tb.Fatalf("harness: create runner dir: %v", err)
	}
	c.mu.Lock()
	var joins []string
	for _, rep := range c.replicas {
		joins = append(joins, rep.Gossip)
	}
	c.mu.Unlock()
	args := []string{"runner",
		"--name", name,
		"--bind", addr,
		"--runner-address", addr,
		"--runner-port", strconv.Itoa(p.api),
		"--gossip-port", strconv.Itoa(p.gossip),
		"--join", strings.Join(joins, ","),
		"--shared-dir", c.shared,
		"--local-temp-dir", r.LocalTempDir(),
		"--runner-state-dir", r.StateDir(),
	}
	if opts.Cores > 0 {
		args = append(args, "--cores", strconv.Itoa(opts.Cores))
	}
	if opts.Memory != "" {
		args = append(args, "--memory", opts.Memory)
	}
	if opts.NoCgroups {
		args = append(args, "--no-cgroups")
	}
	hb, factor := c.opts.HeartbeatInterval, c.opts.HeartbeatTimeoutFactor
	if opts.HeartbeatInterval > 0 {
		hb = opts.HeartbeatInterval
	}
	if opts.HeartbeatTimeoutFactor > 0 {
		factor = opts.HeartbeatTimeoutFactor
	}
	args = append(args, c.commonArgs(hb, factor)...)
	tlsArgs, err := c.tlsArgs(name)
	if err != nil {
		c.tb.Fatalf("harness: %v", err)
	}
	args = append(args, tlsArgs...)
	args = append(args, opts.Args...)
	return r, args, ports
}

// Runner returns the runner named name, or nil.
func (c *Cluster) Runner(name string) *Runner {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, r := range c.runners {
		if r.Name == name {
			return r
		}
	}
	return nil
}

func (c *Cluster) mustRunner(name string) *Runner {
	c.tb.Helper()
	r := c.Runner(name)
	if r == nil {
		c.tb.Fatalf("harness: no runner %s", name)
	}
	return r
}

// KillRunner sends SIGKILL to the runner process and waits until it is
// reaped. The supervisors of its native tasks keep running, as they would
// on a real machine.
func (c *Cluster) KillRunner(name string) {
	c.tb.Helper()
	if err := c.mustRunner(name).proc.kill(); err != nil {
		c.tb.Fatalf("harness: %v", err)
	}
}

// RestartRunner starts a killed runner again with the same flags, ports
// and directories, and waits until it has registered with the cluster
// again. It does not wait for the cluster to list it online: a test that
// killed it may be watching that.
func (c *Cluster) RestartRunner(name string) {
	c.tb.Helper()
	r := c.mustRunner(name)
	if err := r.proc.start(); err != nil {
		c.tb.Fatalf("harness: %v", err)
	}
	c.waitRunnerUp(r)
}

// TerminateRunner stops runner name gracefully with SIGTERM, waits until it
// has exited and returns its wait error (nil when it exited 0); see
// Terminate. The supervisors of its native tasks and its containers keep
// running.
func (c *Cluster) TerminateRunner(name string) error {
	c.tb.Helper()
	return c.mustRunner(name).proc.terminate(TerminateTimeout)
}

// SetRunnerBinary makes the next start of runner name run bin (an
// upgrade); the running process is not touched.
func (c *Cluster) SetRunnerBinary(name, bin string) {
	c.tb.Helper()
	c.mustRunner(name).proc.setBinary(bin)
}

// Exe returns the binary the runner's current process runs, "" when down.
func (r *Runner) Exe() string { return r.proc.exe() }

// runnerHealth is the part of a runner's GET /health the harness reads.
type runnerHealth struct {
	Registered bool `json:"registered"`
	Tasks      int  `json:"tasks"`
}

// waitRunnerUp waits until runner r answers GET /health and says it
// registered, failing early when its process exits.
func (c *Cluster) waitRunnerUp(r *Runner) {
	c.tb.Helper()
	c.Poll(StartTimeout, "runner "+r.Name+" to serve its API and register", func() (bool, string) {
		if exited, err := r.proc.exitedEarly(); exited {
			c.tb.Fatalf("harness: runner %s exited while starting: %v\n%s", r.Name, err, tail(r.LogPath(), 40))
		}
		ctx, cancel := context.WithTimeout(context.Background(), ReadTimeout)
		defer cancel()
		a, err := c.callURL(ctx, r.API, http.MethodGet, "/health", nil, true)
		if err != nil {
			return false, err.Error()
		}
		var h runnerHealth
		if a.Status != http.StatusOK {
			return false, a.String()
		}
		if err := a.Decode(&h); err != nil {
			return false, err.Error()
		}
		return h.Registered, a.String()
	})
}

// Nodes returns GET /api/nodes from replica i (served by the leader when
// one is known, with live figures).
func (c *Cluster) Nodes(i int) ([]api.NodeView, error) {
	a, err := c.callTimeout(i, ReadTimeout, http.MethodGet, "/api/nodes", nil)
	if err != nil {
		return nil, err
	}
	if a.Status != http.StatusOK {
		return nil, fmt.Errorf("GET /api/nodes on %s: %s", c.Replica(i).ID, a)
	}
	var out []api.NodeView
	return out, a.Decode(&out)
}

// Node returns node name as the first running replica that answers sees
// it.
func (c *Cluster) Node(name string) (api.NodeView, error) {
	var errs []error
	for _, i := range c.Running() {
		nodes, err := c.Nodes(i)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, n := range nodes {
			if n.Hostname == name {
				return n, nil
			}
		}
		return api.NodeView{}, fmt.Errorf("node %s: not registered (as %s sees it)", name, c.Replica(i).ID)
	}
	return api.NodeView{}, fmt.Errorf("node %s: no replica answered: %w", name, errors.Join(errs...))
}

// WaitNodeStatus waits until node name has status ("online", "offline")
// and returns it.
func (c *Cluster) WaitNodeStatus(name, status string, timeout time.Duration) api.NodeView {
	c.tb.Helper()
	var out api.NodeView
	c.Poll(timeout, fmt.Sprintf("node %s %s", name, status), func() (bool, string) {
		n, err := c.Node(name)
		if err != nil {
			return false, err.Error()
		}
		out = n
		return string(n.Status) == status, fmt.Sprintf("node %s is %s", name, n.Status)
	})
	return out
}

// RunnerTasks returns how many tasks runner name tracks (GET /health).
func (c *Cluster) RunnerTasks(name string) (int, error) {
	r := c.mustRunner(name)
	ctx, cancel := context.WithTimeout(context.Background(), ReadTimeout)
	defer cancel()
	a, err := c.callURL(ctx, r.API, http.MethodGet, "/health", nil, true)
	if err != nil {
		return 0, err
	}
	var h runnerHealth
	if err := json.Unmarshal(a.Body, &h); err != nil || a.Status != http.StatusOK {
		return 0, fmt.Errorf("GET /health of runner %s: %s", name, a)
	}
	return h.Tasks, nil
}

// StopRunner freezes runner name with SIGSTOP: its sockets stay open but
// it neither answers nor heartbeats; the supervisors of its native tasks
// are processes of their own and keep running.
func (c *Cluster) StopRunner(name string) {
	c.tb.Helper()
	p := c.mustRunner(name).proc
	if err := p.signal(syscall.SIGSTOP, stateStopped); err != nil {
		c.tb.Fatalf("harness: %v", err)
	}
	if err := waitStopped(p.pid(), exitTimeout); err != nil {
		c.tb.Fatalf("harness: %s: %v", p.name, err)
	}
}

// ContRunner resumes a runner frozen by StopRunner.
func (c *Cluster) ContRunner(name string) {
	c.tb.Helper()
	if err := c.mustRunner(name).proc.signal(syscall.SIGCONT, stateRunning); err != nil {
		c.tb.Fatalf("harness: %v", err)
	}
}
