package fsm

import (
	"fmt"
	"time"
)

// VPS lifecycle (issue 18): a running VPS can be stopped, which keeps its
// container (and disk) on its node but releases the task's resources, and
// started again on the same node.
//
//	running/paused --VPSStop--> stopped --VPSStart--> assigning (Restarting)
//	     ^                                                |
//	     +------------- runner reports running -----------+
//
// A stopped task is not final, but it is not active either (Active and the
// resource accounting built on it leave it out): it holds no cores, memory
// or GPUs, the scheduler never places it, reconciliation never loses it and
// a node going offline leaves it stopped. It keeps AssignedNode, the node
// its container lives on. A restart that the runner refuses (the container
// is gone) returns it to stopped with the runner's reason (VPSStop from
// assigning with Restarting set).

// VPSStop marks a VPS stopped: its runner has stopped (not removed) its
// container. Allowed from running or paused, and from assigning while the
// task is Restarting (a failed restart). Stopping a stopped task is a no-op.
type VPSStop struct {
	TaskID  int64     `json:"task_id,string"`
	Message string    `json:"message,omitempty"`
	At      time.Time `json:"at"`
}

// VPSStart places a stopped VPS again on the node its container lives on
// (AssignedNode): it becomes assigning with Restarting set, and the leader's
// dispatcher asks that runner to start the existing container. GPUs and
// NUMA are the placement's, as the leader checked them free; the node must
// be online.
type VPSStart struct {
	TaskID int64     `json:"task_id,string"`
	GPUs   []int     `json:"gpus,omitempty"`
	NUMA   *int      `json:"numa,omitempty"`
	At     time.Time `json:"at"`
}

// Type implements Command.
func (*VPSStop) Type() CommandType { return CmdVPSStop }

// Type implements Command.
func (*VPSStart) Type() CommandType { return CmdVPSStart }

// Holds reports whether a task in status s is active: queued for, or
// holding, a node's resources (not final and not stopped).
func (s Status) Holds() bool { return !s.Final() && s != StatusStopped }

func (m *Machine) applyVPSStop(c *VPSStop) Result {
	old, ok := m.tasks[c.TaskID]
	if !ok {
		return Result{Err: fmt.Errorf("%w: task %d", ErrNotFound, c.TaskID)}
	}
	if old.TaskType != TaskVPS {
		return Result{Err: fmt.Errorf("%w: task %d is not a VPS", ErrInvalid, c.TaskID)}
	}
	if old.Status == StatusStopped {
		return Result{Value: old}
	}
	switch {
	case old.Status == StatusRunning, old.Status == StatusPaused:
	case old.Status == StatusAssigning && old.Restarting:
	default:
		return Result{Err: fmt.Errorf("%w: VPS %d cannot be stopped (state: %s)", ErrConflict, c.TaskID, old.Status)}
	}
	t := old.clone()
	t.Status = StatusStopped
	t.Restarting = false
	t.SSHPort = 0
	at := c.At
	t.StoppedAt = &at
	t.ErrorMessage = c.Message
	m.putTask(t)
	return Result{Value: t}
}

func (m *Machine) applyVPSStart(c *VPSStart) Result {
	old, ok := m.tasks[c.TaskID]
	if !ok {
		return Result{Err: fmt.Errorf("%w: task %d", ErrNotFound, c.TaskID)}
	}
	if old.Status != StatusStopped {
		return Result{Err: fmt.Errorf("%w: VPS %d is %s, not stopped", ErrConflict, c.TaskID, old.Status)}
	}
	n, ok := m.nodes[old.AssignedNode]
	if !ok {
		return Result{Err: fmt.Errorf("%w: node %q of VPS %d", ErrNotFound, old.AssignedNode, c.TaskID)}
	}
	if n.Status != NodeOnline {
		return Result{Err: fmt.Errorf("%w: node %s of VPS %d is %s", ErrConflict, n.Hostname, c.TaskID, n.Status)}
	}
	t := old.clone()
	t.Status = StatusAssigning
	t.Restarting = true
	t.ErrorMessage = ""
	t.RequiredGPUs = append([]int(nil), c.GPUs...)
	if c.NUMA != nil {
		v := *c.NUMA
		t.TargetNUMANodeID = &v
	}
	t.SuspicionCount = 0
	t.Placements = addPlacement(old.Placements, NewPlacement(n.Hostname, c.At, PlacementPlaced))
	m.putTask(t)
	return Result{Value: t}
}
