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
