package runner

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/fsm"
	"github.com/hakuriver/hakuriver-ha/runner/executor"
)

// heartbeatLoop registers (again after a 404) and heartbeats every
// HeartbeatInterval with live figures and the IDs of every task the runner
// tracks, including finished ones whose end the cluster has not yet
// acknowledged, so that none is declared lost while its report is in flight.
func (a *Agent) heartbeatLoop(ctx context.Context) {
	for {
		wait := a.cfg.HeartbeatInterval
		if !a.registered.Load() {
			if err := a.register(ctx); err != nil {
				a.log.Debug("register", "err", err)
				wait = min(wait, 500*time.Millisecond)
			} else {
				a.registered.Store(true)
				a.log.Info("registered with the cluster")
			}
		}
		if a.registered.Load() {
			if err := a.heartbeat(ctx); err != nil {
				var ae *api.APIError
				if errors.As(err, &ae) && ae.StatusCode == http.StatusNotFound {
					a.registered.Store(false)
					wait = 0
				}
				a.log.Debug("heartbeat", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

func (a *Agent) register(ctx context.Context) error {
	c, err := a.hostClient()
	if err != nil {
		return err
	}
	req := api.RegisterRequest{
		Hostname: a.cfg.Name, TotalCores: a.static.TotalCores, TotalRAMBytes: a.static.MemoryTotalBytes,
		RunnerURL: a.url, NUMATopology: a.static.NUMATopology, GPUInfo: a.static.GPUInfo,
		CgroupsLimited: a.cfg.NativeLimited, Version: a.cfg.Version,
	}
	rctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	var resp api.RegisterResponse
	h, err := c.Do(rctx, http.MethodPost, "/api/register", req, &resp)
	if err != nil {
		return err
	}
	a.noteLeader(h)
	a.log.Debug("registered", "cluster_id", resp.ClusterID)
	return nil
}

func (a *Agent) heartbeat(ctx context.Context) error {
	c, err := a.hostClient()
	if err != nil {
		return err
	}
	hb := api.HeartbeatRequest{RunningTasks: []int64{}}
	states, owner, complete := a.allStates(ctx)
	hb.Partial = !complete
	for id := range states {
		if a.forgets.has(id) {
			continue // ended, and the cluster acknowledged it
		}
		hb.RunningTasks = append(hb.RunningTasks, id)
		if n := a.attempts.get(id); n > 0 {
			if hb.Attempts == nil {
				hb.Attempts = map[int64]int{}
			}
			hb.Attempts[id] = n
		}
	}
	if live, err := a.sampler.Sample(ctx); err == nil {
		hb.CPUPercent, hb.MemoryPercent = &live.CPUPercent, &live.MemoryPercent
		hb.MemoryUsedBytes, hb.MemoryTotalBytes = &live.MemoryUsedBytes, &live.MemoryTotalBytes
		hb.CurrentAvgTemp, hb.CurrentMaxTemp = live.CurrentAvgTemp, live.CurrentMaxTemp
		hb.GPUInfo = live.GPUInfo
	}
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var resp api.HeartbeatResponse
	h, err := c.Do(rctx, http.MethodPut, "/api/heartbeat/"+url.PathEscape(a.cfg.Name), hb, &resp)
	if err != nil {
		return err
	}
	a.noteLeader(h)
	for _, id := range resp.Kill {
		if n, ok := hb.Attempts[id]; ok && a.attempts.get(id) != n {
			continue // the kill is of the attempt this heartbeat listed, gone since
		}
		if ex := owner[id]; ex != nil {
			a.killFinished(ctx, ex, id)
		}
	}
	return nil
}

// killFinished kills a task the cluster holds a final status for. Most
// often the task ended on its own and its end was committed while this
// heartbeat, which still listed it, was in flight: the kill then finds it
// ended (or forgotten), which is the normal course. Only a process that was
// really still running is worth a warning.
func (a *Agent) killFinished(ctx context.Context, ex executor.Executor, id int64) {
	if err := ex.Kill(ctx, id); errors.Is(err, executor.ErrUnknownTask) {
		return
	} else if err != nil {
		a.log.Warn("kill a task the cluster considers finished", "task_id", id, "err", err)
		return
	}
	list, err := ex.List(ctx)
	if err != nil {
		a.log.Warn("list tasks", "err", err)
		return
	}
	for _, s := range list {
		if s.TaskID == id && s.Exit != nil && s.Exit.Killed {
			a.log.Warn("killed a task the cluster considers finished", "task_id", id)
			return
		}
	}
	a.log.Debug("task the cluster considers finished had ended already", "task_id", id)
}

// watchLoop reports every task's status change to the cluster and forgets
// a finished task once its end is acknowledged. It runs when a task starts
// or ends (kick), every 100 ms, and when a held report is due. An end goes
// out at once, with every other pending report, in one request; a start
// alone waits up to startReportDelay for company, so that a task that ends
// within it is reported once, ended, with its start time (started_at is
// the process's own start either way). Changes made while a request is in
// flight go together in the next.
func (a *Agent) watchLoop(ctx context.Context) {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	held := time.NewTimer(time.Hour)
	held.Stop()
	defer held.Stop()
	for {
		all := false
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			all = true
		case <-a.kick:
		case <-held.C:
		}
		if wait := a.reportChanges(ctx, all); wait > 0 {
			held.Reset(wait)
		}
	}
}

// startReportDelay is how long a runner holds the report that a task
// started when nothing else is to be reported, waiting for its end.
const startReportDelay = 25 * time.Millisecond

// reportChanges sends every status change the cluster has not
// acknowledged and records what it acknowledged. When only starts are
// pending, none older than startReportDelay, it sends nothing and returns
// how long until the oldest is due. With all, every executor is listed
// afresh; otherwise the native one and Docker only when marked changed
// (kickFor) or without a recent listing, so that a native task's end is
// reported without waiting for Docker's listing.
func (a *Agent) reportChanges(ctx context.Context, all bool) (wait time.Duration) {
	a.forgets.prune()
	list := a.allStates
	if !all {
		// The native listing (a directory read) is always fresh here: a
		// reused one can still show a task this loop forgot since, which
		// it would then report and forget again. Docker's (an Engine API
		// call) is reused while recent and unchanged.
		list = func(ctx context.Context) (map[int64]executor.State, map[int64]executor.Executor, bool) {
			return a.statesFor(ctx, a.cfg.Native)
		}
	}
	states, owner, complete := list(ctx)
	if complete {
		// A task no executor lists any more (a stopped VPS, or a
		// container removed behind the runner's back) is reported afresh
		// should it come back, even on the same SSH port.
		for id := range a.acked {
			if _, ok := states[id]; !ok {
				delete(a.acked, id)
			}
		}
	}
	var pending []api.UpdateRequest
	now := time.Now()
	due := false
	for id, s := range states {
		if a.forgets.has(id) {
			// Its end was acknowledged; forgetLoop is removing it.
			delete(a.changed, id)
			continue
		}
		if s.Starting {
			// Not running yet: reported once its process exists, so that
			// the cluster never offers to pause a task that cannot be
			// paused yet (the heartbeat lists it already).
			continue
		}
		u := statusUpdate(s)
		if a.figuresRefused[id] {
			u.Usage = nil // the cluster refused them: the end goes without
		}
		u.Attempt = a.attempts.get(id)
		if a.acked[id] == ackKey(u) {
			delete(a.changed, id)
			continue
		}
		pending = append(pending, u)
		first, seen := a.changed[id]
		if !seen {
			first = now
			a.changed[id] = now
		}
		if s.Exit != nil || u.Status != "running" || a.acked[id] != "" || now.Sub(first) >= startReportDelay {
			due = true // an end, a pause, a port change, or a start held long enough
		} else if w := startReportDelay - now.Sub(first); wait == 0 || w < wait {
			wait = w
		}
	}
	for id := range a.changed {
		if _, ok := states[id]; !ok {
			delete(a.changed, id)
		}
	}
	for id := range a.figuresRefused {
		if _, ok := states[id]; !ok {
			delete(a.figuresRefused, id)
		}
	}
	if len(pending) == 0 || !due {
		return wait
	}
	slices.SortFunc(pending, func(x, y api.UpdateRequest) int { return cmp.Compare(x.TaskID, y.TaskID) })
	for i, ok := range a.sendReports(ctx, pending) {
		if !ok {
			continue
		}
		u := pending[i]
		a.acked[u.TaskID] = ackKey(u)
		delete(a.changed, u.TaskID)
		if states[u.TaskID].Exit != nil {
			// Tidied away off this loop (forgetLoop), which skips it
			// meanwhile.
			a.forgets.add(forgetJob{ex: owner[u.TaskID], id: u.TaskID, attempt: u.Attempt})
			delete(a.acked, u.TaskID)
			delete(a.figuresRefused, u.TaskID)
		}
	}
	return 0
}

// ackKey is what the cluster acknowledged of a report: its status and, for
// a VPS, its port (it changes when Docker restarts the container).
func ackKey(u api.UpdateRequest) string {
	if u.SSHPort != 0 {
		return u.Status + ":" + strconv.Itoa(u.SSHPort)
	}
	return u.Status
}

// sendReports sends us, in batches of api.MaxUpdateBatch through
// /api/updates, or one at a time through /api/update when there is one
// report or the host does not take batches (an older version: it is asked
// again after batchRetry). ok[i] says whether us[i] was acknowledged.
func (a *Agent) sendReports(ctx context.Context, us []api.UpdateRequest) (ok []bool) {
	ok = make([]bool, len(us))
	if len(us) > 1 && time.Now().After(a.noBatchUntil) {
		for from := 0; from < len(us); from += api.MaxUpdateBatch {
			to := min(from+api.MaxUpdateBatch, len(us))
			res, err := a.reportBatch(ctx, us[from:to])
			var ae *api.APIError
			if errors.As(err, &ae) && (ae.StatusCode == http.StatusNotFound || ae.StatusCode == http.StatusMethodNotAllowed) {
				a.log.Info("the cluster does not take batched reports yet; reporting one task at a time", "err", err)
				a.noBatchUntil = time.Now().Add(batchRetry)
				break
			}
			if err != nil {
				a.log.Debug("report statuses", "reports", to-from, "err", err)
				return ok
			}
			for i, r := range res {
				ok[from+i] = a.outcome(r.TaskID, r.Status)
				if !ok[from+i] {
					a.log.Debug("report status", "task_id", r.TaskID, "status", us[from+i].Status, "answer", r.Status, "err", r.Error)
				}
			}
			if to == len(us) {
				return ok
			}
		}
	}
	for i, u := range us {
		if ok[i] {
			continue // acknowledged in a batch before the host refused one
		}
		if err := a.report(ctx, u); err != nil {
			a.log.Debug("report status", "task_id", u.TaskID, "status", u.Status, "err", err)
			continue
		}
		ok[i] = true
	}
	return ok
}

// batchRetry is how long a runner reports one task at a time after the
// cluster refused the batch route, before it tries that route again.
const batchRetry = time.Minute

// reportBatch sends one batch and checks the answer has a result per
// report, in order.
func (a *Agent) reportBatch(ctx context.Context, us []api.UpdateRequest) ([]api.UpdateResult, error) {
	c, err := a.hostClient()
	if err != nil {
		return nil, err
	}
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var resp api.UpdatesResponse
	h, err := c.Do(rctx, http.MethodPost, "/api/updates", api.UpdatesRequest{Updates: us}, &resp)
	if err != nil {
		return nil, err
	}
	a.noteLeader(h)
	if len(resp.Results) != len(us) {
		return nil, fmt.Errorf("report statuses: %d results for %d reports", len(resp.Results), len(us))
	}
	for i, r := range resp.Results {
		if r.TaskID != us[i].TaskID {
			return nil, fmt.Errorf("report statuses: result %d is for task %d, not %d", i, r.TaskID, us[i].TaskID)
		}
	}
	return resp.Results, nil
}

// statusUpdate turns an executor state into the status report to send.
func statusUpdate(s executor.State) api.UpdateRequest {
	u := api.UpdateRequest{TaskID: s.TaskID}
	if !s.Started.IsZero() {
		st := s.Started.UTC()
		u.StartedAt = &st
	}
	switch {
	case s.Exit == nil && s.Paused:
		u.Status, u.SSHPort = "paused", s.SSHPort
	case s.Exit == nil:
		u.Status, u.SSHPort = "running", s.SSHPort
	default:
		e := s.Exit
		code := e.Code
		u.ExitCode = &code
		end := e.EndedAt.UTC()
		u.CompletedAt = &end
		var msg string
		switch {
		case e.OOM:
			u.Status, msg = "killed_oom", "Killed: memory limit exceeded."
		case e.Killed:
			u.Status, msg = "killed", "Killed on the runner."
		case e.Code == 0:
			u.Status = "completed"
		default:
			u.Status, msg = "failed", fmt.Sprintf("Process exited with code %d.", e.Code)
		}
		if e.Message != "" {
			msg = e.Message
		}
		if msg != "" {
			u.Message = &msg
		}
		u.Usage = usageOf(e)
	}
	return u
}

// usageOf is the accounting sent with the report of a task's end, nil
// when there is nothing to send. Figures the host would refuse (negative
// counters of a broken kernel interface) are dropped rather than sent, so
// that the end itself is still reported.
func usageOf(e *executor.Exit) *fsm.Usage {
	if e.Usage == nil && e.Signal == 0 {
		return nil
	}
	u := &fsm.Usage{Signal: e.Signal}
	if x := e.Usage; x != nil {
		u.CPUUserNs, u.CPUSystemNs, u.PeakMemoryBytes, u.Source = x.UserNs, x.SystemNs, x.PeakBytes, x.Source
	}
	if u.Check("usage", -1, 0) != nil {
		return nil
	}
	return u
}

// report sends one status update through /api/update.
func (a *Agent) report(ctx context.Context, u api.UpdateRequest) error {
	c, err := a.hostClient()
	if err != nil {
		return err
	}
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	h, err := c.Do(rctx, http.MethodPost, "/api/update", u, nil)
	var ae *api.APIError
	switch {
	case err == nil:
		a.noteLeader(h)
		a.outcome(u.TaskID, http.StatusOK)
	case errors.As(err, &ae) && a.outcome(u.TaskID, ae.StatusCode):
		return nil
	}
	return err
}

// outcome reports whether the cluster's answer status to a report of task
// id acknowledges it. A 409 (the cluster already holds a final status)
// counts as acknowledged. A 404 may come from a replica that has not
// applied the task yet, so it is retried, and taken as final only after
// unknownTaskGrace.
func (a *Agent) outcome(id int64, status int) bool {
	switch status {
	case http.StatusOK, http.StatusConflict:
		delete(a.notFound, id)
		return true
	case http.StatusBadRequest:
		// A report the cluster cannot take; the figures are the part a
		// runner measures: send the end again without them.
		if !a.figuresRefused[id] {
			a.log.Warn("the cluster refused a task's report; reporting its end without figures", "task_id", id)
		}
		a.figuresRefused[id] = true
	case http.StatusNotFound:
		first, seen := a.notFound[id]
		if !seen {
			a.notFound[id] = time.Now()
			return false
		}
		if time.Since(first) < unknownTaskGrace {
			return false
		}
		delete(a.notFound, id)
		return true
	}
	delete(a.notFound, id)
	return false
}

// unknownTaskGrace is how long a runner keeps reporting a task the cluster
// says it does not know before giving up on it.
const unknownTaskGrace = time.Minute
