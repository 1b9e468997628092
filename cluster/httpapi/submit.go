package httpapi

import (
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/cluster/auth"
	"github.com/hakuriver/hakuriver-ha/fsm"
	"github.com/hakuriver/hakuriver-ha/ops/environment"
	"github.com/hakuriver/hakuriver-ha/scheduler"
)

// buildTasks turns a submit request that validateSubmit accepted into tasks
// (without IDs), checking what depends on the cluster's state. It reads
// only the local FSM, which on the leader is up to date.
func (a *API) buildTasks(req *api.SubmitRequest) ([]*fsm.Task, error) {
	typ := fsm.TaskType(req.TaskType)
	if typ == "" {
		typ = fsm.TaskCommand
	}
	cores := 1
	if req.RequiredCores != nil {
		cores = *req.RequiredCores
	}
	var mem int64
	if req.RequiredMemoryBytes != nil {
		mem = *req.RequiredMemoryBytes
	}
	container := a.cfg.DefaultContainer
	if req.ContainerName != nil && *req.ContainerName != "" {
		container = *req.ContainerName
		// An environment named explicitly must exist; the default one is
		// checked by the runner when it syncs (it may be created later).
		if err := a.d.Environments.CheckEnvironment(container); err != nil {
			return nil, err
		}
	}
	if typ == fsm.TaskVPS && environment.IsNative(container) {
		return nil, badRequest("container_name: VPS tasks require a Docker container")
	}
	var after fsm.IDList
	for _, s := range req.After {
		id, err := ParseTaskID(s)
		if err != nil {
			return nil, err
		}
		if _, ok := a.d.Tasks.Task(id); !ok {
			return nil, badRequest("after: task %d does not exist", id)
		}
		after = append(after, id)
	}
	indexes, throttle := []int{-1}, 0
	if len(req.ArgumentSets) > 0 {
		var err error
		if indexes, throttle, err = sweepIndexes(req); err != nil {
			return nil, err
		}
	} else if req.Array != "" {
		var err error
		if indexes, throttle, err = parseArray(req.Array); err != nil {
			return nil, badRequest("%v", err)
		}
	}
	targets := req.Targets
	if len(targets) == 0 {
		targets = []string{""}
	}
	if err := checkStoredSize(req, len(targets)*len(indexes)); err != nil {
		return nil, err
	}
	retryOn, delay := fsm.DefaultRetryOn(), time.Duration(0)
	if req.Retries > 0 {
		var err error
		if len(req.RetryOn) > 0 {
			if retryOn, err = fsm.NormalizeRetryOn(req.RetryOn); err != nil {
				return nil, badRequest("retry_on: %v", err)
			}
		}
		if delay, err = retryDelay(req.RetryDelay); err != nil {
			return nil, err
		}
	}
	tasks := make([]*fsm.Task, 0, len(targets)*len(indexes))
	for i, tg := range targets {
		for _, idx := range indexes {
			t := &fsm.Task{
				TaskType:            typ,
				Command:             req.Command,
				Arguments:           req.Arguments,
				EnvVars:             req.EnvVars,
				WorkDir:             req.WorkDir,
				RequiredCores:       cores,
				RequiredMemoryBytes: mem,
				Status:              fsm.StatusPending,
				ContainerName:       container,
				AdditionalMounts:    req.AdditionalMounts,
				Priority:            req.Priority,
				GPUCount:            req.GPUCount,
				TimeLimitSeconds:    req.TimeLimitSeconds,
				After:               after,
				ArrayThrottle:       throttle,
				Name:                req.Name,
				Notify:              req.Notify,
			}
			if req.Retries > 0 {
				t.Retries, t.RetryOn, t.RetryDelayMS, t.Attempt = req.Retries, retryOn, delay.Milliseconds(), 1
			}
			if idx >= 0 {
				v := idx
				t.ArrayIndex = &v
			}
			if len(req.ArgumentSets) > 0 {
				t.Arguments = req.ArgumentSets[idx]
			}
			t.Privileged = a.cfg.TasksPrivileged
			if req.Privileged != nil {
				t.Privileged = *req.Privileged
			}
			if req.AdditionalMounts == nil {
				t.AdditionalMounts = a.cfg.AdditionalMounts // the original: the request replaces, never merges
			}
			if typ == fsm.TaskVPS {
				t.Arguments, t.EnvVars = nil, nil
			}
			if len(req.RequiredGPUs) > 0 {
				t.RequiredGPUs = req.RequiredGPUs[i]
			}
			if tg != "" {
				if err := a.resolveTarget(t, tg); err != nil {
					return nil, err
				}
			} else if err := a.checkCapacity(t); err != nil {
				return nil, err
			}
			tasks = append(tasks, t)
		}
	}
	return tasks, nil
}

// resolveTarget checks "node[:numa]" against the committed nodes and
// refuses a target that could never hold t (scheduler.Limit).
func (a *API) resolveTarget(t *fsm.Task, target string) error {
	m := api.TargetRE().FindStringSubmatch(target)
	if m == nil {
		return badRequest("target %q: expected HOST or HOST:NUMA_ID", target)
	}
	node, ok := a.d.Nodes.Node(m[1])
	if !ok {
		return badRequest("target %q: unknown node %q", target, m[1])
	}
	t.TargetNode = node.Hostname
	if m[2] != "" {
		numa, err := strconv.Atoi(m[2])
		if err != nil {
			return badRequest("target %q: invalid NUMA ID", target)
		}
		t.TargetNUMANodeID = &numa
	}
	if reason := scheduler.Limit(t, node); reason != "" {
		return badRequest("target %q: %s", target, reason)
	}
	return nil
}

// checkCapacity rejects untargeted work that no registered node could ever
// hold, naming the largest node. With no node registered, work waits.
func (a *API) checkCapacity(t *fsm.Task) error {
	nodes := a.d.Nodes.Nodes()
	if len(nodes) == 0 {
		return nil
	}
	var largest *fsm.Node
	for _, n := range nodes {
		if scheduler.Capacity(t, n) {
			return nil
		}
		if largest == nil || n.TotalCores > largest.TotalCores ||
			n.TotalCores == largest.TotalCores && n.MemoryTotalBytes > largest.MemoryTotalBytes {
			largest = n
		}
	}
	return badRequest("no registered node can ever hold this task (%d cores, %d bytes of memory, %d GPUs); the largest node, %s, has %d cores, %d bytes of memory and %d GPUs",
		t.RequiredCores, t.RequiredMemoryBytes, t.GPUCount, largest.Hostname, largest.TotalCores, largest.MemoryTotalBytes, len(largest.GPUInfo))
}

// Submit serves POST /api/submit on the leader, behind CheckSubmit.
func (a *API) Submit(w http.ResponseWriter, r *http.Request) {
	req, err := submitRequest(r)
	if err != nil {
		writeError(w, err)
		return
	}
	if req.RequestID == "" {
		req.RequestID = r.Header.Get(api.RequestIDHeader)
		if err := checkRequestID(req.RequestID); err != nil {
			writeError(w, err)
			return
		}
	}
	if ids, ok := a.d.Tasks.RequestTasks(req.RequestID); ok {
		writeJSON(w, http.StatusAccepted, a.submitResponse(ids))
		return
	}
	p := principal(r)
	sub, err := a.submitterOf(p)
	if err != nil {
		writeError(w, err)
		return
	}
	if err := checkPolicy(req, sub); err != nil {
		writeError(w, err)
		return
	}
	if req.Notify != "" {
		if err := a.checkNotify(req.Notify); err != nil {
			writeError(w, err)
			return
		}
	}
	tasks, err := a.buildTasks(req)
	if err != nil {
		writeError(w, err)
		return
	}
	if err := a.maySnapshotUse(p, tasks[0].ContainerName); err != nil {
		writeError(w, err)
		return
	}
	owner := ownerName(p)
	for _, t := range tasks {
		t.Owner = owner
	}
	if err := checkQuota(a.quotas(), tasks); err != nil {
		writeError(w, err)
		return
	}
	now := a.now().UTC()
	// A batch gets an ID of its own, issued before its tasks' IDs (so no
	// task ever takes it): a batch ID is never a task ID, and commands
	// that take either can tell them apart.
	var batch int64
	if len(tasks) > 1 {
		batch = a.d.Proposer.NextTaskID()
	}
	for i, t := range tasks {
		t.Owner = owner
		t.RunAs, t.AllowRoot = sub.runAs, sub.allowRoot
		t.TaskID = a.d.Proposer.NextTaskID()
		t.BatchID = batch
		t.SubmittedAt = now
		idStr := strconv.FormatInt(t.TaskID, 10)
		t.StdoutPath = filepath.Join(a.cfg.SharedDir, "task_outputs", idStr+".out")
		t.StderrPath = filepath.Join(a.cfg.SharedDir, "task_errors", idStr+".err")
		t.SystemdUnitName = "hakuriver-task-" + idStr + ".scope"
		tasks[i] = t
	}
	ctx, cancel := ApplyContext(r)
	defer cancel()
	v, err := a.d.Proposer.Submit(ctx, &fsm.SubmitTasks{RequestID: req.RequestID, Tasks: tasks})
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusAccepted, a.submitResponse(v.TaskIDs))
}

// checkNotify asks the replica whether a task may notify url (the
// allow-list, and every replica able to record deliveries).
func (a *API) checkNotify(url string) error {
	if a.cfg.CheckNotify == nil {
		return badRequest("notify: per-task webhook URLs are not enabled on this cluster")
	}
	return a.cfg.CheckNotify(url)
}

func (a *API) submitResponse(ids []int64) api.SubmitResponse {
	out := api.SubmitResponse{
		Message: fmt.Sprintf("Task batch submitted successfully. %d tasks created.", len(ids)),
		TaskIDs: make([]string, len(ids)),
	}
	if len(ids) > 0 {
		if t, ok := a.d.Tasks.Task(ids[0]); ok && t.BatchID != 0 {
			out.BatchID = strconv.FormatInt(t.BatchID, 10)
		}
	}
	for i, id := range ids {
		out.TaskIDs[i] = strconv.FormatInt(id, 10)
	}
	return out
}

// maySnapshotUse refuses (403) a task of p's started from container when
// it is another user's VPS snapshot: a snapshot is its owner's VPS disk
// (their files, keys, sshd host keys), so only its owner, an operator or
// the cluster itself may start a VPS or a task from it.
func (a *API) maySnapshotUse(p auth.Principal, container string) error {
	if a.d.Snapshots == nil || container == "" || p.Kind == auth.Cluster || p.Can(fsm.RoleOperator) {
		return nil
	}
	s, ok := a.d.Snapshots.VPSSnapshotNamed(container)
	if !ok || p.Owns(s.Owner) {
		return nil
	}
	return forbidden(fmt.Sprintf("forbidden: container_name: %s is a VPS snapshot of %s; only its owner or an operator may start from it", container, orAnon(s.Owner)))
}
