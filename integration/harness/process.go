//go:build integration

package harness

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// procState is what the harness did last to a process.
type procState int

const (
	stateDown    procState = iota // never started, killed or exited
	stateRunning                  // started or continued
	stateStopped                  // SIGSTOPped
)

// process is one hakuriver process (a host replica or a runner) with fixed
// arguments; it can be started again after it died. Safe for concurrent
// use.
type process struct {
	name    string
	bin     string
	args    []string
	env     []string
	logPath string
	// netns, when set, is the network namespace the process runs in.
	netns string

	mu      sync.Mutex
	state   procState
	cmd     *exec.Cmd
	exited  chan struct{}
	waitErr error
	starts  int
}

// start launches the process; its output is appended to logPath.
func (p *process) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.state != stateDown {
		return fmt.Errorf("start %s: already running", p.name)
	}
	logf, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open log of %s: %w", p.name, err)
	}
	defer logf.Close()
	p.starts++
	fmt.Fprintf(logf, "=== harness: start #%d of %s at %s: %s %s\n", p.starts, p.name,
		time.Now().Format(time.RFC3339Nano), p.bin, strings.Join(p.args, " "))
	cmd := exec.Command(p.bin, p.args...)
	if p.netns != "" {
		// `ip netns exec` enters the namespace and execs the binary: the
		// PID is the hakuriver process's own.
		cmd = exec.Command("ip", append([]string{"netns", "exec", p.netns, p.bin}, p.args...)...)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = p.env
	// The process dies with the harness even when cleanups never run.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", p.name, err)
	}
	exited := make(chan struct{})
	p.cmd, p.exited, p.state, p.waitErr = cmd, exited, stateRunning, nil
	go func() {
		err := cmd.Wait()
		p.mu.Lock()
		p.waitErr = err
		if p.cmd == cmd {
			p.state = stateDown
		}
		p.mu.Unlock()
		close(exited)
	}()
	return nil
}

// signal sends sig and records the new state.
func (p *process) signal(sig syscall.Signal, next procState) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.cmd.Process == nil || p.state == stateDown {
		return fmt.Errorf("signal %v to %s: not running", sig, p.name)
	}
	if err := p.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("signal %v to %s: %w", sig, p.name, err)
	}
	p.state = next
	return nil
}

// kill sends SIGKILL and waits until the process is reaped.
func (p *process) kill() error {
	p.mu.Lock()
	exited := p.exited
	p.mu.Unlock()
	if err := p.signal(syscall.SIGKILL, stateDown); err != nil {
		return err
	}
	select {
	case <-exited:
		return nil
	case <-time.After(exitTimeout):
		return fmt.Errorf("kill %s: process not reaped after %s", p.name, exitTimeout)
	}
}

// pid returns the process ID of the current process, or 0 when down.
func (p *process) pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.state == stateDown || p.cmd == nil || p.cmd.Process == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// running reports whether the process runs (started or continued, not
// stopped, not dead).
func (p *process) running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.state == stateRunning
}

// exitedEarly reports whether the current process has exited, with its
// wait error.
func (p *process) exitedEarly() (bool, error) {
	p.mu.Lock()
	exited := p.exited
	p.mu.Unlock()
	select {
	case <-exited:
		p.mu.Lock()
		defer p.mu.Unlock()
		return true, p.waitErr
	default:
		return false, nil
	}
}

// terminate sends SIGTERM, as systemd's stop does, and waits up to timeout
// for the process to exit by itself; it returns the wait error (nil for
// exit status 0). A process still running after timeout is killed and an
// error returned.
func (p *process) terminate(timeout time.Duration) error {
	p.mu.Lock()
	exited := p.exited
	p.mu.Unlock()
	if err := p.signal(syscall.SIGTERM, stateRunning); err != nil {
		return err
	}
	select {
	case <-exited:
	case <-time.After(timeout):
		if err := p.kill(); err != nil {
			return fmt.Errorf("terminate %s: still running %s after SIGTERM; %w", p.name, timeout, err)
		}
		return fmt.Errorf("terminate %s: still running %s after SIGTERM; killed", p.name, timeout)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.waitErr != nil {
		return fmt.Errorf("terminate %s: %w", p.name, p.waitErr)
	}
	return nil
}

// exe returns the binary the current process runs (its /proc/PID/exe), or
// "" when down.
func (p *process) exe() string {
	pid := p.pid()
	if pid == 0 {
		return ""
	}
	path, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil {
		return ""
	}
	return path
}

// setBinary makes the next start run bin.
func (p *process) setBinary(bin string) {
	p.mu.Lock()
	p.bin = bin
	p.mu.Unlock()
}
