//go:build linux

package fsm

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// dropMapped tells the kernel this process no longer needs the pages of
// the archive it has mapped (MADV_DONTNEED on bbolt's read-only shared
// mapping of path): a snapshot streams the whole archive through the
// mapping, and without this every page stayed in the process's RSS. The
// data stays in the page cache; a later read faults the page in again.
// The caller holds a read transaction, so bbolt cannot remap meanwhile.
func dropMapped(path string) {
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	if real, err := filepath.EvalSymlinks(path); err == nil {
		path = real
	}
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasSuffix(line, " "+path) {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) < 6 || !strings.HasPrefix(fields[1], "r") || strings.Contains(fields[1], "w") {
			continue // only bbolt's read-only mapping
		}
		lo, hi, ok := strings.Cut(fields[0], "-")
		if !ok {
			continue
		}
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil || end <= start {
			continue
		}
		unix.Syscall(unix.SYS_MADVISE, uintptr(start), uintptr(end-start), unix.MADV_DONTNEED) //nolint:errcheck // advice only
	}
}
