package cluster

import (
	"io"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// TestTrackedSnapshotStore: a completed snapshot is recorded, a cancelled
// one is not, and a store opened again (a restarted replica) starts from
// the newest snapshot on disk with its time.
func TestTrackedSnapshotStore(t *testing.T) {
	dir := t.TempDir()
	open := func() *trackedSnapshotStore {
		fs, err := raft.NewFileSnapshotStore(dir, 2, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		return newTrackedSnapshotStore(fs)
	}
	s := open()
	if s.latest() != nil {
		t.Fatalf("an empty store has a snapshot: %+v", s.latest())
	}
	write := func(index uint64, cancel bool) {
		sink, err := s.Create(raft.SnapshotVersionMax, index, 1, raft.Configuration{}, 1, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := sink.Write([]byte("state")); err != nil {
			t.Fatal(err)
		}
		if cancel {
			err = sink.Cancel()
		} else {
			err = sink.Close()
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	before := time.Now()
	write(10, false)
	if l := s.latest(); l == nil || l.index != 10 || l.at.Before(before) {
		t.Fatalf("after a snapshot at 10: %+v", l)
	}
	write(20, true)
	if l := s.latest(); l == nil || l.index != 10 {
		t.Fatalf("after a cancelled snapshot at 20: %+v", l)
	}
	reopened := open().latest()
	if reopened == nil || reopened.index != 10 || reopened.at.Before(before.Add(-time.Second)) || reopened.at.After(time.Now()) {
		t.Fatalf("reopened store: %+v (snapshot taken after %v)", reopened, before)
	}
}

// TestLogCache: entries read back through the cache equal what was
// stored; a small one is kept as a copy (not the caller's entry, which
// on the leader is part of the apply's future), a large one not at all,
// and a deletion empties the ring so that nothing deleted reads back.
func TestLogCache(t *testing.T) {
	inner := raft.NewInmemStore()
	c := newLogCache(inner, 4)
	small := &raft.Log{Index: 1, Term: 1, Type: raft.LogCommand, Data: []byte("submit")}
	big := &raft.Log{Index: 2, Term: 1, Type: raft.LogCommand, Data: make([]byte, logCacheMaxEntryBytes+1)}
	if err := c.StoreLogs([]*raft.Log{small, big}); err != nil {
		t.Fatal(err)
	}
	if e := c.ring[1]; e == nil || e == small || e.Index != 1 || string(e.Data) != "submit" {
		t.Errorf("ring slot of entry 1 = %+v, want a copy of it", e)
	}
	if e := c.ring[2]; e != nil {
		t.Errorf("ring slot of entry 2 (%d bytes) = %+v, want none", len(big.Data), e)
	}
	for _, want := range []*raft.Log{small, big} {
		var got raft.Log
		if err := c.GetLog(want.Index, &got); err != nil || got.Index != want.Index || len(got.Data) != len(want.Data) {
			t.Errorf("GetLog(%d) = %+v, %v", want.Index, got.Index, err)
		}
	}
	// Entry 5 takes entry 1's slot: entry 1 now comes from the store.
	if err := c.StoreLog(&raft.Log{Index: 5, Term: 2, Data: []byte("later")}); err != nil {
		t.Fatal(err)
	}
	var got raft.Log
	if err := c.GetLog(1, &got); err != nil || string(got.Data) != "submit" {
		t.Errorf("GetLog(1) after its slot was reused = %q, %v", got.Data, err)
	}
	if err := c.DeleteRange(1, 5); err != nil {
		t.Fatal(err)
	}
	for i := uint64(1); i <= 5; i++ {
		if err := c.GetLog(i, &got); err == nil {
			t.Errorf("GetLog(%d) after DeleteRange = %+v, want an error", i, got)
		}
	}
}
