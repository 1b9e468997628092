package native

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/runner/executor"
)

// modes runs f with cgroups (when writable) and without.
func modes(t *testing.T, f func(t *testing.T, h *harness)) {
	t.Run("cgroups", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, nil)
		h.requireLimited()
		f(t, h)
	})
	t.Run("nocgroups", func(t *testing.T) {
		t.Parallel()
		f(t, newHarness(t, func(c *Config) { c.DisableCgroups = true }))
	})
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	ok := DefaultConfig()
	ok.StateDir = "/var/lib/x/tasks"
	tests := []struct {
		name    string
		mutate  func(*Config)
		wantErr bool
	}{
		{"defaults", func(*Config) {}, false},
		{"relative state dir", func(c *Config) { c.StateDir = "tasks" }, true},
		{"empty state dir", func(c *Config) { c.StateDir = "" }, true},
		{"absolute parent", func(c *Config) { c.CgroupParent = "/hakuriver" }, true},
		{"escaping parent", func(c *Config) { c.CgroupParent = "../x" }, true},
		{"nested parent", func(c *Config) { c.CgroupParent = "a/b" }, false},
		{"zero poll", func(c *Config) { c.PollInterval = 0 }, true},
		{"zero start timeout", func(c *Config) { c.StartTimeout = 0 }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			tt.mutate(&c)
			if err := c.Validate(); (err != nil) != tt.wantErr {
				t.Fatalf("Validate() = %v, wantErr %v", err, tt.wantErr)
			}
		})
	}
}

func TestOutputArgsEnvWorkDir(t *testing.T) {
	modes(t, func(t *testing.T, h *harness) {
		tmp := t.TempDir()
		work := filepath.Join(tmp, "work")
		if err := os.Mkdir(work, 0o755); err != nil {
			t.Fatal(err)
		}
		stdout := filepath.Join(tmp, "out.txt")
		if err := os.WriteFile(stdout, []byte("previous\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		stderr := filepath.Join(tmp, "new", "dirs", "err.txt")
		h.start(executor.Spec{
			TaskID:  1,
			Command: "sh",
			Args:    []string{"-c", `echo "out:$FOO:$1:$HOME:$PATH"; pwd; echo "err:$FOO" >&2`, "zero", "one"},
			Env:     map[string]string{"FOO": "bar baz"},
			WorkDir: work,
			Stdout:  stdout,
			Stderr:  stderr,
		})
		if ex := h.wait(1); ex.Code != 0 || ex.OOM || ex.Killed || ex.Message != "" {
			t.Fatalf("exit = %+v, want a clean 0", ex)
		}
		got, _ := os.ReadFile(stdout)
		me, err := user.Current()
		if err != nil {
			t.Fatal(err)
		}
		want := "previous\nout:bar baz:one:" + me.HomeDir + ":" + defaultPath + "\n" + work + "\n"
		if string(got) != want {
			t.Errorf("stdout = %q, want %q", got, want)
		}
		if got, _ := os.ReadFile(stderr); string(got) != "err:bar baz\n" {
			t.Errorf("stderr = %q", got)
		}
	})
}

func TestExitCodeAndSignal(t *testing.T) {
	modes(t, func(t *testing.T, h *harness) {
		h.start(executor.Spec{TaskID: 1, Command: "sh", Args: []string{"-c", "exit 3"}})
		h.start(executor.Spec{TaskID: 2, Command: "sh", Args: []string{"-c", "kill -SEGV $$"}})
		h.start(executor.Spec{TaskID: 3, Command: "/nonexistent/command"})
		if ex := h.wait(1); ex.Code != 3 || ex.Killed || ex.OOM || ex.Message != "" {
			t.Errorf("exit 3: got %+v", ex)
		}
		if ex := h.wait(2); ex.Code != -1 || ex.Killed || !strings.Contains(ex.Message, "signal 11") {
			t.Errorf("SIGSEGV: got %+v", ex)
		}
		ex := h.wait(3)
		if ex.Code != -1 || !strings.HasPrefix(ex.Message, "start: ") {
			t.Errorf("missing command: got %+v", ex)
		}
		if ex.EndedAt.Before(ex.StartedAt) || ex.StartedAt.IsZero() {
			t.Errorf("times: %v → %v", ex.StartedAt, ex.EndedAt)
		}
	})
}

func TestRunsAsUser(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	out := filepath.Join(t.TempDir(), "id.txt")
	h.start(executor.Spec{TaskID: 1, Command: "sh", Args: []string{"-c", `id -u; echo "$HOME $USER"`},
		User: "nobody", WorkDir: "/", Stdout: out})
	if ex := h.wait(1); ex.Code != 0 {
		t.Fatalf("exit = %+v", ex)
	}
	got, _ := os.ReadFile(out)
	if !strings.HasPrefix(string(got), "65534\n") || !strings.Contains(string(got), " nobody") {
		t.Errorf("output = %q, want uid 65534 and USER nobody", got)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(out, &st); err != nil || st.Uid != 65534 {
		t.Errorf("output file owner = %d (%v), want 65534", st.Uid, err)
	}
}

// TestInheritedDescriptorsDoNotReachTask: a descriptor the runner
// inherited without close-on-exec (here one this test opens so, before the
// executor starts any supervisor) is not open in a task, which runs as
// another user.
func TestInheritedDescriptorsDoNotReachTask(t *testing.T) {
	secret := filepath.Join(t.TempDir(), "runner-secret")
	if err := os.WriteFile(secret, []byte("not for tasks\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fd, err := syscall.Open(secret, syscall.O_RDONLY, 0) // no O_CLOEXEC
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	h := newHarness(t, nil)
	out := filepath.Join(t.TempDir(), "fds.txt")
	h.start(executor.Spec{TaskID: 1, Command: "sh", Args: []string{"-c", "ls -l /proc/self/fd/"},
		User: "nobody", WorkDir: "/", Stdout: out})
	if ex := h.wait(1); ex.Code != 0 {
		t.Fatalf("exit = %+v", ex)
	}
	got, _ := os.ReadFile(out)
	if strings.Contains(string(got), secret) || len(got) == 0 {
		t.Fatalf("the task's descriptors:\n%s\nhold the runner's descriptor %d to %s", got, fd, secret)
	}
}

// TestRunsAsNumericUser: UID:GID needs no passwd entry; the task gets
// exactly that user and group (no supplementary groups) and its output
// files belong to it.
func TestRunsAsNumericUser(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	dir := t.TempDir()
	out, errf := filepath.Join(dir, "id.out"), filepath.Join(dir, "id.err")
	h.start(executor.Spec{TaskID: 1, Command: "sh", Args: []string{"-c", `id -u; id -g; id -G; echo "$HOME $USER"`},
		User: "4242:4243", WorkDir: "/", Stdout: out, Stderr: errf})
	if ex := h.wait(1); ex.Code != 0 {
		t.Fatalf("exit = %+v", ex)
	}
	got, _ := os.ReadFile(out)
	if string(got) != "4242\n4243\n4243\n/ 4242\n" {
		t.Errorf("output = %q, want uid 4242, gid 4243, no other group, HOME / and USER 4242", got)
	}
	for _, p := range []string{out, errf} {
		var st syscall.Stat_t
		if err := syscall.Stat(p, &st); err != nil || st.Uid != 4242 || st.Gid != 4243 {
			t.Errorf("%s owned by %d:%d (%v), want 4242:4243", p, st.Uid, st.Gid, err)
		}
	}
}

func TestStartIsIdempotent(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	out := filepath.Join(t.TempDir(), "runs.txt")
	s := executor.Spec{TaskID: 7, Command: "sh", Args: []string{"-c", "echo run; sleep 0.3"}, Stdout: out}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() { errs <- h.e.Start(ctx(t), s) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("concurrent Start: %v", err)
		}
	}
	h.rememberShim(7)
	h.wait(7)
	if err := h.e.Start(ctx(t), s); err != nil {
		t.Fatalf("Start after the end: %v", err)
	}
	if got, _ := os.ReadFile(out); string(got) != "run\n" {
		t.Errorf("output = %q: the task ran more than once", got)
	}
	entries, _ := os.ReadDir(h.cfg.StateDir)
	var names []string
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), spareDirPrefix) { // the next task's, made ahead
			names = append(names, e.Name())
		}
	}
	if len(names) != 1 || names[0] != "7" {
		t.Errorf("state dir holds %v, want just 7 (and a spare)", entries)
	}
}

func TestUnknownEndedAndForget(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	c := ctx(t)
	if err := h.e.Kill(c, 99); !errors.Is(err, executor.ErrUnknownTask) {
		t.Errorf("Kill(unknown) = %v", err)
	}
	if err := h.e.Pause(c, 99); !errors.Is(err, executor.ErrUnknownTask) {
		t.Errorf("Pause(unknown) = %v", err)
	}
	if err := h.e.Forget(c, 99); !errors.Is(err, executor.ErrUnknownTask) {
		t.Errorf("Forget(unknown) = %v", err)
	}
	h.start(executor.Spec{TaskID: 1, Command: "sleep", Args: []string{"100"}})
	if err := h.e.Forget(c, 1); !errors.Is(err, ErrNotRunning) {
		t.Errorf("Forget(running) = %v, want ErrNotRunning", err)
	}
	if err := h.e.Kill(c, 1); err != nil {
		t.Fatalf("Kill: %v", err)
	}
	if ex := h.wait(1); !ex.Killed || ex.Code != -1 || ex.Message != "" {
		t.Errorf("killed exit = %+v", ex)
	}
	if err := h.e.Kill(c, 1); err != nil {
		t.Errorf("Kill(ended) = %v, want nil", err)
	}
	if err := h.e.Pause(c, 1); !errors.Is(err, ErrNotRunning) {
		t.Errorf("Pause(ended) = %v, want ErrNotRunning", err)
	}
	if err := h.e.Forget(c, 1); err != nil {
		t.Fatalf("Forget: %v", err)
	}
	if states, err := h.e.List(c); err != nil || len(states) != 0 {
		t.Errorf("List after Forget = %v, %v", states, err)
	}
}

func TestKillLeavesNoOrphan(t *testing.T) {
	modes(t, func(t *testing.T, h *harness) {
		h.start(executor.Spec{TaskID: 1, Command: "sh", Args: []string{"-c", "sleep 100 & sleep 100 & wait"}})
		leader := h.taskRecord(1)
		var pids []int
		eventually(t, 5*time.Second, "two sleeps", func() bool {
			pids = groupMembers(leader.PGID)
			return len(pids) >= 3
		})
		ticks := map[int]uint64{}
		for _, pid := range pids {
			if st, err := readProcStat(pid); err == nil {
				ticks[pid] = st.StartTicks
			}
		}
		if err := h.e.Kill(ctx(t), 1); err != nil {
			t.Fatalf("Kill: %v", err)
		}
		if ex := h.wait(1); !ex.Killed {
			t.Errorf("exit = %+v, want killed", ex)
		}
		eventually(t, 5*time.Second, "every task process to be gone", func() bool {
			for pid, st := range ticks {
				if !gone(pid, st) {
					return false
				}
			}
			return true
		})
		if l := h.e.layout; l != nil {
			// Removed once the end is out: shortly after.
			for _, d := range l.dirs(taskCgroup(1)) {
				eventually(t, 5*time.Second, "cgroup "+d+" to be removed", func() bool { return !fileExists(d) })
			}
		}
	})
}

// groupMembers lists the processes of process group pgid.
func groupMembers(pgid int) []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		pid, ok := parseTaskDirName(e.Name())
		if !ok {
			continue
		}
		if st, err := readProcStat(int(pid)); err == nil && st.PGRP == pgid && st.State != 'Z' {
			out = append(out, int(pid))
		}
	}
	return out
}

func TestPauseResume(t *testing.T) {
	modes(t, func(t *testing.T, h *harness) {
		trigger := filepath.Join(t.TempDir(), "stop")
		h.start(executor.Spec{TaskID: 1, Command: "sh",
			Args: []string{"-c", `while [ ! -e "$1" ]; do :; done; exit 5`, "sh", trigger}})
		pid := h.taskRecord(1).PID
		cpu := func() uint64 {
			st, err := readProcStat(pid)
			if err != nil {
				t.Fatalf("stat task: %v", err)
			}
			return st.CPUTicks
		}
		start := cpu()
		eventually(t, 5*time.Second, "the busy loop to use CPU", func() bool { return cpu() > start+5 })
		if err := h.e.Pause(ctx(t), 1); err != nil {
			t.Fatalf("Pause: %v", err)
		}
		if s := listOne(t, h.e, 1); !s.Paused || !s.Running {
			t.Errorf("state after Pause = %+v", s)
		}
		st, _ := readProcStat(pid)
		t.Logf("paused task state %q", st.State)
		if err := os.WriteFile(trigger, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		// A running loop would see the trigger within milliseconds and use
		// CPU doing so; frozen, it does neither for the whole window.
		frozen := cpu()
		for deadline := time.Now().Add(400 * time.Millisecond); time.Now().Before(deadline); {
			if got := cpu(); got != frozen {
				t.Fatalf("CPU time went from %d to %d while paused", frozen, got)
			}
			if s := listOne(t, h.e, 1); s.Exit != nil {
				t.Fatalf("task ended while paused: %+v", s.Exit)
			}
			time.Sleep(20 * time.Millisecond)
		}
		if err := h.e.Resume(ctx(t), 1); err != nil {
			t.Fatalf("Resume: %v", err)
		}
		if ex := h.wait(1); ex.Code != 5 {
			t.Errorf("exit after resume = %+v, want 5", ex)
		}
	})
}

// listOne returns task id's state from List.
func listOne(t testing.TB, e *Executor, id int64) executor.State {
	t.Helper()
	states, err := e.List(ctx(t))
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	for _, s := range states {
		if s.TaskID == id {
			return s
		}
	}
	t.Fatalf("task %d not listed in %+v", id, states)
	return executor.State{}
}

// TestRunnerRestart starts a task from a separate runner process, SIGKILLs
// that process, and checks that a new Executor over the same state dir sees
// the task running and later its real exit, also through Run and Exits.
func TestRunnerRestart(t *testing.T) {
	modes(t, func(t *testing.T, h *harness) {
		for _, warm := range []bool{false, true} {
			t.Run(map[bool]string{false: "cold", true: "warm"}[warm], func(t *testing.T) {
				runnerRestart(t, h, warm)
			})
		}
	})
}

// runnerRestart starts task 42 (or 43 with warm, on a warm supervisor) in
// a runner process, SIGKILLs the runner, and checks that a new executor
// finds the task running and sees its end.
func runnerRestart(t *testing.T, h *harness, warm bool) {
	id := int64(42)
	if warm {
		id = 43
	}
	trigger := filepath.Join(t.TempDir(), "go")
	order, _ := json.Marshal(runnerOrder{
		Config: withoutLogger(h.cfg),
		Spec: executor.Spec{TaskID: id, Command: "sh",
			Args: []string{"-c", `while [ ! -e "$1" ]; do sleep 0.02; done; exit 7`, "sh", trigger}},
		Warm: warm,
	})
	runner := exec.Command(os.Args[0])
	runner.Env = append(os.Environ(), testRunnerEnv+"="+string(order))
	runner.Stderr = tWriter{t}
	stdout, err := runner.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := runner.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "started\n" {
		_ = runner.Process.Kill() // the test failed already
		_ = runner.Wait()         // reap it; its error is not the point
		t.Fatalf("runner said %q, %v", line, err)
	}
	if err := runner.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := runner.Wait(); err == nil {
		t.Fatal("runner exited cleanly, want killed")
	}
	h.rememberShim(id)
	h.rememberShim(id + 1000)

	e := h.newExecutor()
	s := listOne(t, e, id)
	if !s.Running || s.Exit != nil || s.Started.IsZero() {
		t.Fatalf("after the runner died: %+v", s)
	}
	run, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(run) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	if err := os.WriteFile(trigger, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	// Earlier tasks of this state dir (ended, not forgotten) come too.
	deadline := time.After(10 * time.Second)
	for got := int64(0); got != id; {
		select {
		case got = <-e.Exits():
		case <-deadline:
			t.Fatalf("no exit notification for task %d within 10s", id)
		}
	}
	if ex := h.wait(id); ex.Code != 7 || ex.Killed {
		t.Errorf("exit = %+v, want code 7", ex)
	}
}

// withoutLogger drops the test logger, which cannot cross a process.
func withoutLogger(c Config) Config {
	c.Logger = nil
	return c
}

// TestLostSupervisor SIGKILLs a supervisor: the executor records the task
// as ended (lost) and kills what is left of it.
func TestLostSupervisor(t *testing.T) {
	modes(t, func(t *testing.T, h *harness) {
		h.start(executor.Spec{TaskID: 1, Command: "sleep", Args: []string{"100"}})
		task := h.taskRecord(1)
		var shim shimRecord
		if ok, err := readJSON(filepath.Join(h.e.taskDir(1), fileShim), &shim); !ok || err != nil {
			t.Fatalf("shim record: %v %v", ok, err)
		}
		if err := syscall.Kill(shim.PID, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		reap(t, shim.PID)
		ex := h.wait(1)
		if ex.Code != -1 || !strings.Contains(ex.Message, "supervisor disappeared") {
			t.Errorf("exit = %+v", ex)
		}
		// The task was reparented to this test process (a subreaper).
		reap(t, task.PID)
		if !gone(task.PID, task.StartTicks) {
			t.Errorf("task process %d survived its lost supervisor", task.PID)
		}
	})
}

// TestWarmSupervisors checks that after a first start the executor keeps
// supervisors waiting, that the next start runs on one of them, and that
// Close ends the idle ones.
func TestWarmSupervisors(t *testing.T) {
	modes(t, func(t *testing.T, h *harness) {
		h.start(executor.Spec{TaskID: 1, Command: "true"})
		var warm []int
		eventually(t, 20*time.Second, "warm supervisors", func() bool {
			warm = h.e.warmPIDs()
			return len(warm) == warmShims
		})
		h.start(executor.Spec{TaskID: 2, Command: "sleep", Args: []string{"30"}})
		var shim shimRecord
		if ok, err := readJSON(filepath.Join(h.e.taskDir(2), fileShim), &shim); err != nil || !ok {
			t.Fatalf("supervisor record of task 2: ok=%v err=%v", ok, err)
		}
		if !slices.Contains(warm, shim.PID) {
			t.Fatalf("task 2 runs under supervisor %d, not one of the warm %v", shim.PID, warm)
		}
		if s := listOne(t, h.e, 2); !s.Running {
			t.Fatalf("task 2: %+v, want running", s)
		}
		if err := h.e.Close(); err != nil {
			t.Fatal(err)
		}
		for _, pid := range warm {
			if pid == shim.PID {
				continue
			}
			eventually(t, 10*time.Second, fmt.Sprintf("idle supervisor %d to exit", pid), func() bool {
				return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
			})
		}
		if s := listOne(t, h.e, 2); !s.Running {
			t.Fatalf("task 2 after Close: %+v, want still running", s)
		}
	})
}

// TestBrokenSupervisorFailsStart uses a shim that exits at once: Start
// fails (cold, and again when the warm supervisors are broken too) and
// nothing is tracked.
func TestBrokenSupervisorFailsStart(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(c *Config) { c.ShimCommand = []string{"/bin/sh", "-c", "echo broken shim >&2; exit 3"} })
	for id := int64(1); id <= 3; id++ {
		err := h.e.Start(ctx(t), executor.Spec{TaskID: id, Command: "true"})
		if err == nil || !strings.Contains(err.Error(), "without starting the task") {
			t.Fatalf("Start(%d) = %v, want a supervisor that exited without starting the task", id, err)
		}
		states, err := h.e.List(ctx(t))
		if err != nil || len(states) != 0 {
			t.Fatalf("after a failed Start: List = %+v, %v; want nothing tracked", states, err)
		}
	}
}

// TestShimForEarlierRunner runs the shim as a runner of the previous
// version did (no started pipe, "runner-shim <dir>", waiting for it to
// exit): it detaches a supervisor and exits at once, and the task runs.
func TestShimForEarlierRunner(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(c *Config) { c.DisableCgroups = true })
	id := int64(7)
	dir := h.e.taskDir(id)
	if _, err := h.e.createTaskDir(executor.Spec{TaskID: id, Command: "sh", Args: []string{"-c", "exit 5"}}, dir); err != nil {
		t.Fatal(err)
	}
	argv := append(slices.Clone(h.cfg.ShimCommand), dir)
	cmd := exec.Command(argv[0], argv[1:]...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("shim: %v: %s", err, out)
	}
	eventually(t, 10*time.Second, "the supervisor record", func() bool {
		return fileExists(filepath.Join(dir, fileShim))
	})
	h.rememberShim(id)
	if ex := h.wait(id); ex.Code != 5 {
		t.Fatalf("exit %+v, want code 5", ex)
	}
}

// TestStartingUntilProcessRuns holds the supervisor back before it starts
// the task: meanwhile List reports the task Starting (the runner does not
// report it running) and Pause refuses it; once the process exists the
// task is running and pauses.
func TestStartingUntilProcessRuns(t *testing.T) {
	t.Parallel()
	gate := filepath.Join(t.TempDir(), "gate")
	h := newHarness(t, func(c *Config) {
		c.DisableCgroups = true
		// A supervisor started after the test's directory is gone (a
		// warm one refilled at the end) gives up instead of waiting forever.
		wait := `while [ ! -e "$0" ]; do [ -d "${0%/*}" ] || exit 1; sleep 0.01; done; exec "$@"`
		c.ShimCommand = append([]string{"/bin/sh", "-c", wait, gate}, c.ShimCommand...)
	})
	started := make(chan error, 1)
	go func() { started <- h.e.Start(ctx(t), executor.Spec{TaskID: 3, Command: "sleep", Args: []string{"30"}}) }()
	eventually(t, 10*time.Second, "the task to be listed", func() bool {
		states, err := h.e.List(ctx(t))
		return err == nil && len(states) == 1
	})
	if s := listOne(t, h.e, 3); !s.Starting || !s.Running || s.Paused || s.Exit != nil {
		t.Fatalf("state before the process started = %+v, want Starting", s)
	}
	if err := h.e.Pause(ctx(t), 3); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("Pause before the process started: %v, want ErrNotRunning", err)
	}
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := <-started; err != nil {
		t.Fatalf("Start: %v", err)
	}
	h.rememberShim(3)
	if s := listOne(t, h.e, 3); s.Starting || !s.Running {
		t.Fatalf("state once started = %+v", s)
	}
	if err := h.e.Pause(ctx(t), 3); err != nil {
		t.Fatalf("Pause once started: %v", err)
	}
	if s := listOne(t, h.e, 3); !s.Paused || s.Starting {
		t.Fatalf("state after Pause = %+v", s)
	}
	if err := h.e.Kill(ctx(t), 3); err != nil {
		t.Fatalf("Kill: %v", err)
	}
	h.wait(3)
}

// TestWarmSupervisorJoinsOnceBooted holds warm supervisors back before they
// boot: none is offered while they load, and once they booted the next
// start runs on the one that booted first.
func TestWarmSupervisorJoinsOnceBooted(t *testing.T) {
	t.Parallel()
	gate := filepath.Join(t.TempDir(), "gate")
	h := newHarness(t, func(c *Config) {
		c.DisableCgroups = true
		// Only warm supervisors (last argument "-") wait for the gate.
		// One started after the test's directory is gone (a refill at the
		// end) gives up instead of waiting forever.
		wait := `for a; do last=$a; done; if [ "$last" = - ]; then while [ ! -e "$0" ]; do [ -d "${0%/*}" ] || exit 1; sleep 0.01; done; fi; exec "$@"`
		c.ShimCommand = append([]string{"/bin/sh", "-c", wait, gate}, c.ShimCommand...)
	})
	h.start(executor.Spec{TaskID: 1, Command: "true"})
	h.e.mu.Lock()
	booting := h.e.spawning
	h.e.mu.Unlock()
	if warm := h.e.warmPIDs(); len(warm) != 0 || booting != warmShims {
		t.Fatalf("before the supervisors could boot: warm %v, %d booting; want none warm, %d booting", warm, booting, warmShims)
	}
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	var warm []int
	eventually(t, 20*time.Second, "warm supervisors", func() bool {
		warm = h.e.warmPIDs()
		return len(warm) == warmShims
	})
	h.start(executor.Spec{TaskID: 2, Command: "true"})
	var shim shimRecord
	if ok, err := readJSON(filepath.Join(h.e.taskDir(2), fileShim), &shim); err != nil || !ok {
		t.Fatalf("supervisor record of task 2: ok=%v err=%v", ok, err)
	}
	if shim.PID != warm[0] {
		t.Fatalf("task 2 runs under supervisor %d, want %d, the first warm one of %v", shim.PID, warm[0], warm)
	}
	h.wait(1)
	h.wait(2)
}

// TestStaleNewDirsRemoved: a task directory a Start made and never renamed
// (the runner stopped between the two) is removed when an executor starts
// on the state directory, once it is older than a Start could take, and so
// is an earlier executor's spare of any age, and a directory a Forget or a
// removal claimed and never removed; a recent one, which another Start or
// Forget may be at, and task directories stay.
func TestStaleNewDirsRemoved(t *testing.T) {
	var stale, fresh, task, spare, forgotten, removing, freshForgotten string
	newHarness(t, func(c *Config) {
		stale = filepath.Join(c.StateDir, newDirPrefix+"7-123")
		fresh = filepath.Join(c.StateDir, newDirPrefix+"8-456")
		task = filepath.Join(c.StateDir, "9")
		spare = filepath.Join(c.StateDir, spareDirPrefix+"789")
		forgotten = filepath.Join(c.StateDir, forgottenPrefix+"5-abc")
		removing = filepath.Join(c.StateDir, removingPrefix+"123", "6")
		freshForgotten = filepath.Join(c.StateDir, forgottenPrefix+"4-def")
		for _, d := range []string{stale, fresh, task, spare, forgotten, removing, freshForgotten} {
			if err := os.MkdirAll(d, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(d, fileSpec), []byte("{}"), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		old := time.Now().Add(-2 * staleNewDirAge)
		for _, d := range []string{stale, task, forgotten, filepath.Dir(removing)} {
			if err := os.Chtimes(d, old, old); err != nil {
				t.Fatal(err)
			}
		}
	})
	// What a Forget or a removal claimed and a stop interrupted goes once
	// old; a recent one may be another executor's, being removed.
	if fileExists(forgotten) || fileExists(filepath.Dir(removing)) {
		t.Errorf("an old forgotten (%v) or claimed (%v) directory is still there", fileExists(forgotten), fileExists(filepath.Dir(removing)))
	}
	if !fileExists(freshForgotten) {
		t.Errorf("%s (just forgotten) was removed under its Forget", freshForgotten)
	}
	if fileExists(stale) {
		t.Errorf("%s (2 minutes old, never renamed) is still there", stale)
	}
	if !fileExists(fresh) {
		t.Errorf("%s (just made) was removed: a Start may be making it", fresh)
	}
	if fileExists(spare) {
		t.Errorf("%s (an earlier executor's spare, just made) is still there", spare)
	}
	if !fileExists(filepath.Join(task, fileSpec)) {
		t.Errorf("task directory %s was touched", task)
	}
}

// spareDirs lists the spare task directories in the state directory.
func spareDirs(t *testing.T, stateDir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(stateDir, spareDirPrefix+"*"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestSpareTaskDir: after a Start the executor makes the next task's
// directory ahead, with its empty files (the launch record, the
// supervisor's log and lock, the files its records are written through);
// the next Start fills and renames it (the task runs from it, its
// supervisor consumes the files made ahead) and a new one is made. A spare
// removed by someone else only makes Start make a directory anew; Close
// removes the spare.
func TestSpareTaskDir(t *testing.T) {
	h := newHarness(t, nil)
	stateDir := h.cfg.StateDir
	h.start(executor.Spec{TaskID: 1, Command: "true"})
	ready := func() string { h.e.mu.Lock(); defer h.e.mu.Unlock(); return h.e.spare }
	var spare string
	eventually(t, 5*time.Second, "a spare task directory", func() bool {
		spare = ready()
		return spare != ""
	})
	if d := spareDirs(t, stateDir); len(d) != 1 || d[0] != spare {
		t.Fatalf("spare directories %v, want %s", d, spare)
	}
	for _, n := range spareFiles() {
		if b, err := os.ReadFile(filepath.Join(spare, n)); err != nil || len(b) != 0 {
			t.Fatalf("the spare's %s: %q, %v; want an empty file", n, b, err)
		}
	}
	h.start(executor.Spec{TaskID: 2, Command: "true"})
	if fileExists(spare) {
		t.Fatalf("spare %s still there after the next Start", spare)
	}
	var l launchRecord
	if ok, err := readJSON(filepath.Join(h.e.taskDir(2), fileSpec), &l); err != nil || !ok || l.Spec.TaskID != 2 {
		t.Fatalf("task 2's launch record: %+v, ok=%v, %v", l, ok, err)
	}
	if ex := h.wait(2); ex.Code != 0 {
		t.Fatalf("task 2 (started in the spare): exit %+v", ex)
	}
	// The supervisor wrote its records through the files made ahead:
	// they are in place, and none is left.
	dir2 := h.e.taskDir(2)
	var shim shimRecord
	var proc procRecord
	var end exitRecord
	for name, v := range map[string]any{fileShim: &shim, fileProc: &proc, fileExit: &end} {
		if ok, err := readJSON(filepath.Join(dir2, name), v); err != nil || !ok {
			t.Fatalf("task 2's %s: ok=%v, %v", name, ok, err)
		}
		if fileExists(filepath.Join(dir2, aheadName(name))) {
			t.Errorf("task 2's %s is still there", aheadName(name))
		}
	}
	if shim.PID == 0 || proc.PID == 0 || end.EndedAt.IsZero() {
		t.Errorf("task 2's records: supervisor %+v, process %+v, end %+v", shim, proc, end)
	}
	if b, err := os.ReadFile(filepath.Join(dir2, fileShimLog)); err != nil || !strings.Contains(string(b), "task ended") {
		t.Errorf("task 2's supervisor log (the spare's file): %q, %v", b, err)
	}
	eventually(t, 5*time.Second, "a new spare task directory", func() bool {
		d := spareDirs(t, stateDir)
		return ready() != "" && len(d) == 1 && d[0] != spare
	})

	// Taken away (as another executor on the directory would): the
	// next Start makes its directory anew.
	for _, d := range spareDirs(t, stateDir) {
		if err := os.RemoveAll(d); err != nil {
			t.Fatal(err)
		}
	}
	h.start(executor.Spec{TaskID: 3, Command: "true"})
	if ex := h.wait(3); ex.Code != 0 {
		t.Fatalf("task 3 (its spare removed): exit %+v", ex)
	}
	if ok, err := readJSON(filepath.Join(h.e.taskDir(3), fileProc), &proc); err != nil || !ok || proc.PID == 0 {
		t.Fatalf("task 3's process record (written through a temporary file): %+v, ok=%v, %v", proc, ok, err)
	}
	eventually(t, 5*time.Second, "a spare task directory after task 3", func() bool { return ready() != "" })
	if err := h.e.Close(); err != nil {
		t.Fatal(err)
	}
	if d := spareDirs(t, stateDir); len(d) != 0 {
		t.Fatalf("spare task directories after Close: %v", d)
	}
}

// TestKillOfTaskForgottenMeanwhile: a task whose end is recorded, reported
// and forgotten (as a runner does at once) while Kill still waits for it
// ended is killed: Kill returns nil, not "unknown task".
func TestKillOfTaskForgottenMeanwhile(t *testing.T) {
	h := newHarness(t, nil)
	for id := int64(1); id <= 5; id++ {
		h.start(executor.Spec{TaskID: id, Command: "sleep", Args: []string{"300"}})
		forgot := make(chan error, 1)
		go func() {
			exit := filepath.Join(h.e.taskDir(id), fileExit)
			for end := time.Now().Add(10 * time.Second); !fileExists(exit); time.Sleep(200 * time.Microsecond) {
				if time.Now().After(end) {
					forgot <- errors.New("no exit record within 10 s")
					return
				}
			}
			forgot <- h.e.Forget(ctx(t), id)
		}()
		if err := h.e.Kill(ctx(t), id); err != nil {
			t.Errorf("Kill of task %d, forgotten once ended: %v", id, err)
		}
		if err := <-forgot; err != nil {
			t.Fatalf("Forget of task %d: %v", id, err)
		}
	}
}

// TestStartReplacesStaleTaskDir: a task directory without a readable
// launch record (an empty one, as a crash of the machine can leave, or
// none beside other files) tracks nothing; a Start of that ID moves it
// away and runs the task, where it used to take the ID as tracked and run
// nothing.
func TestStartReplacesStaleTaskDir(t *testing.T) {
	h := newHarness(t, nil)
	for id, files := range map[int64]map[string]string{
		5: {fileSpec: "", fileShimLog: "old log\n"},
		6: {fileShimLog: "old log\n", fileLock: ""},
	} {
		dir := h.e.taskDir(id)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		for name, body := range files {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		h.start(executor.Spec{TaskID: id, Command: "true"})
		if ex := h.wait(id); ex.Code != 0 {
			t.Fatalf("task %d over a stale directory: exit %+v", id, ex)
		}
		if b, _ := os.ReadFile(filepath.Join(dir, fileShimLog)); strings.Contains(string(b), "old log") {
			t.Errorf("task %d runs in the stale directory: its supervisor log holds %q", id, b)
		}
	}
	if m, _ := filepath.Glob(filepath.Join(h.cfg.StateDir, removingPrefix+"*")); len(m) != 0 {
		t.Errorf("claimed directories left: %v", m)
	}
}

// TestDeadWarmSupervisorCgroupRemoved: a warm supervisor killed while idle
// leaves its warm cgroup (cgroup v1) empty; the Start that finds it dead
// removes it, and runs its task under the next supervisor.
func TestDeadWarmSupervisorCgroupRemoved(t *testing.T) {
	h := newHarness(t, nil)
	h.requireLimited()
	if h.e.layout.Version != 1 {
		t.Skip("warm cgroups are made on cgroup v1 only")
	}
	h.start(executor.Spec{TaskID: 1, Command: "true"})
	h.wait(1)
	h.awaitWarm()
	victim := h.e.warmPIDs()[0]
	dirs := h.e.layout.dirs(warmCgroupPrefix + strconv.Itoa(victim))
	if !fileExists(dirs[0]) {
		t.Fatalf("warm supervisor %d has no warm cgroup %s", victim, dirs[0])
	}
	if err := syscall.Kill(victim, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	h.e.mu.Lock()
	exited := h.e.warm[0].exited
	h.e.mu.Unlock()
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		t.Fatalf("warm supervisor %d not reaped 10 s after SIGKILL", victim)
	}
	h.start(executor.Spec{TaskID: 2, Command: "true"})
	if ex := h.wait(2); ex.Code != 0 {
		t.Fatalf("task 2: exit %+v", ex)
	}
	for _, d := range dirs {
		if fileExists(d) {
			t.Errorf("%s (the killed warm supervisor's cgroup) is still there", d)
		}
	}
}

// msgCounter counts the records with message msg, passing all on.
type msgCounter struct {
	next slog.Handler
	msg  string
	n    *atomic.Int64
}

func (h msgCounter) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }
func (h msgCounter) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == h.msg {
		h.n.Add(1)
	}
	return h.next.Handle(ctx, r)
}
func (h msgCounter) WithAttrs(as []slog.Attr) slog.Handler {
	return msgCounter{next: h.next.WithAttrs(as), msg: h.msg, n: h.n}
}
func (h msgCounter) WithGroup(name string) slog.Handler {
	return msgCounter{next: h.next.WithGroup(name), msg: h.msg, n: h.n}
}

// TestConcurrentStartsOfOneID: Starts of one task ID at once (a /run sent
// again while the first is at it) run the task once, and none takes the
// directory another just made for a stale one.
func TestConcurrentStartsOfOneID(t *testing.T) {
	var removed atomic.Int64
	h := newHarness(t, func(c *Config) {
		c.Logger = slog.New(msgCounter{next: c.Logger.Handler(), msg: "removing a task directory without a launch record", n: &removed})
	})
	for id := int64(1); id <= 30; id++ {
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				if err := h.e.Start(ctx(t), executor.Spec{TaskID: id, Command: "true"}); err != nil {
					t.Errorf("Start(%d): %v", id, err)
				}
			})
		}
		wg.Wait()
		if ex := h.wait(id); ex.Code != 0 {
			t.Fatalf("task %d: exit %+v", id, ex)
		}
	}
	if n := removed.Load(); n != 0 {
		t.Errorf("concurrent Starts removed %d task directories as stale", n)
	}
}
