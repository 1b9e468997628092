package resources

import (
	"errors"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/hakuriver/hakuriver-ha/fsm"
)

// fixtureMemTotal is MemTotal of testdata/proc/meminfo in bytes.
const fixtureMemTotal = 16384000 * 1024

// fixtureGPUs is what testdata/nvidia-smi reports.
var fixtureGPUs = []fsm.GPUInfo{
	{
		GPUID: 0, Name: "NVIDIA GeForce RTX 4090", DriverVersion: "550.54.14", PCIBusID: "00000000:01:00.0",
		GPUUtilization: 37, GraphicsClockMHz: 2520, MemUtilization: 12, MemClockMHz: 10501,
		MemoryTotalMiB: 24564, MemoryUsedMiB: 1875, MemoryFreeMiB: 22296,
		Temperature: 54, FanSpeed: 30, PowerUsageMW: 85470, PowerLimitMW: 450000,
	},
	{
		GPUID: 1, Name: "Tesla K80", DriverVersion: "470.223.02", PCIBusID: "00000000:82:00.0",
		GPUUtilization: 0, GraphicsClockMHz: 562, MemUtilization: -1, MemClockMHz: 2505,
		MemoryTotalMiB: 11441, MemoryUsedMiB: 4, MemoryFreeMiB: 11437,
		Temperature: 38, FanSpeed: -1, PowerUsageMW: -1, PowerLimitMW: 149000,
	},
}

// fixtureConfig reads sysfs from testdata/<tree>, procfs from testdata and
// GPUs from testdata/<smi> (an absent file when smi is "").
func fixtureConfig(tree, smi string) Config {
	if smi == "" {
		smi = "absent-nvidia-smi"
	}
	return Config{
		SysRoot:   filepath.Join("testdata", tree),
		ProcRoot:  "testdata",
		NvidiaSMI: filepath.Join("testdata", smi),
	}
}

func TestDetect(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want Static
	}{
		{
			name: "two numa nodes",
			cfg:  fixtureConfig("numa", ""),
			want: Static{
				TotalCores:       runtime.NumCPU(),
				MemoryTotalBytes: fixtureMemTotal,
				NUMATopology: map[string]fsm.NUMANode{
					"0": {Cores: []int{0, 1, 2, 3, 8, 9, 10, 11}, MemoryBytes: 16337748 * 1024},
					"1": {Cores: []int{4, 5, 6, 7, 12, 13, 14, 15}, MemoryBytes: 16512512 * 1024},
				},
				GPUInfo: []fsm.GPUInfo{},
			},
		},
		{
			name: "overrides keep the sysfs topology",
			cfg:  withOverrides(fixtureConfig("numa", ""), 12, 1<<34),
			want: Static{
				TotalCores:       12,
				MemoryTotalBytes: 1 << 34,
				NUMATopology: map[string]fsm.NUMANode{
					"0": {Cores: []int{0, 1, 2, 3, 8, 9, 10, 11}, MemoryBytes: 16337748 * 1024},
					"1": {Cores: []int{4, 5, 6, 7, 12, 13, 14, 15}, MemoryBytes: 16512512 * 1024},
				},
				GPUInfo: []fsm.GPUInfo{},
			},
		},
		{
			name: "no numa in sysfs gives one node with everything",
			cfg:  withOverrides(fixtureConfig("none", ""), 4, 0),
			want: Static{
				TotalCores:       4,
				MemoryTotalBytes: fixtureMemTotal,
				NUMATopology: map[string]fsm.NUMANode{
					"0": {Cores: []int{0, 1, 2, 3}, MemoryBytes: fixtureMemTotal},
				},
				GPUInfo: []fsm.GPUInfo{},
			},
		},
		{
			name: "gpus from nvidia-smi",
			cfg:  withOverrides(fixtureConfig("none", "nvidia-smi"), 2, 0),
			want: Static{
				TotalCores:       2,
				MemoryTotalBytes: fixtureMemTotal,
				NUMATopology: map[string]fsm.NUMANode{
					"0": {Cores: []int{0, 1}, MemoryBytes: fixtureMemTotal},
				},
				GPUInfo: fixtureGPUs,
			},
		},
		{
			name: "nvidia-smi without devices",
			cfg:  withOverrides(fixtureConfig("none", "nvidia-smi-nodev"), 1, 0),
			want: Static{
				TotalCores:       1,
				MemoryTotalBytes: fixtureMemTotal,
				NUMATopology:     map[string]fsm.NUMANode{"0": {Cores: []int{0}, MemoryBytes: fixtureMemTotal}},
				GPUInfo:          []fsm.GPUInfo{},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Detect(tc.cfg)
			if err != nil {
				t.Fatalf("Detect: %v", err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Detect:\n got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func withOverrides(cfg Config, cores int, mem int64) Config {
	cfg.Cores, cfg.MemoryBytes = cores, mem
	return cfg
}

// TestDetect_GPUQueryFailure checks that a broken nvidia-smi does not stop
// registration: Detect returns everything else plus an ErrGPUQuery error.
func TestDetect_GPUQueryFailure(t *testing.T) {
	tests := []struct {
		name        string
		smi         string
		errContains []string
	}{
		{name: "driver not loaded", smi: "nvidia-smi-fail", errContains: []string{"nvidia-smi", "exit status 9", "couldn't communicate with the NVIDIA driver"}},
		{name: "unparsable output", smi: "nvidia-smi-garbage", errContains: []string{"nvidia-smi", "line 1", "got 6 fields"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Detect(fixtureConfig("numa", tc.smi))
			if !errors.Is(err, ErrGPUQuery) {
				t.Fatalf("Detect error = %v, want one wrapping ErrGPUQuery", err)
			}
			for _, s := range tc.errContains {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %q", err, s)
				}
			}
			if got.TotalCores != runtime.NumCPU() || got.MemoryTotalBytes != fixtureMemTotal || len(got.NUMATopology) != 2 {
				t.Errorf("Detect = %+v, want cores, memory and two NUMA nodes despite the GPU failure", got)
			}
			if got.GPUInfo == nil || len(got.GPUInfo) != 0 {
				t.Errorf("GPUInfo = %#v, want empty and non-nil", got.GPUInfo)
			}
		})
	}
}

func TestDetect_Errors(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{name: "negative cores", cfg: Config{Cores: -1}},
		{name: "negative memory", cfg: Config{MemoryBytes: -1}},
		{name: "negative gpu timeout", cfg: Config{GPUTimeout: -1}},
		{name: "no meminfo", cfg: Config{SysRoot: "testdata/numa", ProcRoot: "testdata/none"}},
		{name: "broken numa node", cfg: Config{SysRoot: brokenNUMATree(t), ProcRoot: "testdata"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got, err := Detect(tc.cfg); err == nil || errors.Is(err, ErrGPUQuery) {
				t.Errorf("Detect = %+v, %v; want a hard error", got, err)
			}
		})
	}
}

// brokenNUMATree returns a sysfs root whose node0 has a malformed cpulist.
func brokenNUMATree(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	dir := filepath.Join(root, "sys", "devices", "system", "node", "node0")
	writeFile(t, filepath.Join(dir, "cpulist"), "0-x\n")
	writeFile(t, filepath.Join(dir, "meminfo"), "Node 0 MemTotal: 1024 kB\n")
	return root
}

func TestParseGPUCSV(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []fsm.GPUInfo
		wantErr bool
	}{
		{name: "no output", in: "", want: []fsm.GPUInfo{}},
		{
			name: "bare N/A and empty values",
			in:   "3, NVIDIA A100-SXM4-80GB, 535.104.05, 00000000:07:00.0, N/A, 1410, [Unknown Error], 1593, 81920, 0.5, 81919.5, , N/A, 61.3, 400\n\n",
			want: []fsm.GPUInfo{{
				GPUID: 3, Name: "NVIDIA A100-SXM4-80GB", DriverVersion: "535.104.05", PCIBusID: "00000000:07:00.0",
				GPUUtilization: -1, GraphicsClockMHz: 1410, MemUtilization: -1, MemClockMHz: 1593,
				MemoryTotalMiB: 81920, MemoryUsedMiB: 0.5, MemoryFreeMiB: 81919.5,
				Temperature: -1, FanSpeed: -1, PowerUsageMW: 61300, PowerLimitMW: 400000,
			}},
		},
		{name: "too few fields", in: "0, GPU, 1, 00:01.0, 5\n", wantErr: true},
		{name: "bad number", in: "0, GPU, 1, 00:01.0, 5, 6, 7, 8, 9, 10, 11, hot, 13, 14, 15\n", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseGPUCSV(tc.in)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("parseGPUCSV = %+v, want error", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseGPUCSV: %v", err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("parseGPUCSV:\n got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestParseNodeMemTotal(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    int64
		wantErr bool
	}{
		{name: "kB", in: "Node 2 MemFree: 1 kB\nNode 2 MemTotal:   2048 kB\n", want: 2 << 20},
		{name: "missing", in: "Node 0 MemFree: 1 kB\n", wantErr: true},
		{name: "garbage", in: "Node 0 MemTotal: lots kB\n", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseNodeMemTotal(tc.in)
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Errorf("parseNodeMemTotal = %d, %v; want %d, error %t", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

// TestDetect_RealMachine runs Detect on the machine the tests run on.
func TestDetect_RealMachine(t *testing.T) {
	got, err := Detect(DefaultConfig())
	if errors.Is(err, ErrGPUQuery) {
		t.Logf("GPU query failed (tolerated): %v", err)
	} else if err != nil {
		t.Fatalf("Detect: %v", err)
	}
	if got.TotalCores < 1 {
		t.Errorf("TotalCores = %d, want >= 1", got.TotalCores)
	}
	if got.MemoryTotalBytes <= 0 {
		t.Errorf("MemoryTotalBytes = %d, want > 0", got.MemoryTotalBytes)
	}
	node0, ok := got.NUMATopology["0"]
	if !ok {
		t.Fatalf("NUMATopology = %+v, want a node 0", got.NUMATopology)
	}
	if node0.MemoryBytes <= 0 {
		t.Errorf("NUMA node 0 memory = %d, want > 0", node0.MemoryBytes)
	}
	cores := 0
	for _, n := range got.NUMATopology {
		cores += len(n.Cores)
	}
	if cores < 1 {
		t.Errorf("NUMA nodes hold %d cores, want >= 1", cores)
	}
	if got.GPUInfo == nil {
		t.Error("GPUInfo is nil, want a non-nil slice")
	}
	t.Logf("detected %d cores, %d bytes, NUMA %+v, %d GPUs", got.TotalCores, got.MemoryTotalBytes, got.NUMATopology, len(got.GPUInfo))
}

// TestDetect_NvidiaSMIFromPATH checks that an empty Config.NvidiaSMI finds
// nvidia-smi in PATH, and that an empty PATH means no GPUs.
func TestDetect_NvidiaSMIFromPATH(t *testing.T) {
	dir, err := filepath.Abs("testdata")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		path string
		want []fsm.GPUInfo
	}{
		{name: "in PATH", path: dir, want: fixtureGPUs},
		{name: "not in PATH", path: t.TempDir(), want: []fsm.GPUInfo{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("PATH", tc.path)
			cfg := fixtureConfig("none", "")
			cfg.NvidiaSMI = ""
			got, err := Detect(cfg)
			if err != nil {
				t.Fatalf("Detect: %v", err)
			}
			if !reflect.DeepEqual(got.GPUInfo, tc.want) {
				t.Errorf("GPUInfo:\n got %+v\nwant %+v", got.GPUInfo, tc.want)
			}
		})
	}
}
