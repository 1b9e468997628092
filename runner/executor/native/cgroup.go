package native

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hakuriver/hakuriver-ha/runner/executor"
	"github.com/hakuriver/hakuriver-ha/runner/executor/cgacct"
)

// cfsPeriod is the CPU bandwidth period in microseconds; a quota of
// cores*cfsPeriod allows that many cores.
const cfsPeriod = 100000

// shimsCgroup is the cgroup, under the parent, that holds the supervisors
// themselves, out of the runner's own cgroup (so that stopping the runner's
// service does not take them down) and out of the tasks' (so that limits,
// freezing and killing never hit them).
const shimsCgroup = "shims"

// v1Controllers returns the cgroup v1 controllers used: tasks need the
// required ones; the optional ones are joined when mounted and writable
// ("systemd" is the name=systemd hierarchy, joined so that stopping a
// runner's service unit does not take the tasks down with it; "cpuacct"
// measures the task's CPU time where it is not co-mounted with "cpu").
func v1Controllers() (required, optional []string) {
	return []string{"cpu", "cpuset", "memory", "freezer"}, []string{"pids", "systemd", "cpuacct"}
}

// v2Controllers returns the controllers enabled for the parent's children
// on cgroup v2; cpu and memory are required.
func v2Controllers() []string {
	return []string{"cpu", "cpuset", "memory", "pids"}
}

// cgroupLayout says where the executor's cgroups live. It is stored in each
// task's launch record so that the shim and any later executor agree.
type cgroupLayout struct {
	Version int    `json:"version"`
	Root    string `json:"root"`
	Parent  string `json:"parent"`
	// Controllers maps a v1 controller to its hierarchy directory under
	// Root ("cpu" → "cpu,cpuacct" where co-mounted); empty on v2.
	Controllers map[string]string `json:"controllers,omitempty"`
}

// limits are the resource settings of one task cgroup.
type limits struct {
	Cores       int
	MemoryBytes int64
	CPUs        []int
	Mems        []int
}

// detectLayout finds the cgroup version and the v1 hierarchies mounted
// under root; probe then checks that they are usable.
func detectLayout(root, parent string) (cgroupLayout, error) {
	l := cgroupLayout{Root: root, Parent: parent}
	if _, err := os.Stat(filepath.Join(root, "cgroup.controllers")); err == nil {
		l.Version = 2
		return l, nil
	}
	l.Version = 1
	l.Controllers = map[string]string{}
	required, optional := v1Controllers()
	for _, c := range required {
		h, err := v1Hierarchy(root, c)
		if err != nil {
			return l, err
		}
		l.Controllers[c] = h
	}
	for _, c := range optional {
		if h, err := v1Hierarchy(root, c); err == nil {
			l.Controllers[c] = h
		}
	}
	return l, nil
}

// v1Hierarchy resolves the directory name of controller c's hierarchy.
func v1Hierarchy(root, c string) (string, error) {
	p, err := filepath.EvalSymlinks(filepath.Join(root, c))
	if err != nil {
		return "", fmt.Errorf("find cgroup v1 %s hierarchy: %w", c, err)
	}
	if _, err := os.Stat(filepath.Join(p, "cgroup.procs")); err != nil {
		return "", fmt.Errorf("find cgroup v1 %s hierarchy: %w", c, err)
	}
	return filepath.Base(p), nil
}

// dir returns cgroup name's directory for controller c (v2 ignores c);
// name "" is the parent itself.
func (l cgroupLayout) dir(c, name string) string {
	if l.Version == 2 {
		return filepath.Join(l.Root, l.Parent, name)
	}
	return filepath.Join(l.Root, l.Controllers[c], l.Parent, name)
}

// dirs returns every directory of cgroup name, one per hierarchy.
func (l cgroupLayout) dirs(name string) []string {
	if l.Version == 2 {
		return []string{l.dir("", name)}
	}
	var out []string
	for _, h := range l.Controllers {
		d := filepath.Join(l.Root, h, l.Parent, name)
		if !slices.Contains(out, d) {
			out = append(out, d)
		}
	}
	slices.Sort(out)
	return out
}

// setup creates the parent and the shims cgroup, idempotently.
func (l cgroupLayout) setup() error {
	if l.Version == 2 {
		return l.setupV2()
	}
	for _, d := range l.dirs("") {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("create cgroup %s: %w", d, err)
		}
	}
	// A v1 cpuset cgroup takes no process until cpus and mems are set: copy
	// them down every level from the hierarchy's root.
	if err := copyCpusetDown(filepath.Join(l.Root, l.Controllers["cpuset"]), l.Parent); err != nil {
		return err
	}
	return l.create(shimsCgroup, limits{})
}

// copyCpusetDown fills empty cpuset.cpus/mems along rel below base.
func copyCpusetDown(base, rel string) error {
	cur := base
	for _, part := range strings.Split(rel, "/") {
		next := filepath.Join(cur, part)
		if err := inheritCpuset(cur, next, nil, nil); err != nil {
			return err
		}
		cur = next
	}
	return nil
}

// inheritCpuset sets child's cpuset.cpus and cpuset.mems to cpus/mems, or
// to parent's values where those are empty and the child's are unset.
func inheritCpuset(parent, child string, cpus, mems []int) error {
	for _, f := range []struct {
		name string
		want []int
	}{{"cpuset.cpus", cpus}, {"cpuset.mems", mems}} {
		val := formatList(f.want)
		if val == "" {
			cur, err := readTrim(filepath.Join(child, f.name))
			if err != nil {
				return err
			}
			if cur != "" {
				continue
			}
			if val, err = readTrim(filepath.Join(parent, f.name)); err != nil {
				return err
			}
			if val == "" {
				continue // v2: an empty cpuset means the parent's
			}
		}
		if err := writeCgroupFile(filepath.Join(child, f.name), val); err != nil {
			return err
		}
	}
	return nil
}

// setupV2 enables the controllers along the parent path and creates it.
func (l cgroupLayout) setupV2() error {
	cur := l.Root
	for _, part := range strings.Split(l.Parent, "/") {
		if err := enableControllers(cur); err != nil {
			return err
		}
		cur = filepath.Join(cur, part)
		if err := os.Mkdir(cur, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("create cgroup %s: %w", cur, err)
		}
	}
	if err := enableControllers(cur); err != nil {
		return err
	}
	have, err := readTrim(filepath.Join(cur, "cgroup.subtree_control"))
	if err != nil {
		return err
	}
	for _, c := range []string{"cpu", "memory"} {
		if !slices.Contains(strings.Fields(have), c) {
			return fmt.Errorf("enable cgroup controller %s in %s: not available", c, cur)
		}
	}
	return l.create(shimsCgroup, limits{})
}

// enableControllers enables in dir's subtree_control each wanted controller
// that dir offers. A controller the kernel refuses to enable is left out:
// setupV2 checks at the end that the required ones made it down.
func enableControllers(dir string) error {
	avail, err := readTrim(filepath.Join(dir, "cgroup.controllers"))
	if err != nil {
		return err
	}
	for _, c := range v2Controllers() {
		if slices.Contains(strings.Fields(avail), c) {
			_ = writeCgroupFile(filepath.Join(dir, "cgroup.subtree_control"), "+"+c) // see above
		}
	}
	return nil
}

// probe checks that cgroups can be created under the parent, dropping the
// optional v1 hierarchies where they cannot.
func (l *cgroupLayout) probe() error {
	_, optional := v1Controllers()
	for _, c := range optional {
		h, ok := l.Controllers[c]
		if !ok {
			continue
		}
		if err := os.MkdirAll(filepath.Join(l.Root, h, l.Parent), 0o755); err != nil {
			delete(l.Controllers, c)
		}
	}
	if err := l.setup(); err != nil {
		return err
	}
	name := "probe-" + strconv.Itoa(os.Getpid())
	var errs []error
	for _, d := range l.dirs(name) {
		if err := os.Mkdir(d, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			errs = append(errs, fmt.Errorf("create cgroup %s: %w", d, err))
			continue
		}
		if err := os.Remove(d); err != nil {
			errs = append(errs, fmt.Errorf("remove cgroup %s: %w", d, err))
		}
	}
	return errors.Join(errs...)
}

// create makes cgroup name (idempotently) and applies lim.
func (l cgroupLayout) create(name string, lim limits) error {
	for _, d := range l.dirs(name) {
		if err := os.Mkdir(d, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("create cgroup %s: %w", d, err)
		}
	}
	if l.Version == 2 {
		return l.applyV2(name, lim)
	}
	return l.applyV1(name, lim)
}

func (l cgroupLayout) applyV1(name string, lim limits) error {
	if err := inheritCpuset(l.dir("cpuset", ""), l.dir("cpuset", name), lim.CPUs, lim.Mems); err != nil {
		return err
	}
	if lim.Cores > 0 {
		cpu := l.dir("cpu", name)
		if err := writeCgroupFile(filepath.Join(cpu, "cpu.cfs_period_us"), strconv.Itoa(cfsPeriod)); err != nil {
			return err
		}
		quota := strconv.Itoa(lim.Cores * cfsPeriod)
		if err := writeCgroupFile(filepath.Join(cpu, "cpu.cfs_quota_us"), quota); err != nil {
			return err
		}
	}
	if lim.MemoryBytes > 0 {
		mem := l.dir("memory", name)
		v := strconv.FormatInt(lim.MemoryBytes, 10)
		if err := writeCgroupFile(filepath.Join(mem, "memory.limit_in_bytes"), v); err != nil {
			return err
		}
		// memsw (memory+swap) exists only with swap accounting; setting it
		// to the same value forbids swapping.
		sw := filepath.Join(mem, "memory.memsw.limit_in_bytes")
		if _, err := os.Stat(sw); err == nil {
			if err := writeCgroupFile(sw, v); err != nil {
				return err
			}
		}
	}
	return nil
}

func (l cgroupLayout) applyV2(name string, lim limits) error {
	d := l.dir("", name)
	if len(lim.CPUs) > 0 || len(lim.Mems) > 0 {
		if _, err := os.Stat(filepath.Join(d, "cpuset.cpus")); err != nil {
			return fmt.Errorf("pin cgroup %s to cpus/mems: cpuset controller unavailable: %w", d, err)
		}
		if err := inheritCpuset(l.dir("", ""), d, lim.CPUs, lim.Mems); err != nil {
			return err
		}
	}
	if lim.Cores > 0 {
		v := fmt.Sprintf("%d %d", lim.Cores*cfsPeriod, cfsPeriod)
		if err := writeCgroupFile(filepath.Join(d, "cpu.max"), v); err != nil {
			return err
		}
	}
	if lim.MemoryBytes > 0 {
		v := strconv.FormatInt(lim.MemoryBytes, 10)
		if err := writeCgroupFile(filepath.Join(d, "memory.max"), v); err != nil {
			return err
		}
		sw := filepath.Join(d, "memory.swap.max")
		if _, err := os.Stat(sw); err == nil {
			if err := writeCgroupFile(sw, "0"); err != nil {
				return err
			}
		}
	}
	return nil
}

// join moves process pid (all its threads) into cgroup name.
func (l cgroupLayout) join(name string, pid int) error {
	for _, d := range l.dirs(name) {
		if err := writeCgroupFile(filepath.Join(d, "cgroup.procs"), strconv.Itoa(pid)); err != nil {
			return err
		}
	}
	return nil
}

// joinThread moves the calling OS thread alone into cgroup name of every
// v1 hierarchy (the caller has it locked: runtime.LockOSThread).
func (l cgroupLayout) joinThread(name string) error {
	for _, d := range l.dirs(name) {
		if err := writeCgroupFile(filepath.Join(d, "tasks"), "0"); err != nil {
			return err
		}
	}
	return nil
}

// isSetUp reports whether the shims cgroup (and so the parent) exists in
// every hierarchy, as setup leaves them.
func (l cgroupLayout) isSetUp() bool {
	for _, d := range l.dirs(shimsCgroup) {
		if noSymlinkDir(d) != nil {
			return false
		}
	}
	return true
}

// procs lists the processes in cgroup name, in any hierarchy; a cgroup
// that does not exist has none.
func (l cgroupLayout) procs(name string) ([]int, error) {
	var out []int
	for _, d := range l.dirs(name) {
		if err := noSymlinkDir(d); errors.Is(err, fs.ErrNotExist) {
			continue
		} else if err != nil {
			return nil, fmt.Errorf("list processes of cgroup %s: %w", d, err)
		}
		b, err := readNoFollow(filepath.Join(d, "cgroup.procs"))
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENODEV) {
			continue // gone, or being removed (ENODEV): empty
		}
		if err != nil {
			return nil, fmt.Errorf("list processes of cgroup %s: %w", d, err)
		}
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil && !slices.Contains(out, pid) {
				out = append(out, pid)
			}
		}
	}
	return out, nil
}

// setFrozen freezes or thaws cgroup name and waits, until ctx ends, for
// the freezer to reach that state. A cgroup that does not exist (any more)
// gives an error matching fs.ErrNotExist.
func (l cgroupLayout) setFrozen(ctx context.Context, name string, frozen bool) error {
	var file, val, stateFile, want string
	if l.Version == 2 {
		d := l.dir("", name)
		file, stateFile = filepath.Join(d, "cgroup.freeze"), filepath.Join(d, "cgroup.events")
		val, want = "0", "frozen 0"
		if frozen {
			val, want = "1", "frozen 1"
		}
	} else {
		file = filepath.Join(l.dir("freezer", name), "freezer.state")
		stateFile = file
		val, want = "THAWED", "THAWED"
		if frozen {
			val, want = "FROZEN", "FROZEN"
		}
	}
	for {
		if err := writeCgroupFile(file, val); err != nil {
			return err
		}
		b, err := os.ReadFile(stateFile)
		if err != nil {
			return fmt.Errorf("read freezer state: %w", err)
		}
		if slices.Contains(strings.Split(strings.TrimSpace(string(b)), "\n"), want) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for cgroup %s to reach %q: %w", name, want, ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// kill SIGKILLs every process of cgroup name (cgroup.kill where the kernel
// has it), thaws it so frozen processes can die, and repeats until the
// cgroup is empty or ctx ends. A missing cgroup is empty. Only processes
// that are really in the cgroup are signalled (killTarget); when every
// process left is refused for killRefusedRounds rounds in a row (a process
// on its way out is still listed for a moment after it left), kill stops
// with errNotInCgroup.
func (l cgroupLayout) kill(ctx context.Context, name string) error {
	refusedRounds := 0
	for {
		pids, err := l.procs(name)
		if err != nil {
			return err
		}
		if len(pids) == 0 {
			return nil
		}
		if refused := l.killRound(name, pids); len(refused) == len(pids) {
			if refusedRounds++; refusedRounds >= killRefusedRounds {
				return fmt.Errorf("kill cgroup %s: processes %v: %w", name, refused, errNotInCgroup)
			}
		} else {
			refusedRounds = 0
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("kill cgroup %s: %d processes left: %w", name, len(pids), ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// killRefusedRounds is how many rounds (5 ms apart) kill waits for listed
// processes it refuses to signal to leave the listing.
const killRefusedRounds = 20

// killRound sends one round of SIGKILLs to those of pids that killTarget
// allows, thaws the cgroup, and returns the refused ones. Signal errors
// are ignored: processes exit on their own between the listing and the
// signal, and the caller checks the cgroup again.
func (l cgroupLayout) killRound(name string, pids []int) (refused []int) {
	if l.Version == 2 {
		ck := filepath.Join(l.dir("", name), "cgroup.kill")
		if _, err := os.Stat(ck); err == nil {
			_ = writeCgroupFile(ck, "1") // best effort; pids are killed below too
		}
	}
	for _, pid := range pids {
		switch l.killTarget(pid, name) {
		case killOK:
			_ = syscall.Kill(pid, syscall.SIGKILL) // best effort; see above
		case killRefused:
			refused = append(refused, pid)
		case killGone:
		}
	}
	// Killed processes in a frozen cgroup die once thawed.
	file, val := filepath.Join(l.dir("freezer", name), "freezer.state"), "THAWED"
	if l.Version == 2 {
		file, val = filepath.Join(l.dir("", name), "cgroup.freeze"), "0"
	}
	_ = writeCgroupFile(file, val) // best effort; see above
	return refused
}

// oomKilled reports whether the OOM killer killed a process of cgroup
// name. Without an oom_kill counter (v1 before Linux 4.13) a hit of the
// limit (failcnt) together with the task's death by SIGKILL counts.
func (l cgroupLayout) oomKilled(name string, sigkilled bool) bool {
	if l.Version == 2 {
		n, ok := readKeyed(filepath.Join(l.dir("", name), "memory.events"), "oom_kill")
		return ok && n > 0
	}
	d := l.dir("memory", name)
	if n, ok := readKeyed(filepath.Join(d, "memory.oom_control"), "oom_kill"); ok {
		return n > 0
	}
	fc, err := readTrim(filepath.Join(d, "memory.failcnt"))
	return err == nil && fc != "0" && sigkilled
}

// remove deletes cgroup name in every hierarchy, retrying while it is busy
// until ctx ends.
func (l cgroupLayout) remove(ctx context.Context, name string) error {
	for _, d := range l.dirs(name) {
		for {
			err := os.Remove(d)
			if err == nil || errors.Is(err, fs.ErrNotExist) {
				break
			}
			if !errors.Is(err, syscall.EBUSY) {
				return fmt.Errorf("remove cgroup %s: %w", d, err)
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("remove cgroup %s: %w", d, err)
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	return nil
}

// usage reads what the processes of cgroup name consumed (cgacct).
func (l cgroupLayout) usage(name string) (cgacct.Figures, error) {
	if l.Version == 2 {
		return cgacct.ReadV2(l.dir("", name))
	}
	acct := "cpu" // co-mounted as cpu,cpuacct, or cpuacct is its own
	if _, ok := l.Controllers["cpuacct"]; ok {
		acct = "cpuacct"
	}
	return cgacct.ReadV1(l.dir(acct, name), l.dir("memory", name))
}

// taskCgroup names the cgroup of task id.
func taskCgroup(id int64) string {
	return "task-" + strconv.FormatInt(id, 10)
}

// specCgroup names the cgroup of the attempt s describes: taskCgroup for
// a first attempt, "task-ID-aN" for attempt N > 1.
func specCgroup(s executor.Spec) string {
	if s.Attempt > 1 {
		return taskCgroup(s.TaskID) + "-a" + strconv.Itoa(s.Attempt)
	}
	return taskCgroup(s.TaskID)
}

// formatList formats ids as a cpuset list ("0,2,3").
func formatList(ids []int) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = strconv.Itoa(id)
	}
	return strings.Join(s, ",")
}
