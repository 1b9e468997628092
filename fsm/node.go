package fsm

import "time"

// NodeStatus is a runner node's liveness as committed to the log.
type NodeStatus string

// Node statuses.
const (
	NodeOnline  NodeStatus = "online"
	NodeOffline NodeStatus = "offline"
)

// NUMANode describes one NUMA node of a runner.
type NUMANode struct {
	Cores       []int `json:"cores"`
	MemoryBytes int64 `json:"memory_bytes"`
}

// GPUInfo describes one GPU of a runner, with the original's field names.
// Unavailable values are -1.
type GPUInfo struct {
	GPUID            int     `json:"gpu_id"`
	Name             string  `json:"name"`
	DriverVersion    string  `json:"driver_version"`
	PCIBusID         string  `json:"pci_bus_id"`
	GPUUtilization   int     `json:"gpu_utilization"`
	GraphicsClockMHz int     `json:"graphics_clock_mhz"`
	MemUtilization   int     `json:"mem_utilization"`
	MemClockMHz      int     `json:"mem_clock_mhz"`
	MemoryTotalMiB   float64 `json:"memory_total_mib"`
	MemoryUsedMiB    float64 `json:"memory_used_mib"`
	MemoryFreeMiB    float64 `json:"memory_free_mib"`
	Temperature      int     `json:"temperature"`
	FanSpeed         int     `json:"fan_speed"`
	PowerUsageMW     int     `json:"power_usage_mw"`
	PowerLimitMW     int     `json:"power_limit_mw"`
}

// Node is a registered runner. Live figures (CPU %, temperatures, GPU
// utilisation) are not part of the replicated state: the leader keeps them in
// memory. Like tasks, stored nodes are never mutated in place.
type Node struct {
	Hostname         string     `json:"hostname"`
	URL              string     `json:"url"`
	TotalCores       int        `json:"total_cores"`
	MemoryTotalBytes int64      `json:"memory_total_bytes"`
	Status           NodeStatus `json:"status"`
	Drained          bool       `json:"drained"`
	// DrainReason is the reason given with the drain, if any.
	DrainReason string `json:"drain_reason,omitempty"`
	// DrainedBy names the principal who drained the node and DrainedAt
	// when, if the drain recorded them (drains committed before these
	// fields existed did not).
	DrainedBy       string              `json:"drained_by,omitempty"`
	DrainedAt       *time.Time          `json:"drained_at,omitempty"`
	RegisteredAt    time.Time           `json:"registered_at"`
	StatusChangedAt time.Time           `json:"status_changed_at"`
	NUMATopology    map[string]NUMANode `json:"numa_topology"`
	GPUInfo         []GPUInfo           `json:"gpu_info"`
	CgroupsLimited  bool                `json:"cgroups_limited"`
}

func (n *Node) clone() *Node {
	c := *n
	if n.DrainedAt != nil {
		at := *n.DrainedAt
		c.DrainedAt = &at
	}
	c.GPUInfo = append([]GPUInfo(nil), n.GPUInfo...)
	if n.NUMATopology != nil {
		c.NUMATopology = make(map[string]NUMANode, len(n.NUMATopology))
		for k, v := range n.NUMATopology {
			v.Cores = append([]int(nil), v.Cores...)
			c.NUMATopology[k] = v
		}
	}
	return &c
}
