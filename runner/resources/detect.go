package resources

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"github.com/hakuriver/hakuriver-ha/fsm"
)

// Static is what a runner registers with: the machine's fixed capacity. Its
// fields mirror fsm.Node.
type Static struct {
	// TotalCores is the number of logical CPUs (or Config.Cores).
	TotalCores int
	// MemoryTotalBytes is MemTotal of /proc/meminfo (or Config.MemoryBytes).
	MemoryTotalBytes int64
	// NUMATopology maps each NUMA node ID, as a decimal string, to its CPUs
	// and memory. A machine without NUMA information in sysfs gets a single
	// node "0" holding every core and all memory.
	NUMATopology map[string]fsm.NUMANode
	// GPUInfo lists the GPUs nvidia-smi reports; it is empty, never nil,
	// when there are none (JSON "[]").
	GPUInfo []fsm.GPUInfo
}

// Detect reads the machine's static resources as described by cfg. It may
// take up to cfg.GPUTimeout while nvidia-smi runs, and is safe to call
// concurrently.
//
// An invalid cfg or unreadable memory or NUMA information is an error with a
// zero Static. A failed GPU query is a partial failure: Detect then returns
// the complete Static with an empty GPU list together with an error wrapping
// ErrGPUQuery, so that a runner can still register without its GPUs.
func Detect(cfg Config) (Static, error) {
	if err := cfg.Validate(); err != nil {
		return Static{}, err
	}
	cfg = cfg.withDefaults()

	s := Static{TotalCores: cfg.Cores, MemoryTotalBytes: cfg.MemoryBytes, GPUInfo: []fsm.GPUInfo{}}
	if s.TotalCores == 0 {
		s.TotalCores = runtime.NumCPU()
	}
	if s.MemoryTotalBytes == 0 {
		mem, err := readMeminfo(cfg.procPath("meminfo"))
		if err != nil {
			return Static{}, err
		}
		if s.MemoryTotalBytes = mem.total; s.MemoryTotalBytes <= 0 {
			return Static{}, fmt.Errorf("read %s: no MemTotal", cfg.procPath("meminfo"))
		}
	}
	numa, err := readNUMA(cfg.sysPath("devices/system/node"))
	if err != nil {
		return Static{}, fmt.Errorf("detect numa topology: %w", err)
	}
	if len(numa) == 0 {
		numa = map[string]fsm.NUMANode{"0": {Cores: allCores(s.TotalCores), MemoryBytes: s.MemoryTotalBytes}}
	}
	s.NUMATopology = numa

	ctx, cancel := context.WithTimeout(context.Background(), cfg.GPUTimeout)
	defer cancel()
	gpus, err := queryGPUs(ctx, cfg.NvidiaSMI)
	if err != nil {
		return s, err
	}
	s.GPUInfo = gpus
	return s, nil
}

// allCores returns the CPU numbers 0..n-1.
func allCores(n int) []int {
	cores := make([]int, n)
	for i := range cores {
		cores[i] = i
	}
	return cores
}

// readNUMA reads the NUMA nodes under dir (sysfs devices/system/node). A
// missing dir, or one without nodeN entries, gives an empty map.
func readNUMA(dir string) (map[string]fsm.NUMANode, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]fsm.NUMANode{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list numa nodes: %w", err)
	}
	nodes := make(map[string]fsm.NUMANode)
	for _, e := range entries {
		id, ok := strings.CutPrefix(e.Name(), "node")
		if !ok {
			continue
		}
		if n, err := strconv.Atoi(id); err != nil || n < 0 {
			continue // not a node directory (e.g. "node_foo")
		}
		node, err := readNUMANode(filepath.Join(dir, e.Name()), id)
		if err != nil {
			return nil, err
		}
		nodes[id] = node
	}
	return nodes, nil
}

// readNUMANode reads one sysfs nodeN directory: its cpulist and the MemTotal
// line of its meminfo. A memory-only node has an empty cpulist.
func readNUMANode(dir, id string) (fsm.NUMANode, error) {
	raw, err := os.ReadFile(filepath.Join(dir, "cpulist"))
	if err != nil {
		return fsm.NUMANode{}, fmt.Errorf("read numa node %s cpus: %w", id, err)
	}
	cores, err := ParseCPUList(string(raw))
	if err != nil {
		return fsm.NUMANode{}, fmt.Errorf("numa node %s: %w", id, err)
	}
	raw, err = os.ReadFile(filepath.Join(dir, "meminfo"))
	if err != nil {
		return fsm.NUMANode{}, fmt.Errorf("read numa node %s memory: %w", id, err)
	}
	mem, err := parseNodeMemTotal(string(raw))
	if err != nil {
		return fsm.NUMANode{}, fmt.Errorf("numa node %s: %w", id, err)
	}
	return fsm.NUMANode{Cores: cores, MemoryBytes: mem}, nil
}

// parseNodeMemTotal finds "Node N MemTotal: X kB" in a sysfs node meminfo
// and returns X in bytes.
func parseNodeMemTotal(meminfo string) (int64, error) {
	for line := range strings.Lines(meminfo) {
		f := strings.Fields(line)
		if len(f) >= 4 && f[0] == "Node" && f[2] == "MemTotal:" {
			return parseMemValue(f[3:])
		}
	}
	return 0, errors.New("no MemTotal in node meminfo")
}

// meminfo holds the /proc/meminfo figures the package uses, in bytes; -1
// marks a missing line.
type meminfo struct {
	total, available, free, buffers, cached int64
}

// readMeminfo parses a /proc/meminfo file.
func readMeminfo(path string) (meminfo, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return meminfo{}, fmt.Errorf("read memory info: %w", err)
	}
	m := meminfo{total: -1, available: -1, free: -1, buffers: -1, cached: -1}
	fields := map[string]*int64{
		"MemTotal:": &m.total, "MemAvailable:": &m.available, "MemFree:": &m.free,
		"Buffers:": &m.buffers, "Cached:": &m.cached,
	}
	for line := range strings.Lines(string(raw)) {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		dst, ok := fields[f[0]]
		if !ok {
			continue
		}
		if *dst, err = parseMemValue(f[1:]); err != nil {
			return meminfo{}, fmt.Errorf("parse %s %s: %w", path, f[0], err)
		}
	}
	return m, nil
}

// parseMemValue parses the value part of a meminfo line, "N kB" or "N", into
// bytes.
func parseMemValue(f []string) (int64, error) {
	n, err := strconv.ParseInt(f[0], 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("invalid memory value %q", f[0])
	}
	if len(f) > 1 && f[1] == "kB" {
		n *= 1024
	}
	return n, nil
}
