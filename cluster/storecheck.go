package cluster

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/hakuriver/hakuriver-ha/ops/doctor"
)

// compactAdvice is how much of raft.db may be free pages before doctor
// suggests compacting it (both bounds must be passed).
const (
	compactAdviceBytes    = 256 << 20
	compactAdviceFraction = 0.5
)

// inspectWait bounds the wait for a stopped replica's store lock.
const inspectWait = 200 * time.Millisecond

// StoreCheck is doctor's "raft store" check of a replica that is not
// running (doctor --local): raft.db's size and free pages, the snapshots,
// and whether min_free_disk (bytes, 0 = none) would make it refuse writes
// now. A store held by a running host is reported by size only.
func StoreCheck(dataDir string, minFree uint64) doctor.Check {
	var free uint64
	path := filepath.Join(absPath(dataDir), RaftStoreFile)
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return doctor.Check{Name: "raft store", Status: doctor.StatusOK, Measured: path + ": none yet (a new replica)"}
	}
	if db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: inspectWait, PreLoadFreelist: true}); err == nil {
		free = freeBytes(db.Stats())
		db.Close()
	}
	return storeCheck(dataDir, free, newDiskGuard(absPath(dataDir), minFree, slog.New(slog.NewTextHandler(io.Discard, nil))))
}

// freeBytes is the space of raft.db's free pages. bbolt sets the page
// counts when it loads the freelist and after each write (FreeAlloc only
// after a write); its pages are the OS's page size.
func freeBytes(st bolt.Stats) uint64 {
	return uint64(st.FreePageN+st.PendingPageN) * uint64(os.Getpagesize())
}

// adviseCompact says whether free pages of a store of size bytes are worth
// a compaction.
func adviseCompact(free, size uint64) bool {
	return free > compactAdviceBytes && float64(free) > compactAdviceFraction*float64(size)
}

// storeCheck reports the size of the Raft store in dataDir and its
// snapshots, the share of raft.db that is free pages (boltdb never shrinks
// its file), and whether guard refuses writes now.
func storeCheck(dataDir string, free uint64, guard *diskGuard) doctor.Check {
	const name = "raft store"
	dir := absPath(dataDir)
	path := filepath.Join(dir, RaftStoreFile)
	fi, err := os.Stat(path)
	if err != nil {
		return doctor.Check{Name: name, Status: doctor.StatusWarn, Measured: err.Error(), Cause: "cannot read the Raft store's size: check data_dir"}
	}
	size := uint64(fi.Size())
	snapBytes, snaps := dirSize(filepath.Join(dir, "snapshots"))
	m := fmt.Sprintf("%s: %s (%s in free pages); %d snapshot files, %s", path, fmtBytes(size), fmtBytes(free), snaps, fmtBytes(snapBytes))
	if guard != nil && guard.min > 0 {
		m += "; min_free_disk " + fmtBytes(guard.min)
	}
	c := doctor.Check{Name: name, Status: doctor.StatusOK, Measured: m}
	switch err := guard.check(); {
	case err != nil:
		c.Status, c.Measured = doctor.StatusFail, m+": "+err.Error()
		c.Cause = "the replica refuses writes while its data_dir's filesystem is almost full: free space there (or lower cluster.min_free_disk)"
	case adviseCompact(free, size):
		c.Status = doctor.StatusWarn
		c.Cause = "most of raft.db is free pages left by a long log: stop this replica, run hakuriver host compact --data-dir " + dir + ", start it again"
	}
	return c
}

// dirSize returns the bytes and the number of regular files under dir
// (0, 0 when it cannot be read).
func dirSize(dir string) (uint64, int) {
	var bytes uint64
	var n int
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error { //nolint:errcheck // a partial sum is fine
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		if info, err := d.Info(); err == nil {
			bytes += uint64(info.Size())
			n++
		}
		return nil
	})
	return bytes, n
}
