package resources

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/fsm"
)

// writeFile creates path, and its parent directories, holding content.
func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// copyFile copies the fixture src to dst.
func copyFile(t testing.TB, src, dst string) {
	t.Helper()
	raw, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, dst, string(raw))
}

// newSampler returns a Sampler for cfg, failing the test on error.
func newSampler(t testing.TB, cfg Config) *Sampler {
	t.Helper()
	s, err := NewSampler(cfg)
	if err != nil {
		t.Fatalf("NewSampler: %v", err)
	}
	return s
}

func approx(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

// ptr returns a pointer to v, or nil for NaN (meaning "no value").
func ptr(v float64) *float64 {
	if math.IsNaN(v) {
		return nil
	}
	return &v
}

func sameTemp(got, want *float64) bool {
	if got == nil || want == nil {
		return got == want
	}
	return approx(*got, *want)
}

func fmtTemp(p *float64) any {
	if p == nil {
		return "nil"
	}
	return *p
}

func TestSample_Temperatures(t *testing.T) {
	tests := []struct {
		name     string
		tree     string
		avg, max float64 // NaN: nil
	}{
		{name: "hwmon prefers coretemp", tree: "hwmon", avg: (50 + 45 + 43) / 3.0, max: 50},
		{name: "hwmon without cpu sensor uses all", tree: "hwmon-other", avg: (27.8 + 38.85) / 2, max: 38.85},
		{name: "thermal zones only", tree: "thermal", avg: (55.5 + 42) / 2, max: 55.5},
		{name: "no sensors", tree: "none", avg: math.NaN(), max: math.NaN()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := newSampler(t, fixtureConfig(tc.tree, "")).Sample(context.Background())
			if err != nil {
				t.Fatalf("Sample: %v", err)
			}
			if !sameTemp(got.CurrentAvgTemp, ptr(tc.avg)) || !sameTemp(got.CurrentMaxTemp, ptr(tc.max)) {
				t.Errorf("temperatures avg %v max %v, want avg %v max %v",
					fmtTemp(got.CurrentAvgTemp), fmtTemp(got.CurrentMaxTemp), fmtTemp(ptr(tc.avg)), fmtTemp(ptr(tc.max)))
			}
		})
	}
}

func TestSample_Memory(t *testing.T) {
	got, err := newSampler(t, fixtureConfig("none", "")).Sample(context.Background())
	if err != nil {
		t.Fatalf("Sample: %v", err)
	}
	const used = (16384000 - 12288000) * 1024
	if got.MemoryTotalBytes != fixtureMemTotal || got.MemoryUsedBytes != used || !approx(got.MemoryPercent, 25) {
		t.Errorf("memory total %d used %d percent %v, want %d, %d, 25",
			got.MemoryTotalBytes, got.MemoryUsedBytes, got.MemoryPercent, fixtureMemTotal, used)
	}
	if got.GPUInfo == nil || len(got.GPUInfo) != 0 {
		t.Errorf("GPUInfo = %#v, want empty and non-nil without nvidia-smi", got.GPUInfo)
	}
}

func TestMeminfoAvailable(t *testing.T) {
	tests := []struct {
		name string
		in   meminfo
		want int64
	}{
		{name: "MemAvailable", in: meminfo{total: 100, available: 40, free: 10, buffers: 5, cached: 20}, want: 40},
		{name: "old kernel estimate", in: meminfo{total: 100, available: -1, free: 10, buffers: 5, cached: 20}, want: 35},
		{name: "clamped to total", in: meminfo{total: 100, available: -1, free: 90, buffers: 5, cached: 20}, want: 100},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.in.availableBytes(); got != tc.want {
				t.Errorf("availableBytes = %d, want %d", got, tc.want)
			}
		})
	}
}

// TestSample_CPUPercent samples two /proc/stat snapshots: the first sample
// covers the time since boot, the second the ticks between the snapshots.
func TestSample_CPUPercent(t *testing.T) {
	proc := t.TempDir()
	copyFile(t, "testdata/proc/meminfo", filepath.Join(proc, "proc", "meminfo"))
	copyFile(t, "testdata/proc/stat", filepath.Join(proc, "proc", "stat"))
	s := newSampler(t, Config{SysRoot: "testdata/none", ProcRoot: proc, NvidiaSMI: "testdata/absent"})

	steps := []struct {
		name string
		stat string // fixture to install before sampling; "" keeps the last
		want float64
	}{
		// busy = total - idle - iowait = 93650 - 80500 ticks since boot.
		{name: "first sample since boot", want: (93650.0 - 80500) / 93650 * 100},
		// +2000 ticks, of which 400 idle and 100 iowait; guest is not counted.
		{name: "second sample", stat: "testdata/stat-later", want: 75},
		{name: "no ticks passed", want: 0},
		{name: "counters went back", stat: "testdata/proc/stat", want: 0},
	}
	for _, step := range steps {
		if step.stat != "" {
			copyFile(t, step.stat, filepath.Join(proc, "proc", "stat"))
		}
		got, err := s.Sample(context.Background())
		if err != nil {
			t.Fatalf("%s: Sample: %v", step.name, err)
		}
		if !approx(got.CPUPercent, step.want) {
			t.Errorf("%s: CPUPercent = %v, want %v", step.name, got.CPUPercent, step.want)
		}
	}
}

func TestParseCPUTimes(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    cpuTimes
		wantErr bool
	}{
		{name: "modern kernel", in: "cpu  1 2 3 4 5 6 7 8 9 10\ncpu0 1 2 3 4 5 6 7 8 9 10\n", want: cpuTimes{total: 36, idle: 9}},
		{name: "old kernel, four counters", in: "cpu 1 2 3 4\n", want: cpuTimes{total: 10, idle: 4}},
		{name: "no cpu line", in: "cpu0 1 2 3 4\nintr 5\n", wantErr: true},
		{name: "short cpu line", in: "cpu 1 2\n", wantErr: true},
		{name: "bad counter", in: "cpu 1 2 x 4\n", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseCPUTimes(tc.in)
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Errorf("parseCPUTimes = %+v, %v; want %+v, error %t", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

func TestSample_GPUs(t *testing.T) {
	tests := []struct {
		name        string
		smi         string
		timeout     time.Duration
		want        []fsm.GPUInfo
		errContains string // "" for no error
	}{
		{name: "fake nvidia-smi", smi: "nvidia-smi", want: fixtureGPUs},
		{name: "missing nvidia-smi", smi: "", want: []fsm.GPUInfo{}},
		{name: "failing nvidia-smi", smi: "nvidia-smi-fail", want: []fsm.GPUInfo{}, errContains: "nvidia-smi"},
		{name: "hanging nvidia-smi", smi: "nvidia-smi-hang", timeout: 200 * time.Millisecond, want: []fsm.GPUInfo{}, errContains: "deadline exceeded"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := fixtureConfig("hwmon", tc.smi)
			cfg.GPUTimeout = tc.timeout
			got, err := newSampler(t, cfg).Sample(context.Background())
			if tc.errContains == "" && err != nil {
				t.Fatalf("Sample: %v", err)
			}
			if tc.errContains != "" && (!errors.Is(err, ErrGPUQuery) || !strings.Contains(err.Error(), tc.errContains)) {
				t.Fatalf("Sample error = %v, want ErrGPUQuery mentioning %q", err, tc.errContains)
			}
			if !reflect.DeepEqual(got.GPUInfo, tc.want) {
				t.Errorf("GPUInfo:\n got %+v\nwant %+v", got.GPUInfo, tc.want)
			}
			// The other figures survive a GPU failure.
			if got.MemoryTotalBytes != fixtureMemTotal || got.CurrentMaxTemp == nil {
				t.Errorf("Sample = %+v, want memory and temperatures regardless of GPUs", got)
			}
		})
	}
}

func TestSample_CanceledContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := newSampler(t, fixtureConfig("none", "nvidia-smi")).Sample(ctx)
	if !errors.Is(err, ErrGPUQuery) || !errors.Is(err, context.Canceled) {
		t.Errorf("Sample error = %v, want ErrGPUQuery wrapping context.Canceled", err)
	}
}

func TestSample_Errors(t *testing.T) {
	if _, err := NewSampler(Config{Cores: -2}); err == nil {
		t.Error("NewSampler accepted negative cores")
	}
	s := newSampler(t, Config{SysRoot: "testdata/none", NvidiaSMI: "testdata/absent"})
	if got, err := s.Sample(context.Background()); err == nil {
		t.Errorf("Sample without /proc = %+v, want error", got)
	}
}

// TestSample_RealMachine samples the machine the tests run on, twice.
func TestSample_RealMachine(t *testing.T) {
	s := newSampler(t, DefaultConfig())
	for i := range 2 {
		got, err := s.Sample(context.Background())
		if errors.Is(err, ErrGPUQuery) {
			t.Logf("GPU query failed (tolerated): %v", err)
		} else if err != nil {
			t.Fatalf("Sample: %v", err)
		}
		if got.CPUPercent < 0 || got.CPUPercent > 100 {
			t.Errorf("sample %d: CPUPercent = %v, want 0-100", i, got.CPUPercent)
		}
		if got.MemoryTotalBytes <= 0 || got.MemoryUsedBytes < 0 || got.MemoryUsedBytes > got.MemoryTotalBytes {
			t.Errorf("sample %d: memory used %d of %d", i, got.MemoryUsedBytes, got.MemoryTotalBytes)
		}
		if got.MemoryPercent < 0 || got.MemoryPercent > 100 {
			t.Errorf("sample %d: MemoryPercent = %v, want 0-100", i, got.MemoryPercent)
		}
		t.Logf("sample %d: %+v", i, got)
	}
}

// TestSampler_Concurrent lets the race detector watch concurrent samples.
func TestSampler_Concurrent(t *testing.T) {
	s := newSampler(t, fixtureConfig("hwmon", ""))
	done := make(chan error)
	for range 4 {
		go func() {
			_, err := s.Sample(context.Background())
			done <- err
		}()
	}
	for range 4 {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}
