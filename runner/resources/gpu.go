package resources

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/hakuriver/hakuriver-ha/fsm"
)

// gpuQuery is the --query-gpu field list; parseGPULine reads the fields in
// this order.
const gpuQuery = "index,name,driver_version,pci.bus_id,utilization.gpu,clocks.gr," +
	"utilization.memory,clocks.mem,memory.total,memory.used,memory.free," +
	"temperature.gpu,fan.speed,power.draw,power.limit"

// gpuFields is the number of fields in gpuQuery.
const gpuFields = 15

// gpuArgs are the nvidia-smi arguments of a GPU query.
func gpuArgs() []string {
	return []string{"--query-gpu=" + gpuQuery, "--format=csv,noheader,nounits"}
}

// queryGPUs runs nvidia-smi (path, or "nvidia-smi" from PATH when empty) and
// parses its output. A missing executable, or nvidia-smi reporting that it
// found no devices, gives an empty list and no error. Every other failure
// wraps ErrGPUQuery.
func queryGPUs(ctx context.Context, path string) ([]fsm.GPUInfo, error) {
	bin, ok := findNvidiaSMI(path)
	if !ok {
		return []fsm.GPUInfo{}, nil
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, gpuArgs()...)
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	// Do not wait for grandchildren holding the pipes once ctx kills it.
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	if noDevices(stdout.String()) || noDevices(stderr.String()) {
		return []fsm.GPUInfo{}, nil
	}
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			err = ctxErr
		}
		return []fsm.GPUInfo{}, fmt.Errorf("%w: run %s: %w%s", ErrGPUQuery, bin, err, outputDetail(&stdout, &stderr))
	}
	gpus, err := parseGPUCSV(stdout.String())
	if err != nil {
		return []fsm.GPUInfo{}, fmt.Errorf("%w: parse %s output: %w", ErrGPUQuery, bin, err)
	}
	return gpus, nil
}

// findNvidiaSMI resolves the nvidia-smi executable (a bare name is looked up
// in PATH) and reports whether it exists.
func findNvidiaSMI(path string) (string, bool) {
	if path == "" {
		path = "nvidia-smi"
	}
	if !strings.ContainsRune(path, os.PathSeparator) {
		bin, err := exec.LookPath(path)
		return bin, err == nil
	}
	_, err := os.Stat(path)
	// Any other Stat error is left for the run to report.
	return path, !errors.Is(err, fs.ErrNotExist)
}

// noDevices reports whether nvidia-smi output says the machine has no GPU
// (nvidia-smi then exits non-zero).
func noDevices(out string) bool {
	return strings.Contains(out, "No devices were found")
}

// outputDetail returns ": <first line of output>" for an error message,
// preferring stderr; nvidia-smi prints most of its errors on stdout.
func outputDetail(stdout, stderr *bytes.Buffer) string {
	out := strings.TrimSpace(stderr.String())
	if out == "" {
		out = strings.TrimSpace(stdout.String())
	}
	if out == "" {
		return ""
	}
	line, _, _ := strings.Cut(out, "\n") // the rest is usually advice
	return ": " + strings.TrimSpace(line)
}

// parseGPUCSV parses the output of the gpuArgs query, one GPU per line.
// Unavailable numeric values ("[N/A]", "[Not Supported]", "N/A", any other
// bracketed value, or nothing) become -1.
func parseGPUCSV(out string) ([]fsm.GPUInfo, error) {
	gpus := []fsm.GPUInfo{}
	lineNo := 0
	for line := range strings.Lines(out) {
		lineNo++
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		g, err := parseGPULine(strings.Split(line, ","))
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", lineNo, err)
		}
		gpus = append(gpus, g)
	}
	return gpus, nil
}

// parseGPULine parses the fields of one output line, in gpuQuery order.
func parseGPULine(f []string) (fsm.GPUInfo, error) {
	if len(f) != gpuFields {
		return fsm.GPUInfo{}, fmt.Errorf("got %d fields, want %d", len(f), gpuFields)
	}
	for i := range f {
		f[i] = strings.TrimSpace(f[i])
	}
	p := gpuFieldParser{fields: f}
	g := fsm.GPUInfo{
		GPUID:            p.int(0),
		Name:             f[1],
		DriverVersion:    f[2],
		PCIBusID:         f[3],
		GPUUtilization:   p.int(4),
		GraphicsClockMHz: p.int(5),
		MemUtilization:   p.int(6),
		MemClockMHz:      p.int(7),
		MemoryTotalMiB:   p.float(8),
		MemoryUsedMiB:    p.float(9),
		MemoryFreeMiB:    p.float(10),
		Temperature:      p.int(11),
		FanSpeed:         p.int(12),
		PowerUsageMW:     p.milli(13),
		PowerLimitMW:     p.milli(14),
	}
	return g, p.err
}

// gpuFieldParser converts numeric fields of one line, keeping the first
// error.
type gpuFieldParser struct {
	fields []string
	err    error
}

// float returns field i, or -1 when it is unavailable or invalid.
func (p *gpuFieldParser) float(i int) float64 {
	v := p.fields[i]
	if unavailable(v) {
		return -1
	}
	n, err := strconv.ParseFloat(v, 64)
	if err != nil || math.IsNaN(n) || math.IsInf(n, 0) {
		if p.err == nil {
			p.err = fmt.Errorf("field %d (%s): invalid number %q", i+1, strings.Split(gpuQuery, ",")[i], v)
		}
		return -1
	}
	return n
}

// int returns field i rounded to an integer, or -1.
func (p *gpuFieldParser) int(i int) int {
	n := p.float(i)
	if n == -1 {
		return -1
	}
	return int(math.Round(n))
}

// milli returns field i (watts) in thousandths (milliwatts), or -1.
func (p *gpuFieldParser) milli(i int) int {
	n := p.float(i)
	if n == -1 {
		return -1
	}
	return int(math.Round(n * 1000))
}

// unavailable reports whether an nvidia-smi value means "no value".
func unavailable(v string) bool {
	return v == "" || v == "N/A" || (strings.HasPrefix(v, "[") && strings.HasSuffix(v, "]"))
}
