package native

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"syscall"
)

// procStat is the part of /proc/<pid>/stat the executor uses.
type procStat struct {
	State byte
	// Flags are the kernel's per-process flags (PF_*) of its leader
	// thread.
	Flags uint64
	// Threads is how many threads the process has.
	Threads uint64
	PPID    int
	PGRP    int
	// CPUTicks is utime+stime in clock ticks.
	CPUTicks uint64
	// StartTicks is the start time after boot in clock ticks; together with
	// the pid it identifies a process across pid reuse.
	StartTicks uint64
}

// pfExiting is the kernel's PF_EXITING: the process is in exit().
const pfExiting = 0x4

// exiting reports whether the process is on its way out (in exit(), a
// zombie, or dead) and runs no more code of its own. The stat is its
// leader thread's: a leader that exited while other threads run (it calls
// pthread_exit) looks the same, so a process with threads left is not
// exiting.
func (st procStat) exiting() bool {
	leaderOut := st.State == 'Z' || st.State == 'X' || st.State == 'x' || st.Flags&pfExiting != 0
	return leaderOut && st.Threads <= 1
}

// readProcStat parses /proc/<pid>/stat.
func readProcStat(pid int) (procStat, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, fmt.Errorf("read stat of pid %d: %w", pid, err)
	}
	// The command name (field 2) may hold spaces and parentheses: the
	// fixed fields start after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, fmt.Errorf("parse stat of pid %d: no command field", pid)
	}
	f := bytes.Fields(b[i+1:])
	// f[0] is field 3 (state); field n is f[n-3].
	if len(f) < 20 || len(f[0]) != 1 {
		return procStat{}, fmt.Errorf("parse stat of pid %d: %d fields", pid, len(f))
	}
	field := func(n int) uint64 {
		if err != nil {
			return 0
		}
		var v uint64
		v, err = strconv.ParseUint(string(f[n-3]), 10, 64)
		return v
	}
	st := procStat{State: f[0][0]}
	st.PPID = int(field(4))
	st.Flags = field(9)
	st.Threads = field(20)
	st.PGRP = int(field(5))
	st.CPUTicks = field(14) + field(15)
	st.StartTicks = field(22)
	if err != nil {
		return procStat{}, fmt.Errorf("parse stat of pid %d: %w", pid, err)
	}
	return st, nil
}

// processAlive reports whether pid is a live (not zombie) process that
// started at startTicks, i.e. the same process that was recorded.
func processAlive(pid int, startTicks uint64) bool {
	if pid <= 0 {
		return false
	}
	st, err := readProcStat(pid)
	if err != nil {
		return false
	}
	return st.StartTicks == startTicks && (st.Threads > 1 || st.State != 'Z' && st.State != 'X' && st.State != 'x')
}

// signalGroup sends sig to the process group pgid; a group that no longer
// exists is not an error.
func signalGroup(pgid int, sig syscall.Signal) error {
	if pgid <= 1 {
		return fmt.Errorf("signal process group %d: invalid group", pgid)
	}
	if err := syscall.Kill(-pgid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("signal process group %d with %v: %w", pgid, sig, err)
	}
	return nil
}

// setChildSubreaper makes the calling process the reaper of its orphaned
// descendants (prctl PR_SET_CHILD_SUBREAPER).
func setChildSubreaper() error {
	const prSetChildSubreaper = 36
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0); errno != 0 {
		return fmt.Errorf("set child subreaper: %w", errno)
	}
	return nil
}
