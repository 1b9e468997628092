package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"

	"github.com/hakuriver/hakuriver-ha/cluster/httpapi"
	"github.com/hakuriver/hakuriver-ha/fsm"
)

// ErrNotLeader is returned when a write reaches a replica that is not (or no
// longer) the leader.
var ErrNotLeader = httpapi.ErrNotLeader

// ErrNoLeader is returned when no leader is known within the wait bound.
var ErrNoLeader = httpapi.ErrNoLeader

// raftFSM adapts fsm.Machine to raft.FSM and raft.BatchingFSM. When the
// Machine halts on an entry it cannot read (fsm.ErrHalted), onHalt is
// called once, and no snapshot is taken of the halted state.
type raftFSM struct {
	m        *fsm.Machine
	haltOnce *sync.Once
	onHalt   func(error)
	// applied gets a token (never blocking) after entries were applied:
	// the commit nudger's cue.
	applied chan<- struct{}
	// watch wakes those waiting for an index to be applied.
	watch *appliedWatch
}

// signalApplied tells the commit nudger and the waiters that entries were
// applied.
func (f raftFSM) signalApplied() {
	select {
	case f.applied <- struct{}{}:
	default:
	}
	f.watch.notify()
}

// appliedWatch wakes goroutines waiting for the state machine to move on.
type appliedWatch struct {
	mu sync.Mutex
	ch chan struct{} // closed at the next notify; nil while nobody waits
}

// next returns a channel closed once entries applied after this call.
func (w *appliedWatch) next() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ch == nil {
		w.ch = make(chan struct{})
	}
	return w.ch
}

// notify wakes every waiter.
func (w *appliedWatch) notify() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ch != nil {
		close(w.ch)
		w.ch = nil
	}
}

var _ raft.BatchingFSM = raftFSM{}

func (f raftFSM) Apply(l *raft.Log) any {
	if l.Type != raft.LogCommand {
		return nil
	}
	r := f.m.Apply(l.Index, l.Data)
	f.checkHalt()
	f.signalApplied()
	return r
}

// checkHalt reports a halt of the Machine, once.
func (f raftFSM) checkHalt() {
	if err := f.m.Halted(); err != nil {
		f.haltOnce.Do(func() { f.onHalt(err) })
	}
}

func (f raftFSM) ApplyBatch(logs []*raft.Log) []any {
	out := make([]any, len(logs))
	var idx []uint64
	var data [][]byte
	var pos []int
	for i, l := range logs {
		if l.Type == raft.LogCommand {
			idx = append(idx, l.Index)
			data = append(data, l.Data)
			pos = append(pos, i)
		}
	}
	for i, r := range f.m.ApplyBatch(idx, data) {
		out[pos[i]] = r
	}
	f.checkHalt()
	f.signalApplied()
	return out
}

// Snapshot refuses to persist a halted state: it misses an entry, and a
// snapshot of it would make the divergence permanent.
func (f raftFSM) Snapshot() (raft.FSMSnapshot, error) {
	if err := f.m.Halted(); err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	return snapshot{f.m.Snapshot()}, nil
}

func (f raftFSM) Restore(r io.ReadCloser) error {
	defer r.Close()
	defer f.watch.notify() // the applied index moved
	return f.m.Restore(r)
}

type snapshot struct{ s *fsm.Snapshot }

func (s snapshot) Persist(sink raft.SnapshotSink) error {
	if err := s.s.Write(sink); err != nil {
		sink.Cancel() //nolint:errcheck // the write error is the one to report
		return err
	}
	return sink.Close()
}

func (s snapshot) Release() { s.s.Close() }

// ArchiveFile is the name of a replica's task archive in its data dir.
const ArchiveFile = "archive.db"

// openMachine opens the replica's state machine with its task archive
// (<dataDir>/archive.db, created if missing). Raft then brings both in
// step: it restores the last snapshot (which rebuilds the archive unless
// it already holds the snapshot's) and replays the log after it.
func openMachine(dataDir string) (*fsm.Machine, error) {
	if err := os.MkdirAll(dataDir, 0o750); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	a, err := fsm.OpenArchive(filepath.Join(dataDir, ArchiveFile))
	if err != nil {
		return nil, err
	}
	return fsm.NewWithArchive(a), nil
}

// raftNode bundles the Raft instance with its stores.
type raftNode struct {
	r         *raft.Raft
	trans     *raft.NetworkTransport
	logs      *raftboltdb.BoltStore
	cached    raft.LogStore // the log cache in front of logs, which Raft uses
	applied   chan struct{} // see raftFSM.applied
	watch     *appliedWatch
	addr      string
	hadState  bool
	snapStore *trackedSnapshotStore
}

// Raft's timing at RaftMultiplier 1, tuned for a LAN with fast disks:
// followers start an election after 0.5-1 s without a heartbeat (sent
// every tenth of that), and a leader that has not reached a quorum for
// 0.25 s steps down.
const (
	raftBaseHeartbeat = 500 * time.Millisecond
	raftBaseElection  = 500 * time.Millisecond
	raftBaseLease     = 250 * time.Millisecond
)

// raftCommitTimeout is how long a Raft leader waits without new entries
// before it sends followers the commit index anyway (hashicorp/raft's
// default). Followers learn a commit sooner from the commit nudger
// (commitnudge.go): the timeout only bounds the case where a nudge is lost.
const raftCommitTimeout = 50 * time.Millisecond

// raftLogCacheEntries is how many of the newest Raft log entries a replica
// keeps in memory for replication (logCache), besides boltdb.
const raftLogCacheEntries = 1024

// raftTiming returns the heartbeat, election and leader lease timeouts for
// multiplier m (values below 1 count as 1).
func raftTiming(m int) (heartbeat, election, lease time.Duration) {
	m = max(m, 1)
	d := time.Duration(m)
	return d * raftBaseHeartbeat, d * raftBaseElection, d * raftBaseLease
}

// openRaft opens the replica's Raft stores and starts Raft. storeTime
// observes each write of the log store (metrics); stops tells Raft's
// complaints about a cleanly stopped peer from a crash.
func openRaft(cfg Config, m *fsm.Machine, onHalt func(error), storeTime func(time.Duration), stops *cleanStops) (*raftNode, error) {
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	logger := cfg.Logger.With("component", "raft")
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.NodeID)
	rc.Logger = newHCLogger(logger, "raft", stops)
	rc.HeartbeatTimeout, rc.ElectionTimeout, rc.LeaderLeaseTimeout = raftTiming(cfg.RaftMultiplier)
	rc.CommitTimeout = raftCommitTimeout
	if cfg.raftCommitTimeout > 0 {
		rc.CommitTimeout = cfg.raftCommitTimeout
	}
	rc.MaxAppendEntries = 512
	rc.BatchApplyCh = true
	// A replica removed from the configuration keeps running as a
	// non-voter so that `cluster join` can bring it back.
	rc.ShutdownOnRemove = false
	// Check for a due snapshot every 15 s (raft's default is 2 min): under a
	// burst of submits the log is compacted before it grows to hundreds of
	// MB in boltdb, whose file never shrinks.
	rc.SnapshotInterval = 15 * time.Second
	if cfg.SnapshotInterval > 0 {
		rc.SnapshotInterval = cfg.SnapshotInterval
	}
	if cfg.SnapshotThreshold > 0 {
		rc.SnapshotThreshold = cfg.SnapshotThreshold
		rc.TrailingLogs = cfg.SnapshotThreshold
	}

	logs, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(cfg.DataDir, "raft.db"), NoSync: cfg.RaftNoSync, BoltOptions: &bbolt.Options{NoFreelistSync: true, FreelistType: bbolt.FreelistMapType}})
	if err != nil {
		return nil, fmt.Errorf("open raft log: %w", err)
	}
	fileSnaps, err := raft.NewFileSnapshotStoreWithLogger(cfg.DataDir, 2, newHCLogger(logger, "snapshot", stops))
	if err != nil {
		logs.Close()
		return nil, fmt.Errorf("open snapshot store: %w", err)
	}
	snaps := newTrackedSnapshotStore(fileSnaps)
	advertise := net.JoinHostPort(cfg.advertise(), strconv.Itoa(cfg.RaftPort))
	adv, err := net.ResolveTCPAddr("tcp", advertise)
	if err != nil {
		logs.Close()
		return nil, fmt.Errorf("resolve raft advertise address %s: %w", advertise, err)
	}
	trans, err := openTransport(cfg, adv, logger, stops)
	if err != nil {
		logs.Close()
		return nil, fmt.Errorf("open raft transport on port %d: %w", cfg.RaftPort, err)
	}
	hadState, err := raft.HasExistingState(logs, logs, snaps)
	if err != nil {
		trans.Close()
		logs.Close()
		return nil, fmt.Errorf("inspect raft state: %w", err)
	}
	// The leader reads back every entry it sends a follower: without the
	// cache each read is a boltdb transaction and a msgpack decode of
	// an entry it wrote a moment before (6-9 % of the leader's CPU under
	// a stream of submits).
	cached := newLogCache(timedLogStore{LogStore: logs, observe: storeTime}, raftLogCacheEntries)
	applied, watch := make(chan struct{}, 1), &appliedWatch{}
	r, err := raft.NewRaft(rc, raftFSM{m: m, haltOnce: new(sync.Once), onHalt: onHalt, applied: applied, watch: watch}, cached, logs, snaps, trans)
	if err != nil {
		trans.Close()
		logs.Close()
		return nil, fmt.Errorf("start raft: %w", err)
	}
	n := &raftNode{r: r, trans: trans, logs: logs, cached: cached, applied: applied, watch: watch, addr: string(trans.LocalAddr()), hadState: hadState, snapStore: snaps}
	n.paceSnapshots(cfg.snapshotBytesPerEntry, logger)
	return n, nil
}

// openTransport opens the Raft transport: plain TCP, or mutually
// authenticated TLS when cfg.TLS is set.
func openTransport(cfg Config, adv *net.TCPAddr, logger *slog.Logger, stops *cleanStops) (*raft.NetworkTransport, error) {
	bind := net.JoinHostPort(cfg.BindAddr, strconv.Itoa(cfg.RaftPort))
	if cfg.TLS == nil {
		return raft.NewTCPTransportWithLogger(bind, adv, 5, 10*time.Second, newHCLogger(logger, "transport", stops))
	}
	stream, err := newTLSStreamLayer(bind, adv, cfg.TLS.Mutual())
	if err != nil {
		return nil, err
	}
	return raft.NewNetworkTransportWithLogger(stream, 5, 10*time.Second, newHCLogger(logger, "transport", stops)), nil
}

func (n *raftNode) close() error {
	var errs []error
	if err := n.r.Shutdown().Error(); err != nil {
		errs = append(errs, fmt.Errorf("shutdown raft: %w", err))
	}
	if err := n.trans.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close raft transport: %w", err))
	}
	if err := n.logs.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close raft log: %w", err))
	}
	return errors.Join(errs...)
}

// apply proposes a command and waits for it to be applied, translating raft
// errors. The ctx deadline bounds the wait.
func (h *Host) apply(ctx context.Context, c fsm.Command) (any, error) {
	if err := h.commandKnown(c.Type()); err != nil {
		return nil, err
	}
	if err := h.disk.check(); err != nil {
		h.yieldForDisk()
		return nil, err
	}
	c, err := h.audited(ctx, c)
	if err != nil {
		return nil, err
	}
	data, err := fsm.Encode(c)
	if err != nil {
		return nil, err
	}
	timeout := 10 * time.Second
	if d, ok := ctx.Deadline(); ok {
		timeout = time.Until(d)
	}
	start := time.Now()
	f := h.raft.r.Apply(data, timeout)
	if err := f.Error(); err != nil {
		switch {
		case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipLost),
			errors.Is(err, raft.ErrLeadershipTransferInProgress), errors.Is(err, raft.ErrRaftShutdown):
			return nil, fmt.Errorf("%w: %v", ErrNotLeader, err)
		case errors.Is(err, raft.ErrEnqueueTimeout):
			return nil, fmt.Errorf("%w: apply timed out: %v", ErrNoLeader, err)
		}
		return nil, fmt.Errorf("apply %s: %w", c.Type(), err)
	}
	h.metrics.applyTime.Observe(time.Since(start).Seconds())
	res, _ := f.Response().(fsm.Result)
	if res.Err != nil {
		return nil, res.Err
	}
	return res.Value, nil
}
