package resources

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// maxCPUID bounds the CPU numbers ParseCPUList accepts, so a corrupt list
// cannot make it allocate without limit. Linux's NR_CPUS is at most 8192.
const maxCPUID = 1<<16 - 1

// ParseCPUList parses a Linux CPU list such as "0-3,8,10-11", the format of
// sysfs cpulist files and cgroup cpuset.cpus, into ascending CPU numbers
// without duplicates. Surrounding white space is ignored, and an empty list
// gives an empty, non-nil slice. Malformed elements, reversed ranges and CPU
// numbers above 65535 are errors.
func ParseCPUList(s string) ([]int, error) {
	cpus := []int{}
	s = strings.TrimSpace(s)
	if s == "" {
		return cpus, nil
	}
	for _, elem := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(strings.TrimSpace(elem), "-")
		first, err := parseCPUID(lo)
		if err != nil {
			return nil, fmt.Errorf("parse cpu list %q: %w", s, err)
		}
		last := first
		if isRange {
			if last, err = parseCPUID(hi); err != nil {
				return nil, fmt.Errorf("parse cpu list %q: %w", s, err)
			}
			if last < first {
				return nil, fmt.Errorf("parse cpu list %q: reversed range %q", s, elem)
			}
		}
		for cpu := first; cpu <= last; cpu++ {
			cpus = append(cpus, cpu)
		}
	}
	slices.Sort(cpus)
	return slices.Compact(cpus), nil
}

// parseCPUID parses one CPU number of a CPU list.
func parseCPUID(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("invalid cpu number %q", s)
	}
	if n > maxCPUID {
		return 0, fmt.Errorf("cpu number %d above %d", n, maxCPUID)
	}
	return n, nil
}

// FormatCPUList is the inverse of ParseCPUList: it writes cpus in the Linux
// CPU list format, sorted, without duplicates and with consecutive numbers
// joined into ranges ("0-3,8,10-11"), as cgroup cpuset.cpus expects. It does
// not modify cpus; an empty slice gives "".
func FormatCPUList(cpus []int) string {
	sorted := slices.Compact(slices.Sorted(slices.Values(cpus)))
	var b strings.Builder
	for i := 0; i < len(sorted); {
		j := i
		for j+1 < len(sorted) && sorted[j+1] == sorted[j]+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(sorted[i]))
		if j > i {
			b.WriteByte('-')
			b.WriteString(strconv.Itoa(sorted[j]))
		}
		i = j + 1
	}
	return b.String()
}
