// Package resources discovers what a runner machine offers and how busy it
// is: Detect reads the static facts a runner registers with (cores, memory,
// NUMA topology, GPUs) and a Sampler reads the live figures each heartbeat
// carries (CPU and memory use, temperatures, GPU utilisation).
//
// Everything is read from procfs and sysfs below configurable roots, and GPUs
// come from the nvidia-smi executable, so tests can point the package at
// fixture trees and a fake nvidia-smi. The package uses only the standard
// library and keeps no package-level state.
package resources

import (
	"fmt"
	"path/filepath"
	"time"
)

// DefaultGPUTimeout bounds one nvidia-smi run when Config.GPUTimeout is zero.
const DefaultGPUTimeout = 5 * time.Second

// Config says where Detect and a Sampler read the machine from. The zero
// value reads the real machine with default settings.
type Config struct {
	// SysRoot is the directory under which sys/ is read ("/" when empty), so
	// NUMA nodes come from SysRoot/sys/devices/system/node.
	SysRoot string
	// ProcRoot is the directory under which proc/ is read (SysRoot when
	// empty), so memory comes from ProcRoot/proc/meminfo.
	ProcRoot string
	// NvidiaSMI is the nvidia-smi executable. Empty means "nvidia-smi" looked
	// up in PATH. When the executable does not exist the machine has no GPUs.
	NvidiaSMI string
	// GPUTimeout bounds one nvidia-smi run (DefaultGPUTimeout when zero).
	GPUTimeout time.Duration
	// Cores overrides the detected core count when positive.
	Cores int
	// MemoryBytes overrides the detected total memory when positive. It
	// affects Detect only: live samples always report the real figures.
	MemoryBytes int64
}

// DefaultConfig returns the configuration that reads the real machine.
func DefaultConfig() Config {
	return Config{SysRoot: "/", GPUTimeout: DefaultGPUTimeout}
}

// Validate reports the first invalid field of c.
func (c Config) Validate() error {
	switch {
	case c.Cores < 0:
		return fmt.Errorf("resources config: cores %d is negative", c.Cores)
	case c.MemoryBytes < 0:
		return fmt.Errorf("resources config: memory bytes %d is negative", c.MemoryBytes)
	case c.GPUTimeout < 0:
		return fmt.Errorf("resources config: gpu timeout %s is negative", c.GPUTimeout)
	}
	return nil
}

// withDefaults fills in the documented defaults of empty fields.
func (c Config) withDefaults() Config {
	if c.SysRoot == "" {
		c.SysRoot = "/"
	}
	if c.ProcRoot == "" {
		c.ProcRoot = c.SysRoot
	}
	if c.GPUTimeout == 0 {
		c.GPUTimeout = DefaultGPUTimeout
	}
	return c
}

// sysPath returns the path of rel (relative to /sys) under SysRoot.
func (c Config) sysPath(rel string) string {
	return filepath.Join(c.SysRoot, "sys", rel)
}

// procPath returns the path of rel (relative to /proc) under ProcRoot.
func (c Config) procPath(rel string) string {
	return filepath.Join(c.ProcRoot, "proc", rel)
}
