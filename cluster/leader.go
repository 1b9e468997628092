package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/fsm"
	"github.com/hakuriver/hakuriver-ha/gossip"
)

// runnerCaller is the part of the runner client the leader uses: /run for
// dispatch and /kill for the tasks it kills (time limits) and users kill.
type runnerCaller interface {
	Run(ctx context.Context, runnerURL string, req api.RunRequest) error
	Kill(ctx context.Context, runnerURL string, ref api.TaskRef) error
}

// voterSet is the Raft membership as the leader's voter reconciliation sees
// it: the current servers (ID → address), adding one, and challenging a
// gossiped host to prove it holds the cluster token.
type voterSet interface {
	servers() (map[string]string, error)
	addVoter(id, addr string) error
	prove(ctx context.Context, m gossip.Member) error
}

// leaderDeps is everything the leader needs from its replica. It is small on
// purpose: the leader's decisions depend on the committed state, what it
// proposes, what gossip sees and the runners it calls, never on the HTTP or
// Raft machinery behind them.
type leaderDeps struct {
	log *slog.Logger
	// state is the local FSM, read-only: the leader changes it only through
	// apply.
	state *fsm.Machine
	// apply proposes a command and waits until it is applied (Host.apply).
	apply func(ctx context.Context, c fsm.Command) (any, error)
	// known reports whether every replica can apply a command type
	// (Host.commandKnown).
	known func(t fsm.CommandType) error
	// hosts returns the host replicas gossip sees alive; changed is closed
	// on the pool's next change.
	hosts   func() []gossip.Member
	changed func() <-chan struct{}
	voters  voterSet
	runners runnerCaller
	// runnerLeft reports whether runner name left gossip on purpose (a
	// clean stop, as in a rolling upgrade) and is not back yet; nil: never.
	runnerLeft func(name string) bool
	// heartbeatTimeout is the silence after which a runner is offline.
	heartbeatTimeout time.Duration
	// livenessTick is the liveness loop's period.
	livenessTick time.Duration
	// now is the wall clock the leader stamps commands with; mono is the
	// monotonic clock silence is measured with (time.Now when nil: its
	// monotonic reading ignores wall-clock steps).
	now  func() time.Time
	mono func() time.Time
	// placed counts a committed placement (metrics); nil counts nothing.
	placed func()
	// notify runs the webhook notifier for the term (nil: none).
	notify func(ctx context.Context)
	// history says when finished tasks move to the archive.
	history historyRule
}

// leader is the leader's work for one term: it is created when this replica
// becomes leader (after a Barrier, so its FSM holds every committed entry)
// and stopped when it loses leadership. It owns the runners' live figures,
// the scheduler's kick, and the scheduling, liveness and membership loops.
// A new term gets a new leader with fresh live figures.
type leader struct {
	leaderDeps
	live *liveState
	kick chan struct{}
	// disp tracks the /run calls in flight, of the scheduling loop and of
	// tasks placed at submit.
	disp *dispatcher
	// queue is the pending tasks by Decision kind (and "placing") as the
	// last scheduling pass saw them; nil before the first.
	queue atomic.Pointer[map[string]int]

	cancel context.CancelFunc
	wg     sync.WaitGroup
	// runCtx is the context start gave the loops: it lives exactly as long
	// as this leader leads. It is kept (a context in a struct, on purpose)
	// for the work the leader does on behalf of a request that outlives the
	// request: a user's kill is sent to the runner in the background after
	// the answer, and must end when leadership does, not with the request.
	runCtx context.Context
	// mu guards stopped, which stop sets before it waits: goroutines for
	// outside callers (killOnRunner) are started only before it, so that
	// none is added to wg while stop waits for the last one.
	mu      sync.Mutex
	stopped bool
}

func newLeader(d leaderDeps) *leader {
	if d.now == nil {
		d.now = time.Now
	}
	if d.mono == nil {
		d.mono = time.Now
	}
	if d.placed == nil {
		d.placed = func() {}
	}
	return &leader{leaderDeps: d, live: newLiveState(d.mono()), kick: make(chan struct{}, 1), disp: newDispatcher()}
}

// start runs the leader's loops until stop (or ctx ends).
func (l *leader) start(ctx context.Context) {
	ctx, l.cancel = context.WithCancel(ctx)
	l.runCtx = ctx
	l.goRun(func() { l.scheduleLoop(ctx) })
	l.goRun(func() { l.livenessLoop(ctx) })
	l.goRun(func() { l.membershipLoop(ctx) })
	if l.notify != nil {
		l.goRun(func() { l.notify(ctx) })
	}
	l.goRun(func() { l.archiveLoop(ctx) })
}

// stop ends the loops and waits for every goroutine the leader started.
func (l *leader) stop() {
	if l.cancel != nil {
		l.cancel()
	}
	l.mu.Lock()
	l.stopped = true
	l.mu.Unlock()
	l.wg.Wait()
}

func (l *leader) goRun(f func()) {
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		f()
	}()
}

// membershipLoop adds proven hosts as voters and names the cluster, once a
// second and on every gossip change.
func (l *leader) membershipLoop(ctx context.Context) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	failedProofs := map[string]time.Time{}
	for {
		l.reconcileVoters(ctx, failedProofs)
		l.ensureClusterID(ctx)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-l.changed():
		}
	}
}

// ensureClusterID names the cluster once: a leader that finds no ID in the
// FSM proposes a random one. The FSM keeps the first ID committed, so a
// proposal racing another leader's changes nothing; a failed one is
// retried on the next pass, as is one that waits for a replica of an older
// version (which could not apply it) to be upgraded.
func (l *leader) ensureClusterID(ctx context.Context) {
	if l.state.ClusterID() != "" {
		return
	}
	if err := l.known(fsm.CmdSetClusterID); err != nil {
		l.log.Debug("cluster ID waits for every replica to be upgraded", "err", err)
		return
	}
	b := make([]byte, 8)
	rand.Read(b) //nolint:errcheck // crypto/rand.Read never fails
	if l.applyLogged(ctx, &fsm.SetClusterID{ID: hex.EncodeToString(b)}) {
		l.log.Info("cluster ID chosen", "cluster_id", l.state.ClusterID())
	}
}

// applyLogged applies a leader-decided command whose failure is only worth
// a log line (the next pass retries); it reports whether it committed.
func (l *leader) applyLogged(ctx context.Context, c fsm.Command) bool {
	actx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := l.apply(actx, c); err != nil {
		if leadershipEnded(ctx, err) {
			l.log.Info("not committed: leadership ended", "command", c.Type().String(), "err", err)
			return false
		}
		l.log.Warn("apply", "command", c.Type().String(), "err", err)
		return false
	}
	return true
}

// logLeaderErr logs a failed step of the leader's work: at warn, unless
// leadership is ending (ctx cancelled, or Raft says this replica no longer
// leads, as during a leadership transfer), when the next leader redoes the
// step and this is the normal course (info).
func (l *leader) logLeaderErr(ctx context.Context, msg string, err error, args ...any) {
	args = append(args, "err", err)
	if ctx.Err() != nil || errors.Is(err, ErrNotLeader) {
		l.log.Info(msg+" (leadership ending)", args...)
		return
	}
	l.log.Warn(msg, args...)
}

// kickScheduler asks the scheduling loop for a pass now.
func (l *leader) kickScheduler() {
	select {
	case l.kick <- struct{}{}:
	default:
	}
}
