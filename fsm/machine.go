package fsm

import (
	"fmt"
	"sort"
	"sync"
	"time"
)

// Result is what applying one command returns. Err carries business
// rejections (wrapping ErrNotFound, ErrConflict or ErrInvalid); the state is
// unchanged whenever Err is set.
type Result struct {
	Value any
	Err   error
}

// SubmitResult is the Value of a successful SubmitTasks.
type SubmitResult struct {
	TaskIDs   []int64
	Duplicate bool // true when RequestID had been seen and nothing was created
	// Placed lists the new tasks a SubmitPlaced also placed.
	Placed []int64
}

// Machine is the replicated state. Apply must be called from one goroutine at
// a time (Raft does so); the read methods are safe to call concurrently with it.
type Machine struct {
	mu       sync.RWMutex
	tasks    map[int64]*Task
	order    []int64 // task IDs, ascending
	nodes    map[string]*Node
	requests map[string][]int64
	// partial holds the split submits not yet complete (submitpart.go).
	partial  map[string]*partSubmit
	reqQueue []requestKey // request IDs by submit time, for pruning
	counts   map[Status]int
	active   []int64 // IDs of tasks in a status that Holds, ascending
	// retrying holds the IDs of tasks with Task.RetryPending, ascending.
	retrying []int64
	envs     map[string]Environment
	tarballs map[string]TarballRecord
	// snaps holds the VPS snapshots by name (vpssnap.go).
	snaps map[string]VPSSnapshot
	// clusterID is set once (SetClusterID).
	clusterID string
	// notifyTargets are the registered webhook targets (notify.go).
	notifyTargets map[string]time.Time
	acct          accounts
	// audit holds the audit records, oldest first (audit.go).
	audit   []AuditRecord
	maxID   int64
	applied uint64
	// arch holds the archived tasks (archive.go), nil without one;
	// archCounts counts them by status and archIndex is the last
	// ArchiveTasks entry applied. archSynced is set once Restore or a
	// first Apply made the archive agree with the state. archTemp is the
	// directory of a temporary archive (ReadSnapshot), removed by Close.
	arch       *Archive
	archCounts map[Status]int
	archIndex  uint64
	archSynced bool
	archTemp   string
	archErr    func(error)
	// restoring is set on the fresh Machine a snapshot is decoded into.
	restoring *archiveRestore
	// halt is set by the first entry that cannot be read; from then on
	// nothing is applied (see ErrHalted).
	halt *EntryError
}

// New returns an empty Machine.
func New() *Machine {
	m := &Machine{}
	m.reset()
	return m
}

func (m *Machine) reset() {
	m.tasks = make(map[int64]*Task)
	m.order = nil
	m.nodes = make(map[string]*Node)
	m.requests = make(map[string][]int64)
	m.partial = make(map[string]*partSubmit)
	m.reqQueue = nil
	m.counts = make(map[Status]int)
	m.active = nil
	m.retrying = nil
	m.envs = make(map[string]Environment)
	m.tarballs = make(map[string]TarballRecord)
	m.snaps = make(map[string]VPSSnapshot)
	m.clusterID = ""
	m.notifyTargets = make(map[string]time.Time)
	m.acct = newAccounts()
	m.audit = nil
	m.maxID = 0
	m.applied = 0
	m.halt = nil
	m.archCounts = make(map[Status]int)
	m.archIndex = 0
}

// Apply decodes and applies one log entry at the given index.
func (m *Machine) Apply(index uint64, data []byte) Result {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.applyLocked(index, data)
}

// ApplyBatch applies several consecutive entries under one lock.
func (m *Machine) ApplyBatch(indexes []uint64, data [][]byte) []Result {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Result, len(data))
	for i := range data {
		out[i] = m.applyLocked(indexes[i], data[i])
	}
	return out
}

func (m *Machine) applyLocked(index uint64, data []byte) Result {
	if m.halt != nil {
		return Result{Err: m.halt}
	}
	c, ok, err := Decode(data)
	if err != nil {
		var t CommandType
		if len(data) > 0 {
			t = CommandType(data[0])
		}
		m.halt = &EntryError{Index: index, Type: t, Err: err}
		return Result{Err: m.halt}
	}
	if !m.archSynced && m.arch != nil {
		if err := m.syncArchive(); err != nil {
			m.halt = &EntryError{Index: index, Type: CommandType(data[0]), Err: fmt.Errorf("empty the archive: %w", err)}
			return Result{Err: m.halt}
		}
	}
	if index > m.applied {
		m.applied = index
	}
	if !ok {
		return Result{}
	}
	if a, isAudit := c.(*Audited); isAudit {
		if !a.innerOK {
			return Result{} // an ignorable command of a newer build
		}
		return m.applyAudited(index, a, a.inner)
	}
	return m.applyCommand(index, c)
}

// applyCommand applies one decoded command other than Audited.
func (m *Machine) applyCommand(index uint64, c Command) Result {
	switch c := c.(type) {
	case *SubmitTasks:
		return m.applySubmit(c)
	case *UpdateTask:
		return m.applyUpdate(c)
	case *KillTask:
		return m.applyKill(c)
	case *RegisterNode:
		return m.applyRegister(c)
	case *SetNodeStatus:
		return m.applyNodeStatus(c)
	case *AssignTask:
		return m.applyAssign(c)
	case *SetNodeDrain:
		return m.applyDrain(c)
	case *SetEnvironment:
		return m.applySetEnvironment(c)
	case *SetClusterID:
		return m.applySetClusterID(c)
	case *BootstrapAuth:
		return m.applyBootstrap(c)
	case *PutUser:
		return m.applyPutUser(c)
	case *RemoveUser:
		return m.applyRemoveUser(c)
	case *PutGroup:
		return m.applyPutGroup(c)
	case *RemoveGroup:
		return m.applyRemoveGroup(c)
	case *CreateToken:
		return m.addToken(c.Token)
	case *RevokeToken:
		return m.applyRevokeToken(c)
	case *Record:
		return Result{}
	case *AssignTasks:
		return m.applyAssignTasks(c)
	case *UpdateTasks:
		return m.applyUpdateTasks(c)
	case *ReportTasks:
		return m.applyReportTasks(c)
	case *SubmitPlaced:
		return m.applySubmitPlaced(c)
	case *NotifyDelivered:
		return m.applyNotifyDelivered(c)
	case *VPSStop:
		return m.applyVPSStop(c)
	case *VPSStart:
		return m.applyVPSStart(c)
	case *SetVPSSnapshot:
		return m.applySetVPSSnapshot(c)
	case *RetryTask:
		return m.applyRetry(c)
	case *ArchiveTasks:
		return m.applyArchive(index, c)
	case *SubmitPart:
		return m.applySubmitPart(c)
	}
	return Result{Err: fmt.Errorf("%w: unhandled command %T", ErrInvalid, c)}
}

// Halted returns the error of the entry that halted the Machine (matching
// ErrHalted), or nil while it applies entries.
func (m *Machine) Halted() error {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.halt == nil {
		return nil
	}
	return m.halt
}

// putTask stores t, keeping the status counts and the ID order up to date.
func (m *Machine) putTask(t *Task) {
	if old, ok := m.tasks[t.TaskID]; ok {
		noteAttemptEnd(old, t)
		m.counts[old.Status]--
	} else {
		n := len(m.order)
		if n == 0 || m.order[n-1] < t.TaskID {
			m.order = append(m.order, t.TaskID)
		} else {
			i := sort.Search(n, func(i int) bool { return m.order[i] >= t.TaskID })
			m.order = append(m.order, 0)
			copy(m.order[i+1:], m.order[i:])
			m.order[i] = t.TaskID
		}
		if t.TaskID > m.maxID {
			m.maxID = t.TaskID
		}
	}
	m.tasks[t.TaskID] = t
	m.counts[t.Status]++
	m.active = setActive(m.active, t.TaskID, t.Status.Holds())
	if t.Retries > 0 {
		m.setRetrying(t)
	}
}

func (m *Machine) applySubmit(c *SubmitTasks) Result {
	if c.RequestID != "" {
		if ids, ok := m.requests[c.RequestID]; ok {
			return Result{Value: SubmitResult{TaskIDs: append([]int64(nil), ids...), Duplicate: true}}
		}
		if _, split := m.partial[c.RequestID]; split {
			// Only a leader that lost track of an upgrade sends this: the
			// parts committed would be created a second time.
			return Result{Err: fmt.Errorf("%w: request %s is being submitted in parts", ErrConflict, c.RequestID)}
		}
	}
	if err := m.checkNewTasks(c.Tasks); err != nil {
		return Result{Err: err}
	}
	ids := m.createTasks(c.Tasks, c.RequestID, nil)
	at := c.Tasks[0].SubmittedAt
	if c.RequestID != "" {
		m.requests[c.RequestID] = ids
		m.addRequest(requestKey{at: at, id: c.RequestID})
	}
	m.pruneRequests(at.Add(-RequestRetention))
	return Result{Value: SubmitResult{TaskIDs: append([]int64(nil), ids...)}}
}

// checkNewTasks checks the tasks a submit creates: at least one, each with
// an ID no task has and a valid initial status.
func (m *Machine) checkNewTasks(tasks []*Task) error {
	if len(tasks) == 0 {
		return fmt.Errorf("%w: submit with no tasks", ErrInvalid)
	}
	seen := make(map[int64]bool, len(tasks))
	for _, t := range tasks {
		if t == nil || t.TaskID <= 0 {
			return fmt.Errorf("%w: task without an ID", ErrInvalid)
		}
		if _, dup := m.tasks[t.TaskID]; dup || seen[t.TaskID] {
			return fmt.Errorf("%w: task ID %d already exists", ErrInvalid, t.TaskID)
		}
		if !t.Status.Valid() || t.Status.Final() && t.Status != StatusFailed {
			return fmt.Errorf("%w: task %d: initial status %q", ErrInvalid, t.TaskID, t.Status)
		}
		seen[t.TaskID] = true
	}
	return nil
}

// createTasks stores copies of tasks checked by checkNewTasks, recording
// requestID on each (and batch, when not nil, as its batch ID), and
// returns their IDs in order.
func (m *Machine) createTasks(tasks []*Task, requestID string, batch *int64) []int64 {
	ids := make([]int64, 0, len(tasks))
	for _, t := range tasks {
		nt := t.clone()
		nt.RequestID = requestID
		if batch != nil {
			nt.BatchID = *batch
		}
		m.putTask(nt)
		ids = append(ids, nt.TaskID)
	}
	return ids
}

func (m *Machine) applyUpdate(c *UpdateTask) Result {
	old, ok := m.tasks[c.TaskID]
	if !ok {
		// An archived task is final: a retried report of its end is a
		// no-op, anything else a conflict, as before it was archived.
		if t, archived := m.archived(c.TaskID); archived {
			if t.Status == c.Status {
				return Result{Value: t}
			}
			return Result{Err: fmt.Errorf("%w: task %d cannot move from %s to %s", ErrConflict, c.TaskID, t.Status, c.Status)}
		}
		return Result{Err: fmt.Errorf("%w: task %d", ErrNotFound, c.TaskID)}
	}
	if err := checkAttempt(old, c.Attempt); err != nil {
		return Result{Err: err}
	}
	if old.Status == c.Status && (c.SSHPort == 0 || old.Status.Final()) {
		return Result{Value: old} // a retried report: nothing to do; a final task never changes
	}
	if !c.Status.Valid() || c.Status == StatusStopped {
		// stopped is VPSStop's alone (vps.go), never a runner's report
		return Result{Err: fmt.Errorf("%w: task %d: unknown status %q", ErrInvalid, c.TaskID, c.Status)}
	}
	if old.Status != c.Status && !old.Status.CanMoveTo(c.Status) {
		return Result{Err: fmt.Errorf("%w: task %d cannot move from %s to %s", ErrConflict, c.TaskID, old.Status, c.Status)}
	}
	t := old.clone()
	t.Status = c.Status
	if ev, ok := placementFor(old.Status, c.Status); ok && old.AssignedNode != "" {
		at := c.At
		if ev == PlacementStarted && c.StartedAt != nil {
			at = *c.StartedAt
		}
		t.Placements = addPlacement(old.Placements, NewPlacement(old.AssignedNode, at, ev))
	}
	if c.ExitCode != nil {
		v := *c.ExitCode
		t.ExitCode = &v
	}
	if c.Message != nil {
		t.ErrorMessage = *c.Message
	}
	if c.SSHPort != 0 {
		t.SSHPort = c.SSHPort
	}
	if t.StartedAt == nil && (c.StartedAt != nil || c.Status == StatusRunning) {
		at := c.At
		if c.StartedAt != nil {
			at = *c.StartedAt
		}
		t.StartedAt = &at
	}
	if c.Status.Final() {
		at := c.At
		if c.CompletedAt != nil {
			at = *c.CompletedAt
		}
		t.CompletedAt = &at
	}
	if c.Status != StatusAssigning {
		t.Restarting = false // a restart ends when the VPS runs (or ends)
	}
	if c.Status == StatusPending {
		// Back in the queue: the placement is dropped, but RequiredGPUs
		// stays, since it also holds the GPUs the user asked for.
		t.AssignedNode = ""
		t.SuspicionCount = 0
	}
	m.putTask(t)
	return Result{Value: t}
}

func (m *Machine) applyKill(c *KillTask) Result {
	old, ok := m.tasks[c.TaskID]
	if !ok {
		if t, archived := m.archived(c.TaskID); archived {
			return Result{Err: fmt.Errorf("%w: task %d cannot be killed (state: %s)", ErrConflict, c.TaskID, t.Status)}
		}
		return Result{Err: fmt.Errorf("%w: task %d", ErrNotFound, c.TaskID)}
	}
	if old.RetryPending() {
		// Its attempt ended and a retry was due: killing stops retries.
		t := old.clone()
		t.NoRetry = true
		t.KillRequestID = c.RequestID
		m.putTask(t)
		return Result{Value: t}
	}
	if old.Status.Final() {
		return Result{Err: fmt.Errorf("%w: task %d cannot be killed (state: %s)", ErrConflict, c.TaskID, old.Status)}
	}
	t := old.clone()
	t.Status = StatusKilled
	t.ErrorMessage = c.Message
	t.KillRequestID = c.RequestID
	at := c.At
	t.CompletedAt = &at
	m.putTask(t)
	return Result{Value: t}
}

func (m *Machine) applyRegister(c *RegisterNode) Result {
	if c.Node == nil || c.Node.Hostname == "" {
		return Result{Err: fmt.Errorf("%w: node without a hostname", ErrInvalid)}
	}
	n := c.Node.clone()
	n.Status = NodeOnline
	n.StatusChangedAt = c.At
	n.RegisteredAt = c.At
	if old, ok := m.nodes[n.Hostname]; ok {
		n.Drained, n.DrainReason, n.DrainedBy, n.DrainedAt = old.Drained, old.DrainReason, old.DrainedBy, old.DrainedAt
		n.RegisteredAt = old.RegisteredAt
		if old.Status == NodeOnline {
			n.StatusChangedAt = old.StatusChangedAt
		}
	}
	m.nodes[n.Hostname] = n
	return Result{Value: n}
}

func (m *Machine) applyNodeStatus(c *SetNodeStatus) Result {
	old, ok := m.nodes[c.Hostname]
	if !ok {
		return Result{Err: fmt.Errorf("%w: node %s", ErrNotFound, c.Hostname)}
	}
	if c.Status != NodeOnline && c.Status != NodeOffline {
		return Result{Err: fmt.Errorf("%w: node status %q", ErrInvalid, c.Status)}
	}
	if old.Status == c.Status {
		return Result{Value: old}
	}
	n := old.clone()
	n.Status = c.Status
	n.StatusChangedAt = c.At
	m.nodes[n.Hostname] = n
	if c.Status == NodeOffline {
		msg := fmt.Sprintf("Node %s went offline (heartbeat timeout).", c.Hostname)
		exit := -1
		for _, id := range m.order {
			t := m.tasks[id]
			if t.AssignedNode != c.Hostname || !t.Status.Holds() || t.Status == StatusPending {
				continue
			}
			if t.Restarting {
				// A stopped VPS being started again: its container is
				// still kept on the node, so it is stopped again.
				st := t.clone()
				st.Status, st.Restarting, st.ErrorMessage = StatusStopped, false, msg
				at := c.At
				st.StoppedAt = &at
				m.putTask(st)
				continue
			}
			lt := t.clone()
			lt.Status = StatusLost
			lt.ErrorMessage = msg
			lt.ExitCode = &exit
			at := c.At
			lt.CompletedAt = &at
			lt.Placements = addPlacement(t.Placements, NewPlacement(n.Hostname, c.At, PlacementLost))
			m.putTask(lt)
		}
	}
	return Result{Value: n}
}

func (m *Machine) applyAssign(c *AssignTask) Result {
	old, ok := m.tasks[c.TaskID]
	if !ok {
		return Result{Err: fmt.Errorf("%w: task %d", ErrNotFound, c.TaskID)}
	}
	n, ok := m.nodes[c.Node]
	if !ok {
		return Result{Err: fmt.Errorf("%w: node %s", ErrNotFound, c.Node)}
	}
	if old.Status != StatusPending {
		return Result{Err: fmt.Errorf("%w: task %d is %s, not pending", ErrConflict, c.TaskID, old.Status)}
	}
	if n.Status != NodeOnline {
		return Result{Err: fmt.Errorf("%w: node %s is %s", ErrConflict, c.Node, n.Status)}
	}
	t := old.clone()
	t.Status = StatusAssigning
	t.AssignedNode = n.Hostname // shares the node record's string
	t.Placements = addPlacement(old.Placements, NewPlacement(n.Hostname, c.At, PlacementPlaced))
	t.RequiredGPUs = append([]int(nil), c.GPUs...)
	if c.NUMA != nil {
		v := *c.NUMA
		t.TargetNUMANodeID = &v
	}
	t.SuspicionCount = 0
	m.putTask(t)
	return Result{Value: t}
}

func (m *Machine) applyDrain(c *SetNodeDrain) Result {
	old, ok := m.nodes[c.Hostname]
	if !ok {
		return Result{Err: fmt.Errorf("%w: node %s", ErrNotFound, c.Hostname)}
	}
	n := old.clone()
	n.Drained = c.Drained
	n.DrainReason, n.DrainedBy, n.DrainedAt = "", "", nil
	if c.Drained {
		n.DrainReason, n.DrainedBy = c.Reason, c.By
		if !c.At.IsZero() {
			at := c.At
			n.DrainedAt = &at
		}
	}
	m.nodes[n.Hostname] = n
	return Result{Value: n}
}

// setActive adds id to (on) or removes it from (!on) the sorted slice ids.
// IDs arrive mostly in increasing order, so adding is usually an append.
func setActive(ids []int64, id int64, on bool) []int64 {
	n := len(ids)
	i := n
	if n > 0 && ids[n-1] >= id {
		i = sort.Search(n, func(i int) bool { return ids[i] >= id })
	}
	present := i < n && ids[i] == id
	switch {
	case on && !present:
		ids = append(ids, 0)
		copy(ids[i+1:], ids[i:])
		ids[i] = id
	case !on && present:
		ids = append(ids[:i], ids[i+1:]...)
	}
	return ids
}

// RequestRetention is how long a submit's request ID is remembered: a retry
// after that creates new tasks. Pruning uses the submit times stamped into
// the commands, so every replica forgets the same IDs at the same entry.
const RequestRetention = 24 * time.Hour

// requestKey orders remembered request IDs by submit time, then ID.
type requestKey struct {
	at time.Time
	id string
}

func (k requestKey) less(o requestKey) bool {
	if !k.at.Equal(o.at) {
		return k.at.Before(o.at)
	}
	return k.id < o.id
}

// addRequest inserts k keeping reqQueue sorted (usually an append).
func (m *Machine) addRequest(k requestKey) {
	n := len(m.reqQueue)
	i := sort.Search(n, func(i int) bool { return k.less(m.reqQueue[i]) })
	m.reqQueue = append(m.reqQueue, requestKey{})
	copy(m.reqQueue[i+1:], m.reqQueue[i:])
	m.reqQueue[i] = k
}

// removeRequest deletes k from reqQueue.
func (m *Machine) removeRequest(k requestKey) {
	i := sort.Search(len(m.reqQueue), func(i int) bool { return !m.reqQueue[i].less(k) })
	if i < len(m.reqQueue) && m.reqQueue[i].id == k.id && m.reqQueue[i].at.Equal(k.at) {
		m.reqQueue = append(m.reqQueue[:i], m.reqQueue[i+1:]...)
	}
}

// pruneRequests forgets request IDs submitted before cutoff.
func (m *Machine) pruneRequests(cutoff time.Time) {
	i := 0
	for i < len(m.reqQueue) && m.reqQueue[i].at.Before(cutoff) {
		delete(m.requests, m.reqQueue[i].id)
		delete(m.partial, m.reqQueue[i].id)
		i++
	}
	m.reqQueue = m.reqQueue[i:]
}

// rebuildRequestQueue derives reqQueue from requests and the tasks' submit
// times (after a restore).
func (m *Machine) rebuildRequestQueue() {
	m.reqQueue = make([]requestKey, 0, len(m.requests))
	for id, ids := range m.requests {
		var at time.Time
		if len(ids) > 0 {
			if t, ok := m.lookup(ids[0]); ok {
				at = t.SubmittedAt
			}
		}
		m.reqQueue = append(m.reqQueue, requestKey{at: at, id: id})
	}
	for id, p := range m.partial {
		m.reqQueue = append(m.reqQueue, requestKey{at: p.At, id: id})
	}
	sort.Slice(m.reqQueue, func(i, j int) bool { return m.reqQueue[i].less(m.reqQueue[j]) })
}
