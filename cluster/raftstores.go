package cluster

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"
)

// ReadLogCommands opens the Raft log of a stopped replica's data directory
// read-only and calls fn with the index and data of each command entry
// after index from, in order, until fn returns an error. For tools (the
// benchmark) that inspect what a run wrote to the log.
func ReadLogCommands(dataDir string, from uint64, fn func(index uint64, data []byte) error) error {
	store, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(dataDir, "raft.db"),
		BoltOptions: &bbolt.Options{ReadOnly: true, Timeout: 5 * time.Second}})
	if err != nil {
		return fmt.Errorf("open raft log: %w", err)
	}
	defer store.Close()
	last, err := store.LastIndex()
	if err != nil {
		return fmt.Errorf("raft log: %w", err)
	}
	for i := from + 1; i <= last; i++ {
		var l raft.Log
		if err := store.GetLog(i, &l); err != nil {
			return fmt.Errorf("raft log entry %d: %w", i, err)
		}
		if l.Type != raft.LogCommand || len(l.Data) == 0 {
			continue
		}
		if err := fn(i, l.Data); err != nil {
			return err
		}
	}
	return nil
}

// timedLogStore times the writes of a Raft log store (for boltdb: the
// transaction and its fsync) for the metrics; everything else passes
// through.
type timedLogStore struct {
	raft.LogStore
	observe func(time.Duration)
}

// StoreLog stores one entry, timed.
func (s timedLogStore) StoreLog(l *raft.Log) error {
	start := time.Now()
	err := s.LogStore.StoreLog(l)
	s.observe(time.Since(start))
	return err
}

// StoreLogs stores a batch of entries, timed.
func (s timedLogStore) StoreLogs(logs []*raft.Log) error {
	start := time.Now()
	err := s.LogStore.StoreLogs(logs)
	s.observe(time.Since(start))
	return err
}

// logCache keeps the newest Raft log entries in memory in front of the log
// store (as hashicorp/raft's LogCache does): the leader reads back every
// entry it sends a follower, which from boltdb is a transaction and a
// msgpack decode of an entry written a moment before. Unlike LogCache it
// keeps a copy of each entry, not the caller's (on the leader that is part
// of the apply's future, which it would keep alive), and none whose data
// is over logCacheMaxEntryBytes: one submit may carry megabytes, and a
// ring of them would pin gigabytes.
type logCache struct {
	raft.LogStore
	mu   sync.RWMutex
	ring []*raft.Log
}

// logCacheMaxEntryBytes is the largest entry data logCache keeps; a ring of
// raftLogCacheEntries holds at most their product (32 MiB).
const logCacheMaxEntryBytes = 32 << 10

func newLogCache(store raft.LogStore, entries int) *logCache {
	return &logCache{LogStore: store, ring: make([]*raft.Log, entries)}
}

// GetLog returns entry idx from the ring, or else from the store.
func (c *logCache) GetLog(idx uint64, l *raft.Log) error {
	c.mu.RLock()
	e := c.ring[idx%uint64(len(c.ring))]
	c.mu.RUnlock()
	if e != nil && e.Index == idx {
		*l = *e
		return nil
	}
	return c.LogStore.GetLog(idx, l)
}

// StoreLog stores one entry.
func (c *logCache) StoreLog(l *raft.Log) error { return c.StoreLogs([]*raft.Log{l}) }

// StoreLogs stores entries and, once they are stored, keeps copies of the
// small ones.
func (c *logCache) StoreLogs(logs []*raft.Log) error {
	if err := c.LogStore.StoreLogs(logs); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, l := range logs {
		slot := &c.ring[l.Index%uint64(len(c.ring))]
		if len(l.Data) > logCacheMaxEntryBytes {
			*slot = nil
			continue
		}
		cp := *l
		*slot = &cp
	}
	return nil
}

// DeleteRange empties the ring (a follower's conflicting suffix or a
// compaction: either way, what it held may be gone) and deletes from the
// store.
func (c *logCache) DeleteRange(lo, hi uint64) error {
	c.mu.Lock()
	clear(c.ring)
	c.mu.Unlock()
	return c.LogStore.DeleteRange(lo, hi)
}

// snapshotInfo is the newest snapshot a replica holds: its last index and
// when it was completed.
type snapshotInfo struct {
	index uint64
	at    time.Time
	size  int64 // bytes
}

// trackedSnapshotStore records when a snapshot was last completed in this
// replica's store, taken here or installed from the leader.
type trackedSnapshotStore struct {
	raft.SnapshotStore
	last atomic.Pointer[snapshotInfo]
	// completed, when set, is called after each snapshot completed here.
	completed atomic.Pointer[func(snapshotInfo)]
}

// newTrackedSnapshotStore wraps s, starting from the newest snapshot it
// already holds: the file store names snapshots term-index-milliseconds.
func newTrackedSnapshotStore(s raft.SnapshotStore) *trackedSnapshotStore {
	t := &trackedSnapshotStore{SnapshotStore: s}
	if metas, err := s.List(); err == nil && len(metas) > 0 {
		m := metas[0] // newest first
		info := &snapshotInfo{index: m.Index, size: m.Size}
		if i := strings.LastIndexByte(m.ID, '-'); i >= 0 {
			if ms, err := strconv.ParseInt(m.ID[i+1:], 10, 64); err == nil {
				info.at = time.UnixMilli(ms)
			}
		}
		t.last.Store(info)
	}
	return t
}

// Create starts a snapshot whose successful Close is recorded.
func (t *trackedSnapshotStore) Create(version raft.SnapshotVersion, index, term uint64, configuration raft.Configuration,
	configurationIndex uint64, trans raft.Transport) (raft.SnapshotSink, error) {
	sink, err := t.SnapshotStore.Create(version, index, term, configuration, configurationIndex, trans)
	if err != nil {
		return nil, err
	}
	return &trackedSink{SnapshotSink: sink, store: t, index: index}, nil
}

// latest returns the newest snapshot, or nil when there is none.
func (t *trackedSnapshotStore) latest() *snapshotInfo { return t.last.Load() }

type trackedSink struct {
	raft.SnapshotSink
	store   *trackedSnapshotStore
	index   uint64
	written int64
}

// Write writes snapshot bytes, counted.
func (s *trackedSink) Write(p []byte) (int, error) {
	n, err := s.SnapshotSink.Write(p)
	s.written += int64(n)
	return n, err
}

// Close completes the snapshot and records it.
func (s *trackedSink) Close() error {
	if err := s.SnapshotSink.Close(); err != nil {
		return err
	}
	info := snapshotInfo{index: s.index, at: time.Now(), size: s.written}
	s.store.last.Store(&info)
	if f := s.store.completed.Load(); f != nil {
		(*f)(info)
	}
	return nil
}
