package cluster

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"

	"github.com/hakuriver/hakuriver-ha/cluster/backup"
	"github.com/hakuriver/hakuriver-ha/fsm"
)

// handleSnapshot streams a backup of the replicated state (GET
// /api/cluster/snapshot, admin only: it holds token hashes and environment
// values). It runs on the leader (onLeader forwards it there and streams
// the answer back).
func (h *Host) handleSnapshot(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	// Who took a backup is in the audit log (and so in the backup itself).
	h.recordAct(r.Context(), "snapshot_save", "cluster state")
	w.Header().Set("Content-Type", "application/octet-stream")
	hdr, sum, n, err := h.writeBackup(w, func(hdr backup.Header) {
		w.Header().Set("Content-Disposition", `attachment; filename="hakuriver-`+strconv.FormatUint(hdr.AppliedIndex, 10)+`.snap"`)
	})
	switch {
	case err != nil && n == 0:
		writeError(w, err)
	case err != nil:
		// The status is sent: the client sees a file without its trailer.
		h.log.Info("snapshot download ended early", "remote", r.RemoteAddr, "bytes", n, "err", err)
	default:
		h.log.Info("snapshot saved", "applied_index", hdr.AppliedIndex, "tasks", hdr.Counts.TasksTotal,
			"bytes", n, "sha256", sum, "took", time.Since(start).Round(time.Millisecond))
	}
}

// writeBackup writes a backup file of the state to w, on the leader: a
// Barrier makes every entry committed before the call applied, then the
// state is captured at one applied index and written in the backup format
// (cluster/backup) without being buffered. ready, when not nil, sees the
// header before the first byte is written. n is 0 when nothing was
// written.
func (h *Host) writeBackup(w io.Writer, ready func(backup.Header)) (hdr backup.Header, sum string, n int64, err error) {
	if err := h.raft.r.Barrier(h.cfg.LeaderWait).Error(); err != nil {
		return hdr, "", 0, fmt.Errorf("%w: barrier: %v", ErrNotLeader, err)
	}
	if err := h.machine.Halted(); err != nil {
		return hdr, "", 0, fmt.Errorf("snapshot: %w", err)
	}
	snap := h.machine.Snapshot()
	defer snap.Close() // Write closes it too; this covers a failure before
	hdr = backup.Header{
		Format:           backup.FormatVersion,
		HakuriverVersion: h.cfg.Version,
		SnapshotVersion:  fsm.SnapshotVersion,
		ClusterID:        snap.ClusterID(),
		AppliedIndex:     snap.AppliedIndex(),
		Term:             h.termOf(snap.AppliedIndex()),
		CreatedAt:        time.Now().UTC(),
		Leader:           h.cfg.NodeID,
		Counts:           snap.Counts(),
	}
	if ready != nil {
		ready(hdr)
	}
	sum, n, err = backup.Write(w, hdr, snap.Write)
	return hdr, sum, n, err
}

// termOf returns the term of the log entry at index: from the log, from
// the last snapshot when the entry was compacted into it, otherwise the
// current term (an upper bound).
func (h *Host) termOf(index uint64) uint64 {
	var l raft.Log
	if err := h.raft.logs.GetLog(index, &l); err == nil {
		return l.Term
	}
	st := h.raft.r.Stats()
	if si, _ := strconv.ParseUint(st["last_snapshot_index"], 10, 64); si == index {
		if t, err := strconv.ParseUint(st["last_snapshot_term"], 10, 64); err == nil {
			return t
		}
	}
	t, _ := strconv.ParseUint(st["term"], 10, 64)
	return t
}

// RestoreConfig says where and as whom RestoreDataDir creates a new
// cluster's first replica.
type RestoreConfig struct {
	// DataDir must not exist or be empty.
	DataDir string
	// NodeID and RaftAddr (host:port, as other replicas reach it) must be
	// those the replica is then started with (node_id, and the advertise
	// or bind address with raft_port).
	NodeID   string
	RaftAddr string
	// Logger receives the Raft snapshot store's logs; nil discards them.
	Logger *slog.Logger
}

// ErrDataDirInUse is returned by RestoreDataDir for a data dir that is not
// empty (a replica's store, running or not).
var ErrDataDirInUse = errors.New("data dir is not empty")

// RestoreDataDir creates the data dir of a new cluster's first replica from
// a state decoded from a backup (backup.File.ReadState). It writes a Raft
// snapshot holding the state at its applied index and term, whose
// configuration is this one replica as the only voter, and sets the
// replica's current term; the Raft log is empty. A host started on the dir
// with the same node ID and Raft address restores the state from that
// snapshot, elects itself and serves it; other replicas join it as into any
// running cluster. The cluster ID is the one in the state.
//
// This is what raft.RecoverCluster ends with (a snapshot carrying the new
// configuration), without a previous store to recover from. Nothing is left
// in the dir when it fails.
func RestoreDataDir(cfg RestoreConfig, m *fsm.Machine, term uint64) (err error) {
	if cfg.NodeID == "" || cfg.RaftAddr == "" || cfg.DataDir == "" {
		return errors.New("restore: node ID, Raft address and data dir are required")
	}
	if err := emptyDir(cfg.DataDir); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			removeContents(cfg.DataDir)
		}
	}()
	index := max(m.AppliedIndex(), 1)
	term = max(term, 1)
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(cfg.DataDir, 2, newHCLogger(logger, "snapshot", nil))
	if err != nil {
		return fmt.Errorf("restore: open snapshot store: %w", err)
	}
	conf := raft.Configuration{Servers: []raft.Server{{
		Suffrage: raft.Voter, ID: raft.ServerID(cfg.NodeID), Address: raft.ServerAddress(cfg.RaftAddr),
	}}}
	_, trans := raft.NewInmemTransport(raft.ServerAddress(cfg.RaftAddr))
	defer trans.Close()
	sink, err := snaps.Create(raft.SnapshotVersionMax, index, term, conf, index, trans)
	if err != nil {
		return fmt.Errorf("restore: create snapshot: %w", err)
	}
	if err := m.Snapshot().Write(sink); err != nil {
		sink.Cancel() //nolint:errcheck // the write error is the one to report
		return fmt.Errorf("restore: %w", err)
	}
	if err := sink.Close(); err != nil {
		return fmt.Errorf("restore: close snapshot: %w", err)
	}
	// The archived tasks also go straight into the replica's archive, so
	// that its first start keeps it instead of rebuilding it from the
	// snapshot.
	if err := m.CopyArchiveTo(filepath.Join(cfg.DataDir, ArchiveFile)); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	logs, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(cfg.DataDir, "raft.db")})
	if err != nil {
		return fmt.Errorf("restore: create raft log: %w", err)
	}
	// The term never goes back: the new cluster's first election is in a
	// later term than every entry of the state.
	if err := logs.SetUint64([]byte("CurrentTerm"), term); err != nil {
		logs.Close()
		return fmt.Errorf("restore: set term: %w", err)
	}
	if err := logs.Close(); err != nil {
		return fmt.Errorf("restore: close raft log: %w", err)
	}
	return nil
}

// emptyDir creates dir or checks that it is empty.
func emptyDir(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return fmt.Errorf("restore: create data dir: %w", err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("restore: read data dir: %w", err)
	}
	if len(entries) > 0 {
		return fmt.Errorf("restore: %s: %w (%d entries, e.g. %s): restore into a new, empty directory",
			dir, ErrDataDirInUse, len(entries), entries[0].Name())
	}
	return nil
}

// removeContents removes what a failed restore created in dir.
func removeContents(dir string) {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		os.RemoveAll(filepath.Join(dir, e.Name())) //nolint:errcheck // best effort on the way out
	}
}
