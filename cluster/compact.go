package cluster

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"
)

// RaftStoreFile is the Raft log and stable store in a host's data dir.
const RaftStoreFile = "raft.db"

// ErrStoreLocked is returned when another process (a running host) holds
// the Raft store.
var ErrStoreLocked = errors.New("raft store in use")

// compactLockWait is how long CompactStore waits for the store's lock.
const compactLockWait = 500 * time.Millisecond

// compactTxSize bounds what one transaction of the copy holds.
const compactTxSize = 64 << 20

// CompactResult is what CompactStore did.
type CompactResult struct {
	Path   string `json:"path"`
	Before int64  `json:"before_bytes"`
	After  int64  `json:"after_bytes"`
	// Keys counts the entries copied per top-level bucket ("logs", "conf").
	Keys map[string]int `json:"keys"`
}

// CompactStore rewrites dataDir/raft.db without its free pages: boltdb never
// gives back the space of deleted log entries, so a store that once held a
// long log stays large. It works offline only: it takes the store's
// exclusive lock (ErrStoreLocked while a host runs on dataDir, which also
// keeps one from starting meanwhile), copies every bucket into
// raft.db.compact with bbolt's Compact, checks that every bucket holds as
// many keys as before, and renames the copy over the original (atomic on
// one filesystem). A failure before the rename leaves the original as it
// was.
func CompactStore(dataDir string) (CompactResult, error) {
	path := filepath.Join(dataDir, RaftStoreFile)
	res := CompactResult{Path: path}
	fi, err := os.Stat(path)
	if err != nil {
		return res, fmt.Errorf("compact: %w (is %s a host's data dir?)", err, dataDir)
	}
	res.Before = fi.Size()
	src, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: compactLockWait})
	if errors.Is(err, bolt.ErrTimeout) {
		holder := "a host"
		if pid := flockHolder(path); pid > 0 {
			holder += fmt.Sprintf(" (pid %d)", pid)
		}
		return res, fmt.Errorf("compact %s: %w: %s is running on %s; stop it first", path, ErrStoreLocked, holder, dataDir)
	}
	if err != nil {
		return res, fmt.Errorf("compact: open %s: %w", path, err)
	}
	defer src.Close()
	tmp := path + ".compact"
	if err := os.Remove(tmp); err != nil && !errors.Is(err, os.ErrNotExist) {
		return res, fmt.Errorf("compact: remove a stale %s: %w", tmp, err)
	}
	// The new file is made here, never through a symlink, and gets the
	// old one's owner and mode: compact run as root must not leave a
	// raft.db the host's own user cannot open.
	nf, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, fi.Mode().Perm())
	if err != nil {
		return res, fmt.Errorf("compact: create %s: %w", tmp, err)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		err = nf.Chown(int(st.Uid), int(st.Gid))
	}
	if cerr := nf.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp) //nolint:errcheck // the error that matters is err
		return res, fmt.Errorf("compact: prepare %s: %w", tmp, err)
	}
	if res.Keys, err = copyStore(src, tmp); err != nil {
		os.Remove(tmp) //nolint:errcheck // the error that matters is err
		return res, err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp) //nolint:errcheck // the error that matters is err
		return res, fmt.Errorf("compact: replace %s: %w", path, err)
	}
	if err := syncDir(dataDir); err != nil {
		return res, err
	}
	if fi, err = os.Stat(path); err != nil {
		return res, fmt.Errorf("compact: %w", err)
	}
	res.After = fi.Size()
	return res, nil
}

// copyStore compacts src into a new file at dst, synced, and returns the key
// counts it checked on both sides.
func copyStore(src *bolt.DB, dst string) (map[string]int, error) {
	want, err := countKeys(src)
	if err != nil {
		return nil, err
	}
	db, err := bolt.Open(dst, 0o600, nil)
	if err != nil {
		return nil, fmt.Errorf("compact: create %s: %w", dst, err)
	}
	if err := bolt.Compact(db, src, compactTxSize); err != nil {
		db.Close()
		return nil, fmt.Errorf("compact: copy into %s: %w", dst, err)
	}
	got, err := countKeys(db)
	if err == nil {
		err = db.Sync()
	}
	if cerr := db.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("compact: close %s: %w", dst, cerr)
	}
	if err != nil {
		return nil, err
	}
	for name, n := range want {
		if got[name] != n {
			return nil, fmt.Errorf("compact: bucket %s has %d keys in the copy, %d in the original: original kept", name, got[name], n)
		}
	}
	if len(got) != len(want) {
		return nil, fmt.Errorf("compact: the copy has %d buckets, the original %d: original kept", len(got), len(want))
	}
	return want, nil
}

// countKeys counts the keys of every top-level bucket of db.
func countKeys(db *bolt.DB) (map[string]int, error) {
	out := map[string]int{}
	err := db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			out[string(name)] = b.Stats().KeyN
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("compact: count keys: %w", err)
	}
	return out, nil
}

// flockHolder returns the PID holding a flock on path, read from
// /proc/locks, or 0 when unknown.
func flockHolder(path string) int {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return 0
	}
	b, err := os.ReadFile("/proc/locks")
	if err != nil {
		return 0
	}
	// "1: FLOCK  ADVISORY  WRITE 25756 fe:00:10110101 0 EOF": the device
	// as major:minor in hex, then the inode.
	dev := fmt.Sprintf("%02x:%02x:%d", unix.Major(st.Dev), unix.Minor(st.Dev), st.Ino)
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 6 && f[1] == "FLOCK" && f[5] == dev {
			if pid, err := strconv.Atoi(f[4]); err == nil {
				return pid
			}
		}
	}
	return 0
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("compact: sync %s: %w", dir, err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("compact: sync %s: %w", dir, err)
	}
	return nil
}
