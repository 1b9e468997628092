package cluster

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/cluster/httpapi"
	"github.com/hakuriver/hakuriver-ha/fsm"
)

// The roles the client-facing handlers (cluster/httpapi) use, as the Host
// plays them.
var (
	_ httpapi.Proposer        = (*Host)(nil)
	_ httpapi.NodeViewer      = (*Host)(nil)
	_ httpapi.Environments    = (*Host)(nil)
	_ httpapi.ClusterViewer   = (*Host)(nil)
	_ httpapi.Membership      = (*Host)(nil)
	_ httpapi.TaskReader      = (*fsm.Machine)(nil)
	_ httpapi.NodeReader      = (*fsm.Machine)(nil)
	_ httpapi.Runners         = runnerCalls{}
	_ httpapi.RunnerBook      = runnerBook{}
	_ httpapi.ClusterIDReader = (*fsm.Machine)(nil)
	_ httpapi.AccountReader   = (*fsm.Machine)(nil)
	_ httpapi.UsageReader     = (*fsm.Machine)(nil)
)

// newAPI returns the client-facing handlers over this replica.
func (h *Host) newAPI() *httpapi.API {
	return httpapi.New(httpapi.Config{
		NodeID:           h.cfg.NodeID,
		SharedDir:        h.cfg.SharedDir,
		MaxListTasks:     h.cfg.MaxListTasks,
		DefaultContainer: h.cfg.DefaultContainer,
		TasksPrivileged:  h.cfg.TasksPrivileged,
		AdditionalMounts: h.cfg.AdditionalMounts,
		Logger:           h.log,
		CheckSSHKey:      checkAuthorizedKey,
		CheckNotify:      h.checkNotifyURL,
		TarballDir:       filepath.Join(h.cfg.SharedDir, h.cfg.ContainerDir),
		Now:              h.clock,
	}, httpapi.Deps{
		Proposer:     h,
		Tasks:        h.machine,
		Nodes:        h.machine,
		NodeViews:    h,
		Runners:      runnerCalls{h},
		Environments: h,
		Cluster:      h,
		Membership:   h,
		RunnerBook:   runnerBook{h},
		ClusterID:    h.machine,
		Accounts:     h.machine,
		VPS:          h.runners,
		Snapshots:    h.machine,
		Snapshotter:  h.runners,
		Usage:        h.machine,
		Applied:      appliedWatcher{h},
	})
}

// appliedWatcher gives the API the replica's applied-entries watch and its
// places for blocking status queries.
type appliedWatcher struct{ h *Host }

// maxStatusWaiters bounds the blocking status queries waiting at once on
// a replica (each re-reads its task as entries apply), and
// maxStatusWaitersPerCaller those of one caller (an account, all anonymous
// callers together, the cluster token), so that one caller cannot take
// every place. Beyond either they are answered at once, and clients poll
// as they would without.
const (
	maxStatusWaiters          = 256
	maxStatusWaitersPerCaller = 64
)

// waiterBook counts the blocking status queries waiting, in all and per
// caller.
type waiterBook struct {
	mu        sync.Mutex
	total     int
	perCaller map[string]int
}

// hold takes a place for one of caller's queries; false when the replica's
// or the caller's places are all taken.
func (b *waiterBook) hold(caller string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.total >= maxStatusWaiters || b.perCaller[caller] >= maxStatusWaitersPerCaller {
		return false
	}
	if b.perCaller == nil {
		b.perCaller = map[string]int{}
	}
	b.total++
	b.perCaller[caller]++
	return true
}

// release gives back a place hold took for caller.
func (b *waiterBook) release(caller string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.total--
	if b.perCaller[caller]--; b.perCaller[caller] <= 0 {
		delete(b.perCaller, caller)
	}
}

// waiting returns how many queries wait.
func (b *waiterBook) waiting() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.total
}

func (w appliedWatcher) NextApplied() <-chan struct{} { return w.h.raft.watch.next() }

func (w appliedWatcher) HoldWaiter(caller string) bool { return w.h.statusWaiters.hold(caller) }

func (w appliedWatcher) ReleaseWaiter(caller string) { w.h.statusWaiters.release(caller) }

func (w appliedWatcher) Stopping() <-chan struct{} { return w.h.stopping }

// Propose applies c through Raft on the leader (see apply).
func (h *Host) Propose(ctx context.Context, c fsm.Command) (any, error) { return h.apply(ctx, c) }

// Submit commits a submit on the leader, placing the new tasks in the same
// entry when nothing waits ahead of them (leader.submit).
//
// Tasks with retries are accepted only when every replica knows
// fsm.CmdRetryTask: a replica that did not would keep their first failure
// as final while the others retry.
func (h *Host) Submit(ctx context.Context, c *fsm.SubmitTasks) (fsm.SubmitResult, error) {
	for _, t := range c.Tasks {
		if t.Retries > 0 {
			if err := h.commandKnown(fsm.CmdRetryTask); err != nil {
				return fsm.SubmitResult{}, fmt.Errorf("retries: %w", err)
			}
			break
		}
	}
	if l := h.currentLeader(); l != nil {
		return l.submit(ctx, c)
	}
	v, err := h.apply(ctx, c)
	if err != nil {
		return fsm.SubmitResult{}, err
	}
	sr, _ := v.(fsm.SubmitResult)
	return sr, nil
}

// NextTaskID issues a fresh task ID, greater than every committed one.
func (h *Host) NextTaskID() int64 { return h.ids.next(h.machine.MaxTaskID()) }

// UpdateTasks applies runner reports in one fsm.ReportTasks entry when
// one carries a task's figures and every replica knows that command, else
// in one fsm.UpdateTasks entry when every replica knows that one (the
// figures are then not recorded), else (an upgrade under way) one
// fsm.UpdateTask entry each. A business rejection of one report is its
// result; any other error ends the batch (a retry re-applies nothing).
func (h *Host) UpdateTasks(ctx context.Context, us []fsm.UpdateTask) (fsm.UpdateResults, error) {
	if withUsage(us) && h.commandKnown(fsm.CmdReportTasks) == nil {
		return h.applyUpdates(ctx, &fsm.ReportTasks{Updates: us}, len(us))
	}
	if len(us) > 1 && h.commandKnown(fsm.CmdUpdateTasks) == nil {
		return h.applyUpdates(ctx, &fsm.UpdateTasks{Updates: us}, len(us))
	}
	out := make(fsm.UpdateResults, len(us))
	for i := range us {
		_, err := h.apply(ctx, &us[i])
		if err != nil && !errors.Is(err, fsm.ErrNotFound) && !errors.Is(err, fsm.ErrConflict) && !errors.Is(err, fsm.ErrInvalid) {
			return nil, err
		}
		out[i] = err
	}
	return out, nil
}

// withUsage reports whether a report of us carries a task's figures
// (recorded only by fsm.ReportTasks: UpdateTasks entries ignore them).
func withUsage(us []fsm.UpdateTask) bool {
	for i := range us {
		if us[i].Usage != nil {
			return true
		}
	}
	return false
}

// applyUpdates commits a batch of reports in one entry and returns the
// result of each.
func (h *Host) applyUpdates(ctx context.Context, c fsm.Command, n int) (fsm.UpdateResults, error) {
	v, err := h.apply(ctx, c)
	if err != nil {
		return nil, err
	}
	res, ok := v.(fsm.UpdateResults)
	if !ok || len(res) != n {
		return nil, fmt.Errorf("update tasks: unexpected result %T", v)
	}
	return res, nil
}

// KickScheduler asks the leader for a scheduling pass now.
func (h *Host) KickScheduler() { h.kickScheduler() }

// CheckEnvironment is the submit-time check of a container_name
// (checkEnvironment).
func (h *Host) CheckEnvironment(name string) error { return h.checkEnvironment(name) }

// NodeViews returns the runner nodes with accounting and, on the leader,
// live figures.
func (h *Host) NodeViews() []api.NodeView { return h.nodeViews() }

// Health returns the leader's recent health samples of every node.
func (h *Host) Health() api.HealthResponse {
	out := api.HealthResponse{Nodes: [][]api.NodeHealth{}, Aggregate: []api.HealthAggregate{}}
	for _, s := range h.liveState().samples() {
		out.Nodes = append(out.Nodes, s.nodes)
		out.Aggregate = append(out.Aggregate, s.aggregate)
	}
	return out
}

// runnerCalls is the handlers' way to the runners: pause and resume
// through the runner client, kill as the leader notifies it.
type runnerCalls struct{ h *Host }

// NotifyKill hands a user's kill, committed by the caller, to the leader,
// which tells the runner in the background (leader.killOnRunner). Without a
// leader (lost since the request was routed) nothing is sent: the runner
// gets the task in the kill list of its next heartbeat to the new leader.
func (c runnerCalls) NotifyKill(t *fsm.Task) {
	if l := c.h.currentLeader(); l != nil {
		l.killOnRunner(t)
	}
}

func (c runnerCalls) Pause(ctx context.Context, runnerURL string, id int64) error {
	return c.h.runners.Pause(ctx, runnerURL, id)
}

func (c runnerCalls) Resume(ctx context.Context, runnerURL string, id int64) error {
	return c.h.runners.Resume(ctx, runnerURL, id)
}

// runnerBook is the runners' calls' way to the current leader's
// bookkeeping (leader.registered, leader.heartbeat). The route table sends
// those calls to the leader; if leadership was lost since, there is no
// leader here.
type runnerBook struct{ h *Host }

func (b runnerBook) Registered(name string, now time.Time) {
	if l := b.h.currentLeader(); l != nil {
		l.registered(name, now)
	}
}

func (b runnerBook) Heartbeat(ctx context.Context, node *fsm.Node, hb api.HeartbeatRequest, now time.Time) ([]int64, error) {
	l := b.h.currentLeader()
	if l == nil {
		return nil, ErrNotLeader // leadership was lost since onLeader looked
	}
	return l.heartbeat(ctx, node, hb, now)
}

// checkAuthorizedKey rejects a line that is not one authorized_keys entry.
func checkAuthorizedKey(line string) error {
	if _, _, _, rest, err := ssh.ParseAuthorizedKey([]byte(line)); err != nil || len(rest) > 0 {
		return errors.New("not one authorized_keys line (ssh-ed25519 AAAA… comment)")
	}
	return nil
}
