//go:build integration

package harness

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// tagEnv is the environment variable that marks the processes of one
// cluster: its runners, and the task supervisors they start (which inherit
// the runner's environment and outlive it on purpose).
const tagEnv = "HAKURIVER_HARNESS_TAG"

// supervisorExitTimeout bounds the wait for task supervisors to notice
// their killed task, clean up its cgroup and exit.
const supervisorExitTimeout = 5 * time.Second

// ProcStat is what the harness reads from /proc/<pid>/stat.
type ProcStat struct {
	State byte
	PPID  int
	PGID  int
	// CPUTicks is utime + stime, in clock ticks (USER_HZ, 100 on Linux).
	CPUTicks int64
	// StartTicks is the start time after boot, in clock ticks: with the
	// PID it identifies a process across PID reuse.
	StartTicks int64
}

// ClockTicks is USER_HZ, the unit of ProcStat's tick counts.
const ClockTicks = 100

// ReadProcStat reads /proc/<pid>/stat. A process that does not exist gives
// an error matching fs.ErrNotExist.
func ReadProcStat(pid int) (ProcStat, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return ProcStat{}, err
	}
	// The command name may hold spaces and parentheses: fields start after
	// the last ')'.
	end := bytes.LastIndexByte(b, ')')
	if end < 0 {
		return ProcStat{}, fmt.Errorf("parse /proc/%d/stat: no ')'", pid)
	}
	f := strings.Fields(string(b[end+1:]))
	// f[0] is field 3 (state); utime and stime are fields 14 and 15,
	// starttime 22.
	if len(f) < 20 {
		return ProcStat{}, fmt.Errorf("parse /proc/%d/stat: %d fields", pid, len(f))
	}
	num := func(k int) int64 {
		v, perr := strconv.ParseInt(f[k], 10, 64)
		if perr != nil && err == nil {
			err = fmt.Errorf("parse /proc/%d/stat field %d %q: %w", pid, k+3, f[k], perr)
		}
		return v
	}
	st := ProcStat{State: f[0][0], PPID: int(num(1)), PGID: int(num(2)), CPUTicks: num(11) + num(12), StartTicks: num(19)}
	return st, err
}

// ProcessGone reports whether process pid, started at startTicks, no longer
// exists (or is a zombie, or the PID now names another process).
func ProcessGone(pid int, startTicks int64) bool {
	st, err := ReadProcStat(pid)
	if errors.Is(err, fs.ErrNotExist) {
		return true
	}
	return err == nil && (st.State == 'Z' || st.StartTicks != startTicks)
}

// listPIDs returns every process ID in /proc.
func listPIDs() ([]int, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	var out []int
	for _, e := range ents {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			out = append(out, pid)
		}
	}
	return out, nil
}

// taggedPIDs returns the processes whose environment holds tagEnv=tag.
func taggedPIDs(tag string) ([]int, error) {
	pids, err := listPIDs()
	if err != nil {
		return nil, err
	}
	want := []byte(tagEnv + "=" + tag)
	var out []int
	for _, pid := range pids {
		env, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "environ"))
		if err != nil {
			continue // gone, or not ours to read
		}
		for _, kv := range bytes.Split(env, []byte{0}) {
			if bytes.Equal(kv, want) {
				out = append(out, pid)
				break
			}
		}
	}
	return out, nil
}

// descendants returns every live descendant of the processes in roots.
func descendants(roots []int) []int {
	pids, err := listPIDs()
	if err != nil {
		return nil
	}
	parent := map[int]int{}
	for _, pid := range pids {
		if st, err := ReadProcStat(pid); err == nil {
			parent[pid] = st.PPID
		}
	}
	in := map[int]bool{}
	for _, r := range roots {
		in[r] = true
	}
	var out []int
	for changed := true; changed; {
		changed = false
		for pid, pp := range parent {
			if in[pp] && !in[pid] {
				in[pid] = true
				out = append(out, pid)
				changed = true
			}
		}
	}
	return out
}

// thaw thaws the freezer cgroup of pid (v1 freezer or v2 cgroup.freeze),
// so that a paused task can die. Best effort.
func thaw(pid int) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cgroup"))
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(b), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 || parts[2] == "/" {
			continue
		}
		switch {
		case strings.Contains(","+parts[1]+",", ",freezer,"):
			_ = os.WriteFile(filepath.Join("/sys/fs/cgroup/freezer", parts[2], "freezer.state"), []byte("THAWED"), 0) // best effort
		case parts[0] == "0" && parts[1] == "":
			_ = os.WriteFile(filepath.Join("/sys/fs/cgroup", parts[2], "cgroup.freeze"), []byte("0"), 0) // best effort
		}
	}
}

// killTagged kills what the cluster's runners left: the task supervisors
// (tagged through their environment) and the tasks under them. It kills
// the tasks first and gives the supervisors a moment to record the end and
// remove the tasks' cgroups, then kills whatever is left.
func killTagged(tag string) error {
	shims, err := taggedPIDs(tag)
	if err != nil {
		return err
	}
	if len(shims) == 0 {
		return nil
	}
	for _, pid := range descendants(shims) {
		thaw(pid)
		_ = syscall.Kill(-pid, syscall.SIGKILL) // its process group, when it leads one
		_ = syscall.Kill(pid, syscall.SIGKILL)  // gone meanwhile: nothing to do
	}
	deadline := time.Now().Add(supervisorExitTimeout)
	for time.Now().Before(deadline) {
		left, err := taggedPIDs(tag)
		if err != nil {
			return err
		}
		if len(left) == 0 {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	left, err := taggedPIDs(tag)
	if err != nil {
		return err
	}
	for _, pid := range append(descendants(left), left...) {
		thaw(pid)
		_ = syscall.Kill(pid, syscall.SIGKILL) // best effort; checked below
	}
	if len(left) > 0 {
		return fmt.Errorf("killed %d task supervisors that did not exit within %s after their tasks were killed", len(left), supervisorExitTimeout)
	}
	return nil
}
