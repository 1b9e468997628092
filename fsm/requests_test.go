package fsm

import (
	"bytes"
	"testing"
	"time"
)

// TestRequestIDsPrunedDeterministically checks that request IDs older than
// RequestRetention are forgotten at the same entry on a live and on a
// restored replica.
func TestRequestIDsPrunedDeterministically(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	submit := func(m *Machine, idx uint64, id int64, req string, at time.Time) {
		t.Helper()
		data, err := Encode(&SubmitTasks{RequestID: req, Tasks: []*Task{{TaskID: id, Status: StatusPending, SubmittedAt: at}}})
		if err != nil {
			t.Fatal(err)
		}
		if r := m.Apply(idx, data); r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	live := New()
	submit(live, 1, 1, "old", t0)
	submit(live, 2, 2, "mid", t0.Add(20*time.Hour))
	submit(live, 3, 3, "new", t0.Add(25*time.Hour))
	if _, ok := live.RequestTasks("old"); ok {
		t.Fatal("a request older than the retention is still remembered")
	}
	for _, r := range []string{"mid", "new"} {
		if _, ok := live.RequestTasks(r); !ok {
			t.Fatalf("request %s forgotten too early", r)
		}
	}
	var snap bytes.Buffer
	if err := live.Snapshot().Write(&snap); err != nil {
		t.Fatal(err)
	}
	restored := New()
	if err := restored.Restore(bytes.NewReader(snap.Bytes())); err != nil {
		t.Fatal(err)
	}
	for _, m := range []*Machine{live, restored} {
		submit(m, 4, 4, "later", t0.Add(46*time.Hour))
	}
	var a, b bytes.Buffer
	live.Snapshot().Write(&a)
	restored.Snapshot().Write(&b)
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatal("live and restored replicas pruned differently")
	}
	if _, ok := restored.RequestTasks("mid"); ok {
		t.Fatal("restored replica kept an expired request")
	}
	if _, ok := restored.RequestTasks("new"); !ok {
		t.Fatal("restored replica forgot a live request")
	}
}
