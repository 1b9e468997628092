// Package cgacct reads what a task consumed from its cgroup: CPU time
// (user and system) and peak memory, on cgroup v1 (cpuacct and memory
// hierarchies) and v2 (cpu.stat, memory.peak). The runner reads them once
// the task's processes are gone, just before the cgroup is removed, and
// sends them with the report of the task's end.
package cgacct

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Figures is what a cgroup's tasks consumed.
type Figures struct {
	UserNs, SystemNs int64
	// PeakBytes is the most memory charged at once (0: the kernel does
	// not record it, e.g. cgroup v2 before Linux 5.19).
	PeakBytes int64
}

// userHZ is the unit of cpuacct.stat (USER_HZ, 100 on every Linux
// architecture that matters).
const userHZ = 100

// ReadV1 reads a cgroup v1 group: cpuacct.usage_user and usage_sys (or
// cpuacct.stat where those are missing) in cpuacctDir, and
// memory.max_usage_in_bytes in memoryDir ("": not read; PeakBytes is left
// 0 when it cannot be read). Only unreadable CPU figures are an error.
func ReadV1(cpuacctDir, memoryDir string) (Figures, error) {
	var f Figures
	var errs []error
	u, uerr := readInt(filepath.Join(cpuacctDir, "cpuacct.usage_user"))
	s, serr := readInt(filepath.Join(cpuacctDir, "cpuacct.usage_sys"))
	if uerr == nil && serr == nil {
		f.UserNs, f.SystemNs = u, s
	} else {
		ut, ok1 := ReadKeyed(filepath.Join(cpuacctDir, "cpuacct.stat"), "user")
		st, ok2 := ReadKeyed(filepath.Join(cpuacctDir, "cpuacct.stat"), "system")
		if !ok1 || !ok2 {
			errs = append(errs, fmt.Errorf("read CPU time of cgroup %s: %w", cpuacctDir, errors.Join(uerr, serr)))
		} else {
			f.UserNs, f.SystemNs = ut*(1e9/userHZ), st*(1e9/userHZ)
		}
	}
	if memoryDir != "" {
		// Left 0 (unknown) when unreadable, as on v2 without memory.peak.
		if p, err := readInt(filepath.Join(memoryDir, "memory.max_usage_in_bytes")); err == nil {
			f.PeakBytes = p
		}
	}
	return f, errors.Join(errs...)
}

// ReadV2 reads a cgroup v2 group: user_usec and system_usec of cpu.stat
// and memory.peak (left 0 where the kernel has none).
func ReadV2(dir string) (Figures, error) {
	var f Figures
	u, ok1 := ReadKeyed(filepath.Join(dir, "cpu.stat"), "user_usec")
	s, ok2 := ReadKeyed(filepath.Join(dir, "cpu.stat"), "system_usec")
	if !ok1 || !ok2 {
		return f, fmt.Errorf("read CPU time of cgroup %s: no user_usec/system_usec in cpu.stat", dir)
	}
	f.UserNs, f.SystemNs = u*1000, s*1000
	if p, err := readInt(filepath.Join(dir, "memory.peak")); err == nil {
		f.PeakBytes = p
	}
	return f, nil
}

// readInt reads a file holding one non-negative integer.
func readInt(path string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseInt(string(bytes.TrimSpace(b)), 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("read %s: %q is not a count", path, bytes.TrimSpace(b))
	}
	return n, nil
}

// ReadKeyed reads the non-negative value of key from a cgroup file of
// "key value" lines (cpu.stat, memory.events, memory.oom_control).
func ReadKeyed(path, key string) (int64, bool) {
	f, err := os.Open(path)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), " ")
		if ok && k == key {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n, err == nil && n >= 0
		}
	}
	return 0, false
}
