//go:build integration

package harness

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// CLITimeout bounds one CLI command run by the harness unless the caller
// gives its own bound.
const CLITimeout = 60 * time.Second

// CLIResult is the outcome of one run of the hakuriver CLI.
type CLIResult struct {
	Args    []string
	Stdout  string
	Stderr  string
	Code    int // exit code; -1 when the process did not exit by itself
	Elapsed time.Duration
	// Err is set when the process could not start or was killed at the
	// deadline.
	Err error
}

// String describes the run for failure messages.
func (r CLIResult) String() string {
	return fmt.Sprintf("hakuriver %s: exit %d in %s (err %v)\nstdout: %s\nstderr: %s",
		strings.Join(r.Args, " "), r.Code, r.Elapsed.Round(time.Millisecond), r.Err,
		truncate([]byte(r.Stdout), 2000), truncate([]byte(r.Stderr), 2000))
}

// Decode unmarshals stdout (the output of -o json) into out.
func (r CLIResult) Decode(out any) error {
	if err := json.Unmarshal([]byte(r.Stdout), out); err != nil {
		return fmt.Errorf("decode the JSON output of hakuriver %s: %w", strings.Join(r.Args, " "), err)
	}
	return nil
}

// CLICommand is one CLI invocation to run with RunCLI.
type CLICommand struct {
	// Bin is the hakuriver binary.
	Bin string
	// Args are its arguments (global flags such as --host included).
	Args []string
	// Stdin is its standard input ("" is an empty input).
	Stdin string
	// Env is added to the harness's environment, from which
	// HAKURIVER_HOST and HAKURIVER_CONFIG are removed.
	Env []string
	// Timeout bounds the run (CLITimeout when 0): the process group is
	// killed then.
	Timeout time.Duration
	// Tee, when set, also receives the standard output as it comes.
	Tee io.Writer
}

// RunCLI runs one CLI command to its end or its timeout. It never fails the
// test itself: the caller judges the CLIResult.
func RunCLI(ctx context.Context, cc CLICommand) CLIResult {
	timeout := cc.Timeout
	if timeout <= 0 {
		timeout = CLITimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var out, errOut bytes.Buffer
	cmd := exec.CommandContext(ctx, cc.Bin, cc.Args...)
	cmd.Stdin = strings.NewReader(cc.Stdin)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if cc.Tee != nil {
		cmd.Stdout = io.MultiWriter(&out, cc.Tee)
	}
	env := os.Environ()
	for _, name := range []string{"HAKURIVER_HOST", "HAKURIVER_CONFIG", "HAKURIVER_TOKEN", "HAKURIVER_CREDENTIALS"} {
		env = withoutEnv(env, name)
	}
	cmd.Env = append(env, cc.Env...)
	// Its own process group, so that the deadline also ends what it
	// started (the ssh client of "hakuriver ssh").
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	err := cmd.Run()
	r := CLIResult{Args: cc.Args, Stdout: out.String(), Stderr: errOut.String(), Elapsed: time.Since(start), Code: -1}
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		r.Err = fmt.Errorf("killed after %s: %w", timeout, ctx.Err())
	case err == nil:
		r.Code = 0
	case errors.As(err, &ee) && ee.Exited():
		r.Code = ee.ExitCode()
	default:
		r.Err = err
	}
	return r
}

// CLIEnv is the environment the harness's CLI runs add: the admin's token
// (HAKURIVER_TOKEN) and a token store of the cluster's own.
func (c *Cluster) CLIEnv() []string {
	env := []string{"HAKURIVER_CREDENTIALS=" + filepath.Join(c.base, "cli-tokens.json")}
	if c.admin != "" {
		env = append(env, "HAKURIVER_TOKEN="+c.admin)
	}
	return env
}

// Bin returns the hakuriver binary the cluster runs.
func (c *Cluster) Bin() string { return c.opts.Bin }

// HostFlag returns the --host value naming replicas idxs in that order, or
// every replica when idxs is empty.
func (c *Cluster) HostFlag(idxs ...int) string {
	if len(idxs) == 0 {
		for i := range c.N() {
			idxs = append(idxs, i)
		}
	}
	urls := make([]string, len(idxs))
	for k, i := range idxs {
		urls[k] = c.Replica(i).API
	}
	return strings.Join(urls, ",")
}

// CLIVia runs `hakuriver --host <replicas idxs> args...` with stdin, bounded
// by timeout (CLITimeout when 0). idxs nil means every replica.
func (c *Cluster) CLIVia(idxs []int, timeout time.Duration, stdin string, args ...string) CLIResult {
	full := append([]string{"--host", c.HostFlag(idxs...)}, args...)
	return RunCLI(context.Background(), CLICommand{Bin: c.opts.Bin, Args: full, Stdin: stdin, Timeout: timeout, Env: c.CLIEnv()})
}

// CLI runs `hakuriver --host <every replica> args...` and returns its
// result, whatever the exit code.
func (c *Cluster) CLI(args ...string) CLIResult {
	return c.CLIVia(nil, 0, "", args...)
}

// CLIOK runs `hakuriver --host <every replica> args...` and fails the test
// unless it exits 0.
func (c *Cluster) CLIOK(args ...string) CLIResult {
	c.tb.Helper()
	r := c.CLI(args...)
	if r.Code != 0 {
		c.tb.Fatalf("%s", r)
	}
	return r
}

// Background is a CLI command running in the background (StartCLIVia).
type Background struct {
	mu   sync.Mutex
	out  bytes.Buffer
	done chan struct{}
	res  CLIResult
}

// Write implements io.Writer for the command's standard output.
func (b *Background) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.out.Write(p)
}

// Stdout returns the standard output so far.
func (b *Background) Stdout() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.out.String()
}

// Done returns the result when the command has ended.
func (b *Background) Done() (r CLIResult, ok bool) {
	select {
	case <-b.done:
		return b.res, true
	default:
		return CLIResult{}, false
	}
}

// Wait waits at most timeout for the command to end; ok is false when it
// still runs.
func (b *Background) Wait(timeout time.Duration) (r CLIResult, ok bool) {
	select {
	case <-b.done:
		return b.res, true
	case <-time.After(timeout):
		return CLIResult{}, false
	}
}

// StartCLIVia starts `hakuriver --host <replicas idxs> args...` in the
// background, bounded by timeout (CLITimeout when 0). The process group is
// killed at the cleanup of the cluster's TB if it still runs.
func (c *Cluster) StartCLIVia(idxs []int, timeout time.Duration, args ...string) *Background {
	full := append([]string{"--host", c.HostFlag(idxs...)}, args...)
	ctx, cancel := context.WithCancel(context.Background())
	b := &Background{done: make(chan struct{})}
	go func() {
		defer close(b.done)
		b.res = RunCLI(ctx, CLICommand{Bin: c.opts.Bin, Args: full, Timeout: timeout, Tee: b, Env: c.CLIEnv()})
	}()
	c.tb.Cleanup(func() {
		cancel()
		<-b.done
	})
	return b
}

// SSHProxy returns replica i's SSH proxy address (host:port), as the
// leader's GET /api/cluster lists it.
func (c *Cluster) SSHProxy(i int) string {
	c.tb.Helper()
	id := c.Replica(i).ID
	out := ""
	c.Poll(StartTimeout, "the SSH proxy address of "+id, func() (bool, string) {
		for _, j := range c.Running() {
			st, err := c.Status(j)
			if err != nil {
				continue
			}
			for _, r := range st.Replicas {
				if r.ID == id && r.SSHProxy != "" {
					out = r.SSHProxy
					return true, ""
				}
			}
		}
		return false, "no running replica lists it"
	})
	return out
}

// LogContains reports whether the log file at path contains s.
func LogContains(path, s string) bool {
	b, err := os.ReadFile(path)
	return err == nil && bytes.Contains(b, []byte(s))
}
