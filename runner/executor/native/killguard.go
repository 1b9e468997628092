package native

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// killVerdict is what killTarget decided about one PID.
type killVerdict int

const (
	// killOK: the PID is a process of the cgroup; signal it.
	killOK killVerdict = iota
	// killGone: the process no longer exists.
	killGone
	// killRefused: never signal it (PID <= 1, the caller itself or its
	// process group, or a process outside the cgroup).
	killRefused
)

// killTarget decides whether pid, listed in task cgroup name, may be sent
// SIGKILL. It is the last line of defense against a process list that
// names a process that is not the task's: PIDs <= 1 (0 and -1 would
// signal process groups or every process), this process, members of its
// process group, and every process whose /proc/<pid>/cgroup does not show
// it inside cgroup name of layout l are refused.
func (l cgroupLayout) killTarget(pid int, name string) killVerdict {
	if pid <= 1 || pid == os.Getpid() {
		return killRefused
	}
	st, err := readProcStat(pid)
	if err != nil || st.exiting() {
		// Gone, or on its way out: a process in exit() leaves its
		// cgroups before cgroup.procs stops listing it, and runs no more
		// code; its end is all that is left to wait for.
		return killGone
	}
	if st.PGRP == syscall.Getpgrp() {
		return killRefused
	}
	in, err := l.contains(pid, name)
	if err != nil {
		return killGone
	}
	if !in {
		return killRefused
	}
	return killOK
}

// contains reports whether /proc/<pid>/cgroup shows process pid inside
// cgroup name (or a cgroup below it) of layout l: on v2 in the unified
// hierarchy, on v1 in one of the layout's hierarchies. The path is matched
// by its end (…/<parent>/<name>), so that a hierarchy mounted at a
// non-root cgroup (a container without a cgroup namespace) still matches.
//
// A leader thread that exited while other threads run shows no cgroup of
// its own: the process is then placed by its other threads.
func (l cgroupLayout) contains(pid int, name string) (bool, error) {
	proc := "/proc/" + strconv.Itoa(pid)
	b, err := os.ReadFile(proc + "/cgroup")
	if err != nil {
		return false, fmt.Errorf("read cgroups of pid %d: %w", pid, err)
	}
	if l.shows(b, name) {
		return true, nil
	}
	tids, err := os.ReadDir(proc + "/task")
	if err != nil || len(tids) < 2 {
		return false, nil //nolint:nilerr // no other thread to look at
	}
	for _, t := range tids {
		if t.Name() == strconv.Itoa(pid) {
			continue
		}
		if b, err := os.ReadFile(proc + "/task/" + t.Name() + "/cgroup"); err == nil && l.shows(b, name) {
			return true, nil
		}
	}
	return false, nil
}

// shows reports whether b, a /proc cgroup file, puts its thread inside
// cgroup name (or below it).
func (l cgroupLayout) shows(b []byte, name string) bool {
	want := "/" + l.Parent + "/" + name
	for _, path := range l.paths(b) {
		if strings.HasSuffix(path, want) || strings.Contains(path, want+"/") {
			return true
		}
	}
	return false
}

// holdsSelf reports whether /proc/self/cgroup shows this process (its
// leader thread) in cgroup name of layout l in every hierarchy of l.
func (l cgroupLayout) holdsSelf(name string) bool {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return false
	}
	want := "/" + l.Parent + "/" + name
	paths := l.paths(b)
	for _, path := range paths {
		if !strings.HasSuffix(path, want) {
			return false
		}
	}
	return len(paths) == len(l.dirs(name))
}

// paths returns the cgroup path of each of layout l's hierarchies in
// procCgroup, the contents of a /proc/<pid>/cgroup ("id:controllers:path"
// lines), by controller list: on v2 the unified hierarchy's line alone,
// on v1 the lines of the layout's hierarchies.
func (l cgroupLayout) paths(procCgroup []byte) map[string]string {
	out := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(procCgroup)), "\n") {
		id, rest, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		controllers, path, ok := strings.Cut(rest, ":")
		switch {
		case !ok:
			continue
		case l.Version == 2 && (id != "0" || controllers != ""):
			continue
		case l.Version != 2 && (id == "0" || !l.hasHierarchy(controllers)):
			continue
		}
		out[controllers] = path
	}
	return out
}

// hasHierarchy reports whether a v1 controller list of /proc/<pid>/cgroup
// ("cpu,cpuacct", "name=systemd") is one of the layout's hierarchies.
func (l cgroupLayout) hasHierarchy(controllers string) bool {
	for _, h := range l.Controllers {
		if h == controllers || "name="+h == controllers {
			return true
		}
	}
	return false
}

// signalPGID sends sig to process group pgid whose leader is the process
// recorded as (pid, startTicks), after checking that this is still so:
// the leader is alive with that start time and still leads pgid. Groups
// <= 1 and the caller's own group are refused.
func signalPGID(pid, pgid int, startTicks uint64, sig syscall.Signal) error {
	if pgid <= 1 || pgid == syscall.Getpgrp() || pid != pgid {
		return fmt.Errorf("signal process group %d: refused (not a task's group)", pgid)
	}
	if !processAlive(pid, startTicks) {
		return nil
	}
	st, err := readProcStat(pid)
	if err != nil {
		return nil //nolint:nilerr // it ended meanwhile
	}
	if st.PGRP != pgid {
		return fmt.Errorf("signal process group %d: refused (pid %d now leads group %d)", pgid, pid, st.PGRP)
	}
	return signalGroup(pgid, sig)
}
