package cluster

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
)

// TestCompactStore fills a real raft-boltdb store with a long log, deletes
// most of it as a snapshot's log truncation does (the file keeps its size),
// and compacts it: the file shrinks, every remaining entry and the stable
// store's keys read back the same, and the store opens as before. While
// the store is open (a running host), compact refuses and changes nothing.
func TestCompactStore(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, RaftStoreFile)
	store, err := raftboltdb.New(raftboltdb.Options{Path: path, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	payload := bytes.Repeat([]byte("x"), 4096)
	const n, keep = 4000, 100
	var batch []*raft.Log
	for i := uint64(1); i <= n; i++ {
		batch = append(batch, &raft.Log{Index: i, Term: 3, Type: raft.LogCommand, Data: payload})
		if len(batch) == 500 {
			if err := store.StoreLogs(batch); err != nil {
				t.Fatal(err)
			}
			batch = nil
		}
	}
	if err := store.DeleteRange(1, n-keep); err != nil {
		t.Fatal(err)
	}
	if err := store.SetUint64([]byte("CurrentTerm"), 3); err != nil {
		t.Fatal(err)
	}
	if err := store.Set([]byte("LastVoteCand"), []byte("h2")); err != nil {
		t.Fatal(err)
	}

	// A running host holds the store: compact waits for its lock, then
	// refuses.
	before, _ := os.ReadFile(path)
	if _, err := CompactStore(dir); !errors.Is(err, ErrStoreLocked) || !strings.Contains(err.Error(), fmt.Sprintf("(pid %d)", os.Getpid())) {
		t.Fatalf("compact of an open store: %v, want ErrStoreLocked naming pid %d", err, os.Getpid())
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Fatal("a refused compact changed raft.db")
	}
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	// doctor --local sees the free pages of the stopped store.
	if c := StoreCheck(dir, 0); c.Status != "ok" || !strings.Contains(c.Measured, "MiB in free pages") || strings.Contains(c.Measured, "(0B in free pages)") {
		t.Errorf("store check before compact: %+v", c)
	}

	// The store belongs to the host's user (nobody here) with its own
	// mode: compact, run as root, keeps both.
	const hostUID, hostGID = 65534, 65534
	if err := os.Chown(path, hostUID, hostGID); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o640); err != nil {
		t.Fatal(err)
	}
	res, err := CompactStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o640 ||
		fi.Sys().(*syscall.Stat_t).Uid != hostUID || fi.Sys().(*syscall.Stat_t).Gid != hostGID {
		t.Fatalf("raft.db after compact: %v %v, want mode 0640 owned by %d:%d", fi.Mode(), err, hostUID, hostGID)
	}
	t.Logf("compacted: %d -> %d bytes, keys %v", res.Before, res.After, res.Keys)
	if res.After >= res.Before/4 || res.Keys["logs"] != keep || res.Keys["conf"] != 2 {
		t.Fatalf("compact = %+v: want a file under a quarter of the size, %d logs and 2 stable keys", res, keep)
	}
	if _, err := os.Stat(path + ".compact"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("temporary copy left behind: %v", err)
	}

	store, err = raftboltdb.New(raftboltdb.Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	first, _ := store.FirstIndex()
	last, _ := store.LastIndex()
	if first != n-keep+1 || last != n {
		t.Fatalf("after compact: indexes %d..%d, want %d..%d", first, last, n-keep+1, n)
	}
	var l raft.Log
	if err := store.GetLog(n-7, &l); err != nil || l.Term != 3 || !bytes.Equal(l.Data, payload) {
		t.Fatalf("entry %d after compact: %+v %v", n-7, l, err)
	}
	if term, err := store.GetUint64([]byte("CurrentTerm")); err != nil || term != 3 {
		t.Fatalf("CurrentTerm = %d %v", term, err)
	}
	if v, err := store.Get([]byte("LastVoteCand")); err != nil || string(v) != "h2" {
		t.Fatalf("LastVoteCand = %q %v", v, err)
	}

	if c := StoreCheck(dir, 1<<62); c.Status != "fail" || !strings.Contains(c.Measured, "min_free_disk") {
		t.Errorf("store check below min_free_disk: %+v", c)
	}
	if !adviseCompact(900<<20, 1<<30) || adviseCompact(100<<20, 150<<20) || adviseCompact(300<<20, 1<<30) {
		t.Error("adviseCompact thresholds")
	}

	if _, err := CompactStore(t.TempDir()); err == nil {
		t.Fatal("compact of a dir without raft.db succeeded")
	}
}
