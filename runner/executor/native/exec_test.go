package native

import (
	"errors"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/runner/executor"
)

// readAll reads r to its end in the background.
func readAll(r io.Reader) func() string {
	var b strings.Builder
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); io.Copy(&b, r) }() //nolint:errcheck // the content is the result
	return func() string { wg.Wait(); return b.String() }
}

// TestExec runs commands inside a running task: separate streams, stdin
// and the exit code; with a TTY its size; in the task's cgroup when it has
// one; a closed session's command is ended; a paused, ended or unknown task
// is refused.
func TestExec(t *testing.T) {
	modes(t, func(t *testing.T, h *harness) {
		h.start(executor.Spec{TaskID: 1, Command: "sleep", Args: []string{"60"}, Env: map[string]string{"HKT_VAR": "v1"}, WorkDir: "/tmp"})
		p, err := h.e.Exec(ctx(t), 1, executor.ExecSpec{Cmd: []string{"sh", "-c", `echo "$HKT_VAR $(pwd)"; echo err >&2; cat; grep -c /task-1$ /proc/self/cgroup; exit 4`}})
		if err != nil {
			t.Fatalf("Exec: %v", err)
		}
		if h.e.Limited() {
			// No thread of the runner (this test) stays in the task's
			// cgroup: killing the task would kill the runner.
			pids, err := h.e.layout.procs(taskCgroup(1))
			if err != nil || slices.Contains(pids, os.Getpid()) {
				t.Fatalf("the task's cgroup holds %v (%v), the runner is %d", pids, err, os.Getpid())
			}
		}
		out, errOut := readAll(p.Stdout()), readAll(p.Stderr())
		io.WriteString(p.Stdin(), "from-stdin\n") //nolint:errcheck // the output shows it
		p.Stdin().Close()
		code, err := p.Wait(ctx(t))
		if err != nil || code != 4 {
			t.Fatalf("Wait: %d, %v; want 4", code, err)
		}
		lines := strings.Split(strings.TrimSpace(out()), "\n")
		if len(lines) != 3 || lines[0] != "v1 /tmp" || lines[1] != "from-stdin" || errOut() != "err\n" {
			t.Fatalf("stdout %q, stderr %q", lines, errOut())
		}
		if inCgroup := lines[2] != "0"; inCgroup != h.e.Limited() {
			t.Errorf("exec in the task's cgroup: %v (%s hierarchies), want %v", inCgroup, lines[2], h.e.Limited())
		}
		p.Close()

		tty, err := h.e.Exec(ctx(t), 1, executor.ExecSpec{Cmd: []string{"sh", "-c", "stty size; exit 3"}, TTY: true, Rows: 30, Cols: 90})
		if err != nil {
			t.Fatalf("Exec with a TTY: %v", err)
		}
		if tty.Stderr() != nil {
			t.Error("a TTY exec has a separate stderr")
		}
		got := readAll(tty.Stdout())
		if code, err := tty.Wait(ctx(t)); err != nil || code != 3 || !strings.Contains(got(), "30 90") {
			t.Fatalf("TTY exec: code %d, %v, output %q; want 3 and 30 90", code, err, got())
		}
		tty.Close()

		long, err := h.e.Exec(ctx(t), 1, executor.ExecSpec{Cmd: []string{"sleep", "100"}})
		if err != nil {
			t.Fatal(err)
		}
		pid := long.(*nativeProcess).cmd.Process.Pid
		long.Close()
		// Under nohup (SIGHUP ignored, which children inherit) the hangup
		// cannot end it and the SIGKILL after the grace period does.
		want, by := 128+int(syscall.SIGHUP), "SIGHUP"
		if signal.Ignored(syscall.SIGHUP) {
			want, by = 128+int(syscall.SIGKILL), "SIGKILL (SIGHUP is ignored here)"
		}
		if code, err := long.Wait(ctx(t)); err != nil || code != want {
			t.Fatalf("closed session's sleep: code %d, %v; want ended by %s", code, err, by)
		}
		if processAlive(pid, 0) {
			t.Fatalf("closed session's process %d still runs", pid)
		}

		if _, err := h.e.Exec(ctx(t), 99, executor.ExecSpec{Cmd: []string{"true"}}); !errors.Is(err, executor.ErrUnknownTask) {
			t.Errorf("exec into an unknown task: %v", err)
		}
		if h.e.Limited() {
			if err := h.e.Pause(ctx(t), 1); err != nil {
				t.Fatal(err)
			}
			if _, err := h.e.Exec(ctx(t), 1, executor.ExecSpec{Cmd: []string{"true"}}); !errors.Is(err, executor.ErrNotRunning) {
				t.Errorf("exec into a paused task: %v", err)
			}
			if err := h.e.Resume(ctx(t), 1); err != nil {
				t.Fatal(err)
			}
		}
		if err := h.e.Kill(ctx(t), 1); err != nil {
			t.Fatal(err)
		}
		h.wait(1)
		deadline := time.Now().Add(10 * time.Second)
		for {
			_, err := h.e.Exec(ctx(t), 1, executor.ExecSpec{Cmd: []string{"true"}})
			if errors.Is(err, executor.ErrNotRunning) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("exec into an ended task: %v, want ErrNotRunning", err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}

// TestExecIntoRetriedTask: a command run inside a later attempt of a task
// joins that attempt's cgroup (task-ID-aN), where the task runs.
func TestExecIntoRetriedTask(t *testing.T) {
	modes(t, func(t *testing.T, h *harness) {
		h.start(executor.Spec{TaskID: 2, Attempt: 2, Command: "sleep", Args: []string{"60"}})
		p, err := h.e.Exec(ctx(t), 2, executor.ExecSpec{Cmd: []string{"sh", "-c", "grep -c /task-2-a2$ /proc/self/cgroup; exit 0"}})
		if err != nil {
			t.Fatalf("Exec into attempt 2: %v", err)
		}
		out := readAll(p.Stdout())
		if code, err := p.Wait(ctx(t)); err != nil || code != 0 {
			t.Fatalf("Wait: %d, %v", code, err)
		}
		p.Close()
		if inCgroup := strings.TrimSpace(out()) != "0"; inCgroup != h.e.Limited() {
			t.Errorf("exec in attempt 2's cgroup: %v (%q hierarchies), want %v", inCgroup, out(), h.e.Limited())
		}
		if err := h.e.Kill(ctx(t), 2); err != nil {
			t.Fatal(err)
		}
		h.wait(2)
	})
}
