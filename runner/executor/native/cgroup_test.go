package native

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/runner/executor"
)

func TestCgroupLimitsApplied(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	h.requireLimited()
	const mem = 64 << 20
	h.start(executor.Spec{TaskID: 1, Command: "sleep", Args: []string{"100"},
		Cores: 2, MemoryBytes: mem, CPUs: []int{0}, Mems: []int{0}})
	pid := h.taskRecord(1).PID
	l, name := h.e.layout, taskCgroup(1)
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
	if ok, err := readJSON(filepath.Join(h.e.taskDir(1), fileShim), &shim); !ok || err != nil {
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
	l := h.e.layout
	for _, d := range l.dirs(taskCgroup(1)) {
		if fileExists(d) {
			t.Errorf("cgroup %s still exists after the end", d)
		}
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
