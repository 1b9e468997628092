package cluster

import (
	"context"
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/fsm"
)

// TestPacedThreshold: the configured threshold for small snapshots, one
// entry per snapshotBytesPerEntry for large ones, capped.
func TestPacedThreshold(t *testing.T) {
	for _, c := range []struct {
		base     uint64
		size     int64
		perEntry int64
		want     uint64
	}{
		{8192, 0, 0, 8192},
		{8192, 7 << 20, 0, 8192}, // 7 MiB: 896 entries' worth
		{8192, 690 << 20, 0, 690 << 20 / snapshotBytesPerEntry}, // 1M tasks of history
		{8192, 100 << 30, 0, maxSnapshotThreshold},
		{1 << 20, 100 << 30, 0, 1 << 20}, // a configured threshold above the cap stays
		{64, 6400, 10, 640},
		{64, -1, 10, 64},
	} {
		if got := pacedThreshold(c.base, c.size, c.perEntry); got != c.want {
			t.Errorf("pacedThreshold(%d, %d, %d) = %d, want %d", c.base, c.size, c.perEntry, got, c.want)
		}
	}
}

// TestSnapshotThresholdFollowsSnapshotSize takes a snapshot of a replica
// (real Raft, boltdb, file snapshot store) and checks Raft's threshold
// became the paced one for its size, and that a restart on the same data
// directory starts from the snapshot on disk.
func TestSnapshotThresholdFollowsSnapshotSize(t *testing.T) {
	const base, perEntry = 64, 16
	cfg := DefaultConfig()
	cfg.NodeID = "h1"
	cfg.DataDir, cfg.SharedDir = t.TempDir(), t.TempDir()
	cfg.APIPort, cfg.RaftPort, cfg.GossipPort = 0, 0, 0
	cfg.BootstrapExpect = 1
	cfg.FastGossip = true
	cfg.ClusterToken = testToken
	cfg.AnonymousRole = fsm.RoleOperator
	cfg.SnapshotThreshold = base
	cfg.snapshotBytesPerEntry = perEntry
	cfg.Logger = testLogger(t)
	start := func() *Host {
		h, err := StartHost(context.Background(), cfg)
		if err != nil {
			t.Fatalf("start host: %v", err)
		}
		waitFor(t, 15*time.Second, h.IsLeader)
		return h
	}
	stop := func(h *Host) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := h.Close(ctx); err != nil {
			t.Errorf("close: %v", err)
		}
	}
	h := start()
	if got := h.raft.r.ReloadableConfig().SnapshotThreshold; got != base {
		t.Fatalf("threshold before any snapshot = %d, want the configured %d", got, base)
	}
	for range 20 {
		submitVia(t, h, `{"command":"echo","arguments":["a task to make the snapshot larger than 64 x 16 bytes"]}`, "")
	}
	if err := h.raft.r.Snapshot().Error(); err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	info := h.raft.snapStore.latest()
	if info == nil || info.size <= base*perEntry {
		t.Fatalf("snapshot info %+v: want a size above %d bytes", info, base*perEntry)
	}
	want := pacedThreshold(base, info.size, perEntry)
	if got := h.raft.r.ReloadableConfig().SnapshotThreshold; got != want || got <= base {
		t.Fatalf("threshold after a %d-byte snapshot = %d, want %d", info.size, got, want)
	}
	stop(h)

	h = start()
	defer stop(h)
	if got := h.raft.r.ReloadableConfig().SnapshotThreshold; got != want {
		t.Fatalf("threshold after a restart = %d, want %d (from the snapshot on disk)", got, want)
	}
}
