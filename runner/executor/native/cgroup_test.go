package native

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/runner/executor"
)

// TestCgroupLimitsApplied starts a task on a supervisor started for it
// (the first) and one on a warm supervisor (on cgroup v1 it made the
// cgroup ahead, under another name): each runs alone in its own cgroup
// with its limits, and no warm cgroup is left behind.
func TestCgroupLimitsApplied(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	h.requireLimited()
	t.Run("cold", func(t *testing.T) { checkLimitsApplied(t, h, 1) })
	if h.taskRecord(1).WarmCgroup {
		t.Error("task 1, started on a supervisor started for it, recorded as started from a warm cgroup")
	}
	h.awaitWarm()
	warm := h.e.warmPIDs()
	if l := h.e.layout; l.Version == 1 {
		for _, pid := range warm {
			for _, d := range l.dirs(warmCgroupPrefix + strconv.Itoa(pid)) {
				if noSymlinkDir(d) != nil {
					t.Fatalf("warm supervisor %d has no warm cgroup %s", pid, d)
				}
				// One thread of the supervisor, never its main thread
				// (what /proc/<pid>/cgroup and the kill guard see).
				tids, err := readTrim(filepath.Join(d, "tasks"))
				if f := strings.Fields(tids); err != nil || len(f) != 1 || f[0] == strconv.Itoa(pid) {
					t.Errorf("%s/tasks = %q (%v), want one thread of supervisor %d other than its main one", d, tids, err, pid)
				}
			}
			// The supervisor itself was born in the shims cgroup.
			b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
			if err != nil {
				t.Fatal(err)
			}
			for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
				parts := strings.SplitN(line, ":", 3)
				if len(parts) == 3 && l.hasHierarchy(parts[1]) && !strings.HasSuffix(parts[2], "/"+h.cfg.CgroupParent+"/"+shimsCgroup) {
					t.Errorf("waiting warm supervisor %d: %s, want the shims cgroup", pid, line)
				}
			}
		}
	}
	t.Run("warm", func(t *testing.T) { checkLimitsApplied(t, h, 2) })
	if got, want := h.taskRecord(2).WarmCgroup, h.e.layout.Version == 1; got != want {
		t.Errorf("task 2 on a warm supervisor: started from its warm cgroup = %v, want %v (cgroup v%d)", got, want, h.e.layout.Version)
	}
	var shim shimRecord
	if ok, err := readJSON(filepath.Join(h.e.taskDir(2), fileShim), &shim); !ok || err != nil || !slices.Contains(warm, shim.PID) {
		t.Fatalf("task 2's supervisor %d (%v %v) is not one of the warm ones %v", shim.PID, ok, err, warm)
	}
	for _, d := range h.e.layout.dirs(warmCgroupPrefix + strconv.Itoa(shim.PID)) {
		if _, err := os.Stat(d); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("warm cgroup %s still there after its task started (%v)", d, err)
		}
	}
}

// checkLimitsApplied starts task id with limits and checks them, and that
// the task alone is in its cgroup.
func checkLimitsApplied(t *testing.T, h *harness, id int64) {
	const mem = 64 << 20
	if err := h.e.Start(ctx(t), executor.Spec{TaskID: id, Command: "sleep", Args: []string{"100"},
		Cores: 2, MemoryBytes: mem, CPUs: []int{0}, Mems: []int{0}}); err != nil {
		t.Fatalf("Start(%d): %v", id, err)
	}
	h.rememberShim(id)
	pid := h.taskRecord(id).PID
	l, name := h.e.layout, taskCgroup(id)
	read := func(c, file string) string {
		t.Helper()
		v, err := readTrim(filepath.Join(l.dir(c, name), file))
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	want := map[[2]string]string{}
	if l.Version == 2 {
		want[[2]string{"", "cpu.max"}] = "200000 100000"
		want[[2]string{"", "memory.max"}] = strconv.Itoa(mem)
		want[[2]string{"", "cpuset.cpus"}] = "0"
		want[[2]string{"", "cpuset.mems"}] = "0"
	} else {
		want[[2]string{"cpu", "cpu.cfs_period_us"}] = "100000"
		want[[2]string{"cpu", "cpu.cfs_quota_us"}] = "200000"
		want[[2]string{"memory", "memory.limit_in_bytes"}] = strconv.Itoa(mem)
		if fileExists(filepath.Join(l.dir("memory", name), "memory.memsw.limit_in_bytes")) {
			want[[2]string{"memory", "memory.memsw.limit_in_bytes"}] = strconv.Itoa(mem)
		}
		want[[2]string{"cpuset", "cpuset.cpus"}] = "0"
		want[[2]string{"cpuset", "cpuset.mems"}] = "0"
	}
	for k, v := range want {
		if got := read(k[0], k[1]); got != v {
			t.Errorf("%s = %q, want %q", k[1], got, v)
		}
	}
	// The task is in its cgroup in every hierarchy; its supervisor is not.
	var shim shimRecord
	if ok, err := readJSON(filepath.Join(h.e.taskDir(id), fileShim), &shim); !ok || err != nil {
		t.Fatalf("shim record: %v %v", ok, err)
	}
	for _, d := range l.dirs(name) {
		procs, err := readTrim(filepath.Join(d, "cgroup.procs"))
		if err != nil {
			t.Fatal(err)
		}
		fields := strings.Fields(procs)
		if !contains(fields, strconv.Itoa(pid)) || contains(fields, strconv.Itoa(shim.PID)) {
			t.Errorf("%s/cgroup.procs = %v: want task %d, not shim %d", d, fields, pid, shim.PID)
		}
		// Once Start returned, the thread that forked the task is out
		// (cgroup.procs lists only a process's main thread; a freeze or
		// a kill would take the supervisor's forking thread too): the
		// single-threaded task is all its cgroup holds.
		tids, err := readTrim(filepath.Join(d, "tasks"))
		if err != nil {
			t.Fatal(err)
		}
		if f := strings.Fields(tids); len(f) != 1 || f[0] != strconv.Itoa(pid) {
			t.Errorf("%s/tasks = %v right after Start: want task %d alone", d, f, pid)
		}
	}
	cg, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
	if err != nil || !strings.Contains(string(cg), h.cfg.CgroupParent+"/"+name) {
		t.Errorf("/proc/%d/cgroup = %q, %v", pid, cg, err)
	}
	// The supervisor, every thread of it, leaves the runner's cgroups for
	// the shims cgroup (right after the task started).
	eventually(t, 10*time.Second, "the supervisor in the shims cgroup of every hierarchy", func() bool {
		for _, d := range l.dirs(shimsCgroup) {
			procs, err := readTrim(filepath.Join(d, "cgroup.procs"))
			if err != nil || !contains(strings.Fields(procs), strconv.Itoa(shim.PID)) {
				return false
			}
		}
		threads, err := os.ReadDir("/proc/" + strconv.Itoa(shim.PID) + "/task")
		if err != nil {
			return false
		}
		for _, th := range threads {
			b, err := os.ReadFile("/proc/" + strconv.Itoa(shim.PID) + "/task/" + th.Name() + "/cgroup")
			if err != nil {
				return false
			}
			for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
				_, path, _ := strings.Cut(line[strings.Index(line, ":")+1:], ":")
				if strings.Contains(line, "cpuset") && !strings.HasSuffix(path, "/"+shimsCgroup) {
					return false
				}
			}
		}
		return true
	})
}

// TestStaleWarmCgroupsRemoved leaves a warm cgroup (v1) as a supervisor
// killed while it waited does: a new Executor keeps it while it is young
// (it may be one being made), and it goes once older than a boot; the
// warm cgroups of waiting supervisors stay.
func TestStaleWarmCgroupsRemoved(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	h.requireLimited()
	l := h.e.layout
	if l.Version != 1 {
		t.Skip("warm cgroups are made on cgroup v1 only")
	}
	stale := l.dirs(warmCgroupPrefix + "99999999")
	for _, d := range stale {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = os.Remove(d) }) // gone already unless the test failed
	}
	h.start(executor.Spec{TaskID: 1, Command: "true"})
	h.awaitWarm()
	live := h.e.warmPIDs()
	// A new executor leaves a young one be (it may be a warm cgroup being
	// made, empty until its thread joins) ...
	if e2 := h.newExecutor(); !e2.Limited() {
		t.Fatal("second executor without cgroups")
	}
	for _, d := range stale {
		if noSymlinkDir(d) != nil {
			t.Errorf("young warm cgroup %s removed", d)
		}
	}
	// ... and removes it once older than a supervisor takes to boot.
	l.removeStaleWarm(time.Now().Add(staleWarmAge + time.Second))
	for _, d := range stale {
		if _, err := os.Stat(d); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("stale warm cgroup %s not removed (%v)", d, err)
		}
	}
	for _, pid := range live {
		for _, d := range l.dirs(warmCgroupPrefix + strconv.Itoa(pid)) {
			if noSymlinkDir(d) != nil {
				t.Errorf("warm cgroup %s of waiting supervisor %d removed", d, pid)
			}
		}
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func TestMemoryLimitOOM(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	h.requireLimited()
	// tail buffers the one endless line of /dev/zero until the limit hits.
	// A guard on the test's own cgroup parent bounds the damage should the
	// task's limit not hold: the task then dies at the guard instead of
	// growing until the machine swaps, and the guard's hit counter tells.
	guardHit := guardMemory(t, h.e.layout, 256<<20)
	h.start(executor.Spec{TaskID: 1, Command: "tail", Args: []string{"/dev/zero"}, MemoryBytes: 32 << 20})
	ex := h.wait(1)
	if guardHit() {
		t.Fatalf("the task's 32 MiB limit did not hold: it reached the test's 256 MiB guard (exit %+v)", ex)
	}
	if !ex.OOM || ex.Killed {
		t.Fatalf("exit = %+v, want OOM", ex)
	}
	// Removed once the end is out: shortly after.
	l := h.e.layout
	for _, d := range l.dirs(taskCgroup(1)) {
		eventually(t, 5*time.Second, "cgroup "+d+" to be removed after the end", func() bool { return !fileExists(d) })
	}
}

func TestFormatListAndStat(t *testing.T) {
	t.Parallel()
	if got := formatList([]int{0, 2, 3}); got != "0,2,3" {
		t.Errorf("formatList = %q", got)
	}
	st, err := readProcStat(os.Getpid())
	if err != nil || st.StartTicks == 0 || st.PPID != os.Getppid() {
		t.Errorf("readProcStat(self) = %+v, %v", st, err)
	}
	if !processAlive(os.Getpid(), st.StartTicks) || processAlive(os.Getpid(), st.StartTicks+1) {
		t.Error("processAlive does not tell processes apart by start time")
	}
}

func TestCgroupSetupFailureEndsTask(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	h.requireLimited()
	h.start(executor.Spec{TaskID: 1, Command: "true", CPUs: []int{4096}})
	ex := h.wait(1)
	if ex.Code != -1 || !strings.Contains(ex.Message, "cpuset.cpus") {
		t.Fatalf("exit = %+v, want a start failure naming cpuset.cpus", ex)
	}
	for _, d := range h.e.layout.dirs(taskCgroup(1)) {
		if fileExists(d) {
			t.Errorf("cgroup %s left behind", d)
		}
	}
}

// guardMemory limits the whole cgroup parent of layout l (every task and
// supervisor of the test) to limit bytes and returns a function that
// reports whether that limit was ever reached.
func guardMemory(t *testing.T, l *cgroupLayout, limit int64) (hit func() bool) {
	t.Helper()
	if l == nil {
		t.Fatal("guardMemory: no cgroup layout")
	}
	parent := l.dir("memory", "")
	file, counter, key := "memory.limit_in_bytes", "memory.failcnt", ""
	if l.Version == 2 {
		file, counter, key = "memory.max", "memory.events", "max"
	}
	if err := writeCgroupFile(filepath.Join(parent, file), strconv.FormatInt(limit, 10)); err != nil {
		t.Fatalf("set the memory guard: %v", err)
	}
	return func() bool {
		if key != "" {
			n, _ := readKeyed(filepath.Join(parent, counter), key)
			return n > 0
		}
		v, err := readTrim(filepath.Join(parent, counter))
		return err != nil || v != "0"
	}
}

// TestWarmStartOverExistingCgroup starts tasks on warm supervisors whose
// cgroup name is taken: an empty leftover is reused (the task runs in
// it), one holding another process is never shared (the task ends with
// code -1 saying so, and that process is untouched).
func TestWarmStartOverExistingCgroup(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	h.requireLimited()
	l := h.e.layout
	h.start(executor.Spec{TaskID: 1, Command: "true"})
	h.wait(1)
	for _, d := range l.dirs(taskCgroup(2)) {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	h.awaitWarm()
	h.start(executor.Spec{TaskID: 2, Command: "sleep", Args: []string{"100"}})
	inOwnCgroup := func(id int64) {
		t.Helper()
		pid := h.taskRecord(id).PID
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			parts := strings.SplitN(line, ":", 3)
			if len(parts) == 3 && (l.Version == 2 || l.hasHierarchy(parts[1])) && !strings.HasSuffix(parts[2], "/"+h.cfg.CgroupParent+"/"+taskCgroup(id)) {
				t.Errorf("task %d: %s, want its cgroup %s", id, line, taskCgroup(id))
			}
		}
	}
	inOwnCgroup(2)

	// An empty leftover of task 4's cgroup in the last hierarchy alone:
	// the warm cgroup is renamed in the others first, then undone.
	if l.Version == 1 {
		parents := l.dirs("")
		if err := os.Mkdir(filepath.Join(parents[len(parents)-1], taskCgroup(4)), 0o755); err != nil {
			t.Fatal(err)
		}
		h.awaitWarm()
		warm := h.e.warmPIDs()
		h.start(executor.Spec{TaskID: 4, Command: "sleep", Args: []string{"100"}})
		inOwnCgroup(4)
		if h.taskRecord(4).WarmCgroup {
			t.Error("task 4 recorded as started from its warm cgroup, which could not be renamed")
		}
		var shim shimRecord
		if ok, err := readJSON(filepath.Join(h.e.taskDir(4), fileShim), &shim); !ok || err != nil || !slices.Contains(warm, shim.PID) {
			t.Fatalf("task 4's supervisor %d (%v %v) is not one of the warm ones %v", shim.PID, ok, err, warm)
		}
		for _, d := range l.dirs(warmCgroupPrefix + strconv.Itoa(shim.PID)) {
			if _, err := os.Stat(d); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("warm cgroup %s left after the fallback (%v)", d, err)
			}
		}
	}

	// Another process in task-3's cgroup, in every hierarchy.
	other := exec.Command("sleep", "100")
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = other.Process.Kill()
		_ = other.Wait()
		c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, d := range l.dirs(taskCgroup(3)) {
			if err := removeDir(c, d); err != nil {
				t.Error(err)
			}
		}
	})
	for _, d := range l.dirs(taskCgroup(3)) {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := inheritCpuset(l.dir("cpuset", ""), l.dir("cpuset", taskCgroup(3)), nil, nil); err != nil && l.Version == 1 {
		t.Fatal(err)
	}
	if err := l.join(taskCgroup(3), other.Process.Pid); err != nil {
		t.Fatal(err)
	}
	h.awaitWarm()
	h.start(executor.Spec{TaskID: 3, Command: "sleep", Args: []string{"100"}})
	if ex := h.wait(3); ex.Code != -1 || !strings.Contains(ex.Message, "in use") {
		t.Errorf("task 3 over a cgroup in use: exit %+v, want code -1 saying the cgroup is in use", ex)
	}
	if err := other.Process.Signal(syscall.Signal(0)); err != nil {
		t.Errorf("the other process in task 3's cgroup: %v", err)
	}
	if ok, _ := l.contains(other.Process.Pid, taskCgroup(3)); !ok {
		t.Error("the other process left task 3's cgroup")
	}
}

// TestForgetRemovesLeftCgroup checks that Forget removes a task's empty
// cgroup that its supervisor left (it died after recording the end, before
// the removal that follows): made again here after the real end.
func TestForgetRemovesLeftCgroup(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	h.requireLimited()
	h.start(executor.Spec{TaskID: 1, Command: "true"})
	if ex := h.wait(1); ex.Code != 0 {
		t.Fatalf("exit = %+v", ex)
	}
	l := h.e.layout
	for _, d := range l.dirs(taskCgroup(1)) {
		eventually(t, 5*time.Second, "cgroup "+d+" to be removed after the end", func() bool { return !fileExists(d) })
	}
	for _, d := range l.dirs(taskCgroup(1)) {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.e.Forget(ctx(t), 1); err != nil {
		t.Fatal(err)
	}
	for _, d := range l.dirs(taskCgroup(1)) {
		if fileExists(d) {
			t.Errorf("cgroup %s left after Forget", d)
			_ = os.Remove(d)
		}
	}
}
