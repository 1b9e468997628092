package resources

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/hakuriver/hakuriver-ha/fsm"
)

// Live is one sample of the machine's load, as a heartbeat carries it.
type Live struct {
	// CPUPercent is the share of CPU time spent busy (not idle or waiting
	// for I/O) since the previous sample, 0-100.
	CPUPercent float64
	// MemoryPercent is MemoryUsedBytes as a percentage of MemoryTotalBytes.
	MemoryPercent float64
	// MemoryUsedBytes is MemTotal - MemAvailable of /proc/meminfo.
	MemoryUsedBytes int64
	// MemoryTotalBytes is MemTotal of /proc/meminfo.
	MemoryTotalBytes int64
	// CurrentAvgTemp and CurrentMaxTemp are the mean and the highest CPU
	// temperature in °C; nil when the machine exposes no sensor.
	CurrentAvgTemp *float64
	CurrentMaxTemp *float64
	// GPUInfo is a fresh nvidia-smi reading; empty, never nil, without GPUs.
	GPUInfo []fsm.GPUInfo
}

// Sampler takes Live samples. It remembers the previous CPU counters, so
// that each sample's CPU figure covers the time since the one before. It is
// safe for concurrent use.
type Sampler struct {
	cfg Config

	mu      sync.Mutex
	prevCPU cpuTimes // guarded by mu; zero before the first sample
}

// NewSampler returns a Sampler reading the machine described by cfg, or an
// error when cfg is invalid. It reads nothing yet.
func NewSampler(cfg Config) (*Sampler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Sampler{cfg: cfg.withDefaults()}, nil
}

// Sample reads the current load. The first sample's CPU figure covers the
// time since boot. Temperature sensors that cannot be read are skipped. The
// nvidia-smi run is bounded by ctx and by Config.GPUTimeout.
//
// Unreadable /proc/stat or /proc/meminfo is an error with a zero Live. A
// failed GPU query is a partial failure: Sample then returns every other
// figure, with an empty GPU list, together with an error wrapping
// ErrGPUQuery.
func (s *Sampler) Sample(ctx context.Context) (Live, error) {
	cpu, err := s.cpuPercent()
	if err != nil {
		return Live{}, err
	}
	mem, err := readMeminfo(s.cfg.procPath("meminfo"))
	if err != nil {
		return Live{}, err
	}
	if mem.total <= 0 {
		return Live{}, fmt.Errorf("read %s: no MemTotal", s.cfg.procPath("meminfo"))
	}
	used := mem.total - mem.availableBytes()
	l := Live{
		CPUPercent:       cpu,
		MemoryPercent:    float64(used) / float64(mem.total) * 100,
		MemoryUsedBytes:  used,
		MemoryTotalBytes: mem.total,
	}
	l.CurrentAvgTemp, l.CurrentMaxTemp = avgMax(readTemps(s.cfg))

	ctx, cancel := context.WithTimeout(ctx, s.cfg.GPUTimeout)
	defer cancel()
	l.GPUInfo, err = queryGPUs(ctx, s.cfg.NvidiaSMI)
	return l, err
}

// availableBytes returns MemAvailable, or an estimate from free, buffers and
// cache on kernels older than 3.14, clamped to [0, total].
func (m meminfo) availableBytes() int64 {
	avail := m.available
	if avail < 0 {
		avail = max(m.free, 0) + max(m.buffers, 0) + max(m.cached, 0)
	}
	return min(avail, m.total)
}

// cpuPercent reads /proc/stat and returns the busy share since the previous
// call, then remembers the reading.
func (s *Sampler) cpuPercent() (float64, error) {
	raw, err := os.ReadFile(s.cfg.procPath("stat"))
	if err != nil {
		return 0, fmt.Errorf("read cpu times: %w", err)
	}
	cur, err := parseCPUTimes(string(raw))
	if err != nil {
		return 0, fmt.Errorf("parse %s: %w", s.cfg.procPath("stat"), err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	pct := busyPercent(s.prevCPU, cur)
	s.prevCPU = cur
	return pct, nil
}

// cpuTimes are the aggregate CPU counters of /proc/stat, in clock ticks.
type cpuTimes struct {
	total uint64 // user+nice+system+idle+iowait+irq+softirq+steal
	idle  uint64 // idle+iowait
}

// parseCPUTimes reads the aggregate "cpu" line of /proc/stat. Guest time is
// left out of the total because the kernel already counts it in user and
// nice time.
func parseCPUTimes(stat string) (cpuTimes, error) {
	for line := range strings.Lines(stat) {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != "cpu" {
			continue
		}
		if len(f) < 5 {
			return cpuTimes{}, fmt.Errorf("cpu line has %d fields", len(f)-1)
		}
		var t cpuTimes
		for i, v := range f[1:min(len(f), 9)] {
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				return cpuTimes{}, fmt.Errorf("cpu line field %d: invalid counter %q", i+1, v)
			}
			t.total += n
			if i == 3 || i == 4 { // idle, iowait
				t.idle += n
			}
		}
		return t, nil
	}
	return cpuTimes{}, errors.New("no cpu line")
}

// busyPercent returns the busy share of the time between two readings,
// 0-100; 0 when no time passed or the counters went backwards.
func busyPercent(prev, cur cpuTimes) float64 {
	if cur.total <= prev.total {
		return 0
	}
	total := cur.total - prev.total
	var idle uint64
	if cur.idle > prev.idle {
		idle = min(cur.idle-prev.idle, total)
	}
	return float64(total-idle) / float64(total) * 100
}

// isCPUSensor reports whether an hwmon device name is a CPU sensor's;
// those are preferred over every other sensor.
func isCPUSensor(name string) bool {
	switch name {
	case "coretemp", "k10temp", "cpu_thermal", "zenpower":
		return true
	}
	return false
}

// readTemps returns temperatures in °C: the CPU hwmon sensors if there are
// any, else every hwmon sensor, else the thermal zones. Unreadable sensors
// are skipped.
func readTemps(cfg Config) []float64 {
	var cpu, all []float64
	for _, dir := range glob(cfg.sysPath("class/hwmon/hwmon*")) {
		name := readTrimmed(filepath.Join(dir, "name"))
		inputs := glob(filepath.Join(dir, "temp*_input"))
		if len(inputs) == 0 { // kernels before 3.x kept them under device/
			inputs = glob(filepath.Join(dir, "device", "temp*_input"))
			if name == "" {
				name = readTrimmed(filepath.Join(dir, "device", "name"))
			}
		}
		temps := readMilliCelsius(inputs)
		all = append(all, temps...)
		if isCPUSensor(name) {
			cpu = append(cpu, temps...)
		}
	}
	switch {
	case len(cpu) > 0:
		return cpu
	case len(all) > 0:
		return all
	}
	return readMilliCelsius(glob(cfg.sysPath("class/thermal/thermal_zone*/temp")))
}

// glob is filepath.Glob for patterns known to be well formed.
func glob(pattern string) []string {
	// Glob fails only on a malformed pattern, and the patterns are constant.
	matches, _ := filepath.Glob(pattern)
	return matches
}

// readTrimmed returns the contents of a small text file, or "" when it
// cannot be read.
func readTrimmed(path string) string {
	raw, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(raw))
}

// readMilliCelsius reads sensor files holding millidegrees Celsius and
// returns degrees, skipping files that cannot be read or parsed (sensors
// often fail with EIO or ENODATA).
func readMilliCelsius(paths []string) []float64 {
	var temps []float64
	for _, p := range paths {
		n, err := strconv.ParseInt(readTrimmed(p), 10, 64)
		if err != nil {
			continue
		}
		temps = append(temps, float64(n)/1000)
	}
	return temps
}

// avgMax returns the mean and the maximum of temps, or nils when empty.
func avgMax(temps []float64) (avg, maxTemp *float64) {
	if len(temps) == 0 {
		return nil, nil
	}
	sum, hi := 0.0, temps[0]
	for _, t := range temps {
		sum += t
		hi = max(hi, t)
	}
	mean := sum / float64(len(temps))
	return &mean, &hi
}
