package cluster

import (
	"log/slog"
	"sync"
)

// A Raft snapshot holds the whole state, the task archive included: at a
// million tasks in history it is hundreds of megabytes, and at the fixed
// threshold (SnapshotThreshold log entries) a busy replica would write one
// every few minutes. The snapshot pacer raises the threshold with the
// newest snapshot's size, so that snapshots cost at most about
// snapshotBytesPerEntry written per log entry, at the price of a longer
// Raft log (raft.db) between snapshots. Small states keep the configured
// threshold.

// snapshotBytesPerEntry is the snapshot volume one log entry may cost.
const snapshotBytesPerEntry = 8 << 10

// maxSnapshotThreshold caps the paced threshold (the Raft log's length
// between snapshots).
const maxSnapshotThreshold = 1 << 18

// pacedThreshold is the snapshot threshold for a snapshot of size bytes:
// base (the configured one), or more for a large snapshot, at most
// maxSnapshotThreshold (or base when that is higher).
func pacedThreshold(base uint64, size, perEntry int64) uint64 {
	if perEntry <= 0 {
		perEntry = snapshotBytesPerEntry
	}
	t := uint64(max(size, 0) / perEntry)
	return max(base, min(t, maxSnapshotThreshold))
}

// paceSnapshots keeps Raft's snapshot threshold at pacedThreshold of the
// newest snapshot, from the one on disk now and after every snapshot taken
// or installed. perEntry 0 means snapshotBytesPerEntry.
func (n *raftNode) paceSnapshots(perEntry int64, log *slog.Logger) {
	base := n.r.ReloadableConfig().SnapshotThreshold
	var mu sync.Mutex // ReloadConfig's read-modify-write
	pace := func(info snapshotInfo) {
		mu.Lock()
		defer mu.Unlock()
		rc := n.r.ReloadableConfig()
		want := pacedThreshold(base, info.size, perEntry)
		if rc.SnapshotThreshold == want {
			return
		}
		rc.SnapshotThreshold = want
		if err := n.r.ReloadConfig(rc); err != nil {
			log.Warn("set the snapshot threshold", "threshold", want, "err", err)
			return
		}
		log.Info("snapshot threshold follows the snapshot size", "snapshot_bytes", info.size, "threshold", want)
	}
	n.snapStore.completed.Store(&pace)
	if info := n.snapStore.latest(); info != nil {
		pace(*info)
	}
}
