package native

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/runner/executor"
)

// startVictim starts a `sleep` child of the test that is in no task's
// cgroup, and kills it at cleanup.
func startVictim(t *testing.T) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("sleep", "300")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill() //nolint:errcheck // it may be dead already (a failed test)
		cmd.Wait()         //nolint:errcheck // reaping only
	})
	return cmd
}

// alive reports whether the child is still running (not a zombie).
func alive(cmd *exec.Cmd) bool {
	st, err := readProcStat(cmd.Process.Pid)
	return err == nil && st.State != 'Z' && st.State != 'X'
}

// writeVictimFile creates a file with known content and returns its path.
func writeVictimFile(t *testing.T) (path, content string) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "victim.txt")
	content = "precious data\n"
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path, content
}

// TestKillRefusesForeignPIDs hands the kill path of a real task cgroup a
// process list naming PIDs <= 1, the test process itself and a `sleep`
// outside the cgroup: every one is refused (nothing is signalled; the
// sleep stays alive), and kill gives up at once instead of retrying.
func TestKillRefusesForeignPIDs(t *testing.T) {
	h := newHarness(t, nil)
	h.requireLimited()
	l := *h.e.layout
	name := taskCgroup(4242)
	if err := l.create(name, limits{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := l.remove(c, name); err != nil {
			t.Error(err)
		}
	})
	victim := startVictim(t)
	listed := []int{0, -1, 1, os.Getpid(), victim.Process.Pid}
	for _, pid := range listed {
		if v := l.killTarget(pid, name); v != killRefused {
			t.Errorf("killTarget(%d) = %v, want refused", pid, v)
		}
	}
	refused := l.killRound(name, listed)
	if len(refused) != len(listed) {
		t.Errorf("killRound refused %v, want all of %v", refused, listed)
	}
	if !alive(victim) {
		t.Fatal("the sleep outside the task's cgroup was killed")
	}

	// A process that is in the cgroup is killed.
	inside := startVictim(t)
	if err := l.join(name, inside.Process.Pid); err != nil {
		t.Fatal(err)
	}
	if v := l.killTarget(inside.Process.Pid, name); v != killOK {
		t.Fatalf("killTarget(a process of the cgroup) = %v, want ok", v)
	}
	done := make(chan error, 1)
	go func() { done <- inside.Wait() }()
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := l.kill(c, name); err != nil {
		t.Fatalf("kill a real task cgroup: %v", err)
	}
	if err := <-done; err == nil {
		t.Error("the process in the cgroup exited cleanly; want killed")
	}
	if !alive(victim) {
		t.Fatal("the sleep outside the task's cgroup was killed")
	}
}

// fakeHierarchy builds, under a plain directory, what a forged launch
// record's cgroup layout would point at: cgroup.procs listing pid and a
// freezer.state that is a symlink to target.
func fakeHierarchy(t *testing.T, pid int, target string) cgroupLayout {
	t.Helper()
	root := t.TempDir()
	l := cgroupLayout{Version: 1, Root: root, Parent: "evil", Controllers: map[string]string{
		"cpu": "cpu", "cpuset": "cpuset", "memory": "memory", "freezer": "freezer"}}
	for _, d := range l.dirs(taskCgroup(7)) {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "cgroup.procs"), []byte(strconv.Itoa(pid)+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(target, filepath.Join(l.dir("freezer", taskCgroup(7)), "freezer.state")); err != nil {
		t.Fatal(err)
	}
	return l
}

// TestForgedCgroupListingIsNotActedOn runs the kill path over a fake
// hierarchy (a plain directory) whose cgroup.procs names a foreign `sleep`
// and whose freezer.state is a symlink to a victim file: the sleep lives,
// the file is unchanged, and kill returns at once (no retry loop).
func TestForgedCgroupListingIsNotActedOn(t *testing.T) {
	victim := startVictim(t)
	file, content := writeVictimFile(t)
	l := fakeHierarchy(t, victim.Process.Pid, file)
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	err := l.kill(c, taskCgroup(7))
	if !errors.Is(err, errNotInCgroup) {
		t.Errorf("kill over a forged listing: %v, want errNotInCgroup", err)
	}
	if c.Err() != nil {
		t.Errorf("kill retried until its deadline (%s) instead of giving up", time.Since(start))
	}
	if !alive(victim) {
		t.Error("a process named by a forged cgroup.procs was killed")
	}
	if b, err := os.ReadFile(file); err != nil || string(b) != content {
		t.Errorf("victim file now %q (%v), want %q", b, err, content)
	}
}

// TestCgroupFileSymlinkNotFollowed checks that a cgroup control file write
// follows neither a symlinked file nor a symlinked directory, and refuses a
// regular file that is not on a cgroup filesystem.
func TestCgroupFileSymlinkNotFollowed(t *testing.T) {
	file, content := writeVictimFile(t)
	dir := t.TempDir()
	link := filepath.Join(dir, "freezer.state")
	if err := os.Symlink(file, link); err != nil {
		t.Fatal(err)
	}
	if err := writeCgroupFile(link, "THAWED"); err == nil {
		t.Error("write through a symlinked control file succeeded")
	}
	linkDir := filepath.Join(dir, "cgroup-link")
	if err := os.Symlink(filepath.Dir(file), linkDir); err != nil {
		t.Fatal(err)
	}
	if err := writeCgroupFile(filepath.Join(linkDir, filepath.Base(file)), "THAWED"); err == nil {
		t.Error("write through a symlinked cgroup directory succeeded")
	}
	if err := writeCgroupFile(file, "THAWED"); err == nil {
		t.Error("write to a regular file outside cgroupfs succeeded")
	}
	if b, err := os.ReadFile(file); err != nil || string(b) != content {
		t.Errorf("victim file now %q (%v), want %q", b, err, content)
	}
}

// TestForgedTaskRecordIsNotTrusted plants a task directory (a launch record
// with no supervisor, as a lost task looks) whose recorded cgroup layout
// points at a fake hierarchy naming a foreign `sleep` and a symlink to a
// victim file, as a task could if it could write the state dir. The
// executor records the task lost using its own layout: the sleep lives and
// the file is unchanged, and listing does not stall on it.
func TestForgedTaskRecordIsNotTrusted(t *testing.T) {
	modes(t, func(t *testing.T, h *harness) {
		victim := startVictim(t)
		file, content := writeVictimFile(t)
		fake := fakeHierarchy(t, victim.Process.Pid, file)
		dir := h.e.taskDir(7)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		rec := launchRecord{Spec: executor.Spec{TaskID: 7, Command: "sleep"}, Cgroup: &fake, CreatedAt: time.Now().Add(-time.Hour)}
		if err := writeJSONAtomic(filepath.Join(dir, fileSpec), rec); err != nil {
			t.Fatal(err)
		}
		// A forged process record naming the victim as the task, too.
		st, err := readProcStat(victim.Process.Pid)
		if err != nil {
			t.Fatal(err)
		}
		proc := procRecord{PID: victim.Process.Pid, PGID: 1, StartTicks: st.StartTicks}
		if err := writeJSONAtomic(filepath.Join(dir, fileProc), proc); err != nil {
			t.Fatal(err)
		}
		// An unreadable record next to it is skipped, not fatal to List.
		if err := os.MkdirAll(h.e.taskDir(8), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(h.e.taskDir(8), fileSpec), []byte("{not json"), 0o600); err != nil {
			t.Fatal(err)
		}
		c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		start := time.Now()
		states, err := h.e.List(c)
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		if d := time.Since(start); d > lostCleanupTimeout+time.Second {
			t.Errorf("List took %s over a forged record", d)
		}
		if len(states) != 1 || states[0].TaskID != 7 || states[0].Exit == nil {
			t.Errorf("List = %+v, want task 7 recorded as ended (lost)", states)
		}
		if !alive(victim) {
			t.Error("the process a forged record named was killed")
		}
		if b, err := os.ReadFile(file); err != nil || string(b) != content {
			t.Errorf("victim file now %q (%v), want %q", b, err, content)
		}
	})
}

// levelCounter is a slog handler that counts records at WARN and above
// and passes every record on to next.
type levelCounter struct {
	next  slog.Handler
	warns *atomic.Int64
}

func (h levelCounter) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }
func (h levelCounter) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelWarn {
		h.warns.Add(1)
	}
	return h.next.Handle(ctx, r)
}
func (h levelCounter) WithAttrs(as []slog.Attr) slog.Handler {
	return levelCounter{next: h.next.WithAttrs(as), warns: h.warns}
}
func (h levelCounter) WithGroup(name string) slog.Handler {
	return levelCounter{next: h.next.WithGroup(name), warns: h.warns}
}

// TestKillOfBusyTaskLogsNoWarning kills running tasks whose processes fork
// and exit all the time: a process on its way out is still listed in
// cgroup.procs for a moment after /proc stopped showing it in the cgroup,
// and the kill guard refuses it for that round. That is an ordinary kill,
// not a problem: it must not log a warning (a healthy run logs none).
func TestKillOfBusyTaskLogsNoWarning(t *testing.T) {
	var warns atomic.Int64
	h := newHarness(t, func(c *Config) {
		c.Logger = slog.New(levelCounter{next: c.Logger.Handler(), warns: &warns})
	})
	h.requireLimited()
	for id := int64(1); id <= 8; id++ {
		// 16 loops that each start short-lived children without end.
		h.start(executor.Spec{TaskID: id, Command: "sh", Args: []string{"-c",
			"for i in $(seq 16); do (while :; do /bin/true; done) & done; wait"}})
		eventually(t, 5*time.Second, "the task's loops", func() bool {
			return len(groupMembers(h.taskRecord(id).PGID)) >= 16
		})
		if err := h.e.Kill(ctx(t), id); err != nil {
			t.Fatalf("Kill task %d: %v", id, err)
		}
		if ex := h.wait(id); !ex.Killed {
			t.Errorf("task %d: exit = %+v, want killed", id, ex)
		}
	}
	if n := warns.Load(); n != 0 {
		t.Errorf("killing 8 busy tasks logged %d warnings; want none", n)
	}
}

// TestKillOfProcessWhoseLeaderExited: a task whose leader thread exited
// while its other threads run (its /proc stat shows a zombie, its cgroup
// file none) is a live process of the task: Kill kills it, and the task
// ends.
func TestKillOfProcessWhoseLeaderExited(t *testing.T) {
	h := newHarness(t, nil)
	h.requireLimited()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	h.start(executor.Spec{TaskID: 1, Command: self, Env: map[string]string{testLeaderExitEnv: "1"}})
	pid := h.taskRecord(1).PID
	eventually(t, 10*time.Second, "the task's leader thread gone, its other threads running", func() bool {
		st, err := readProcStat(pid)
		return err == nil && st.State == 'Z' && st.Threads > 1
	})
	kctx, cancel := context.WithTimeout(ctx(t), 10*time.Second)
	defer cancel()
	if err := h.e.Kill(kctx, 1); err != nil {
		t.Fatalf("Kill: %v", err)
	}
	if ex := h.wait(1); !ex.Killed {
		t.Errorf("exit %+v, want killed", ex)
	}
	if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); err == nil {
		t.Errorf("process %d still exists after the kill", pid)
	}
}
