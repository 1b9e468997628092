package native

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/runner/executor"
)

// The test binary doubles as the shim (the real re-exec path: the
// Executor runs ShimCommand, which re-executes itself as the supervisor)
// and as a throw-away runner process that a test SIGKILLs.
const (
	testShimEnv   = "HAKURIVER_NATIVE_TEST_SHIM"
	testRunnerEnv = "HAKURIVER_NATIVE_TEST_RUNNER"
	requireEnv    = "HAKURIVER_REQUIRE_CGROUPS"
	// shimBinaryEnv names a built hakuriver binary to use as the shim
	// instead of the test binary.
	shimBinaryEnv = "HAKURIVER_SHIM_BINARY"
	// testProtocolEnv is what a copy of the test binary run with
	// --protocol answers.
	testProtocolEnv = "HAKURIVER_NATIVE_TEST_PROTOCOL"
)

func TestMain(m *testing.M) {
	switch {
	case os.Getenv(testShimEnv) == "1":
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		code := RunShim(ctx, os.Args[len(os.Args)-1])
		stop()
		os.Exit(code)
	case os.Getenv(testRunnerEnv) != "":
		os.Exit(fakeRunner(os.Getenv(testRunnerEnv)))
	case os.Getenv(testLeaderExitEnv) == "1":
		leaderExits()
	case len(os.Args) == 2 && os.Args[1] == "--protocol":
		// A copy of this binary standing in for hakuriver-shim
		// (TestSlimShimChoice): it answers testProtocolEnv, else the
		// real protocol; "fail" fails.
		answer := cmp.Or(os.Getenv(testProtocolEnv), strconv.Itoa(ShimProtocol))
		if answer == "fail" {
			os.Exit(3)
		}
		fmt.Println(answer)
		os.Exit(0)
	}
	// Supervisors outlive the process that launched them and are
	// reparented to the nearest subreaper: be it, so that tests can reap
	// them (this machine's init does not reap orphans).
	if err := setChildSubreaper(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// testLeaderExitEnv makes this binary a process whose leader thread
// exits while another thread runs on (leaderExits).
const testLeaderExitEnv = "HAKURIVER_NATIVE_TEST_LEADER_EXIT"

func init() {
	if os.Getenv(testLeaderExitEnv) == "1" {
		// Init runs on the leader thread: the main goroutine stays there.
		runtime.LockOSThread()
	}
}

// leaderExits ends the leader thread alone (as pthread_exit does) while a
// goroutine sleeps on another thread: the process lives on, its leader a
// zombie, for 5 minutes.
func leaderExits() {
	if syscall.Gettid() != os.Getpid() {
		fmt.Fprintln(os.Stderr, "leaderExits: not on the leader thread")
		os.Exit(2)
	}
	go func() {
		time.Sleep(5 * time.Minute)
		os.Exit(0)
	}()
	time.Sleep(50 * time.Millisecond) // the sleeper is on a thread of its own
	syscall.RawSyscall(syscall.SYS_EXIT, 0, 0, 0)
}

// runnerOrder is what fakeRunner is told to do.
type runnerOrder struct {
	Config Config        `json:"config"`
	Spec   executor.Spec `json:"spec"`
	// Warm starts Spec on a warm supervisor: a `true` task (ID Spec.TaskID
	// + 1000) goes first, and Spec once supervisors wait.
	Warm bool `json:"warm"`
}

// fakeRunner is a runner process: it starts one task, says so on stdout
// and waits to be killed.
func fakeRunner(order string) int {
	var o runnerOrder
	if err := json.Unmarshal([]byte(order), &o); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	e, err := New(o.Config)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var warm []int
	if o.Warm {
		if err := e.Start(ctx, executor.Spec{TaskID: o.Spec.TaskID + 1000, Command: "true"}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		for warm = e.warmPIDs(); len(warm) == 0 && ctx.Err() == nil; warm = e.warmPIDs() {
			time.Sleep(10 * time.Millisecond)
		}
	}
	if err := e.Start(ctx, o.Spec); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	var shim shimRecord
	if ok, err := readJSON(filepath.Join(e.taskDir(o.Spec.TaskID), fileShim), &shim); err != nil || !ok {
		fmt.Fprintln(os.Stderr, "no supervisor record", err)
		return 1
	}
	if o.Warm && !slices.Contains(warm, shim.PID) {
		fmt.Printf("started on supervisor %d, not a warm one of %v\n", shim.PID, warm)
		return 1
	}
	fmt.Println("started")
	<-ctx.Done()
	return 2
}

// warmPIDs lists the process IDs of e's idle warm supervisors.
func (e *Executor) warmPIDs() []int {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []int
	for _, w := range e.warm {
		out = append(out, w.pid)
	}
	return out
}

// harness is an Executor over a test's own state dir and cgroup parent,
// cleaned up after the test: tasks killed, supervisors reaped, cgroups
// removed.
type harness struct {
	t   testing.TB
	cfg Config
	e   *Executor

	mu    sync.Mutex
	shims map[int]bool // supervisor pids to reap
}

// testConfig returns a Config using the test binary as the shim.
func testConfig(t testing.TB) Config {
	cfg := DefaultConfig()
	cfg.StateDir = filepath.Join(t.TempDir(), "tasks")
	// Under -race a process sleeps 1s at exit unless told not to: the
	// shim's first stage would make every Start take that long.
	gorace := strings.TrimSpace(os.Getenv("GORACE") + " atexit_sleep_ms=0")
	cfg.ShimCommand = []string{"/usr/bin/env", testShimEnv + "=1", "GORACE=" + gorace, os.Args[0]}
	if bin := os.Getenv(shimBinaryEnv); bin != "" {
		cfg.ShimCommand = []string{bin, "runner-shim"}
		if filepath.Base(bin) == SlimShimName {
			cfg.ShimCommand = []string{bin}
		}
	}
	name := regexp.MustCompile(`[^A-Za-z0-9]+`).ReplaceAllString(t.Name(), "-")
	cfg.CgroupParent = fmt.Sprintf("hakuriver-test-%d-%s", os.Getpid(), name)
	cfg.PollInterval = 20 * time.Millisecond
	cfg.Logger = slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	return cfg
}

func newHarness(t testing.TB, mutate func(*Config)) *harness {
	t.Helper()
	cfg := testConfig(t)
	if mutate != nil {
		mutate(&cfg)
	}
	h := &harness{t: t, cfg: cfg, shims: map[int]bool{}}
	h.e = h.newExecutor()
	t.Cleanup(h.cleanup)
	return h
}

// newExecutor makes another Executor over the same state dir, as a
// restarted runner would.
func (h *harness) newExecutor() *Executor {
	h.t.Helper()
	e, err := New(h.cfg)
	if err != nil {
		h.t.Fatalf("New: %v", err)
	}
	h.t.Cleanup(func() { e.Close() }) //nolint:errcheck // Close never fails
	return e
}

// requireLimited skips (or fails, under HAKURIVER_REQUIRE_CGROUPS=1) a test
// that needs writable cgroups.
func (h *harness) requireLimited() {
	h.t.Helper()
	if h.e.Limited() {
		return
	}
	if os.Getenv(requireEnv) == "1" {
		h.t.Fatalf("cgroups under %s are not writable and %s=1", h.cfg.CgroupRoot, requireEnv)
	}
	h.t.Skipf("cgroups under %s are not writable (run as root on a host with cgroups; %s=1 makes this a failure)",
		h.cfg.CgroupRoot, requireEnv)
}

// start starts s and remembers its supervisor for cleanup.
func (h *harness) start(s executor.Spec) {
	h.t.Helper()
	if err := h.e.Start(ctx(h.t), s); err != nil {
		h.t.Fatalf("Start(%d): %v", s.TaskID, err)
	}
	h.rememberShim(s.TaskID)
}

func (h *harness) rememberShim(id int64) {
	var r shimRecord
	if ok, _ := readJSON(filepath.Join(h.e.taskDir(id), fileShim), &r); ok {
		h.mu.Lock()
		h.shims[r.PID] = true
		h.mu.Unlock()
	}
}

// wait waits for task id's end.
func (h *harness) wait(id int64) executor.Exit {
	h.t.Helper()
	ex, err := h.e.Wait(ctx(h.t), id)
	if err != nil {
		h.t.Fatalf("Wait(%d): %v", id, err)
	}
	return ex
}

// taskRecord reads a task's process record.
func (h *harness) taskRecord(id int64) procRecord {
	h.t.Helper()
	var r procRecord
	if ok, err := readJSON(filepath.Join(h.e.taskDir(id), fileProc), &r); err != nil || !ok {
		h.t.Fatalf("read task record of %d: ok=%v err=%v", id, ok, err)
	}
	return r
}

func (h *harness) cleanup() {
	c, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	// The idle warm supervisors exit and remove their warm cgroups (v1),
	// which the parent's removal below waits for.
	h.e.Close() //nolint:errcheck // never fails
	states, err := h.e.List(c)
	if err != nil {
		h.t.Errorf("cleanup: List: %v", err)
	}
	for _, s := range states {
		h.rememberShim(s.TaskID)
		if s.Running {
			if err := h.e.Kill(c, s.TaskID); err != nil {
				h.t.Errorf("cleanup: Kill(%d): %v", s.TaskID, err)
			}
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for pid := range h.shims {
		reap(h.t, pid)
	}
	if l := h.e.layout; l != nil {
		for _, d := range append(l.dirs(shimsCgroup), l.dirs("")...) {
			if err := removeDir(c, d); err != nil {
				h.t.Errorf("cleanup: %v", err)
			}
		}
	}
}

// removeDir removes an empty cgroup directory, retrying while it is busy.
func removeDir(c context.Context, d string) error {
	for {
		err := os.Remove(d)
		if err == nil || errors.Is(err, os.ErrNotExist) {
			return nil
		}
		select {
		case <-c.Done():
			return fmt.Errorf("remove %s: %w", d, err)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// reap waits for the exited child pid (a supervisor or orphan reparented
// to this subreaper process) and collects it; a pid that is not our child
// is left alone.
func reap(t testing.TB, pid int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		var ws syscall.WaitStatus
		got, err := syscall.Wait4(pid, &ws, syscall.WNOHANG, nil)
		if got == pid || errors.Is(err, syscall.ECHILD) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Errorf("process %d did not exit within 10s", pid)
}

// ctx returns a context bounded for one test step.
func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	t.Cleanup(cancel)
	return c
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// gone reports whether the process recorded as (pid, startTicks) no longer
// exists (a zombie still counts as existing).
func gone(pid int, startTicks uint64) bool {
	st, err := readProcStat(pid)
	return err != nil || st.StartTicks != startTicks
}

// tWriter sends log lines to t.Log.
type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
