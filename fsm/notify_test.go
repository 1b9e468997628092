package fsm_test

import (
	"bytes"
	"testing"

	"github.com/hakuriver/hakuriver-ha/fsm"
)

func rec(id int64, key, target, state string, attempts int, lastErr string) fsm.NotifyRecord {
	return fsm.NotifyRecord{TaskID: id, Notification: fsm.Notification{
		Key: key, Target: target, Event: fsm.StatusCompleted, State: state, Attempts: attempts, LastError: lastErr, At: at(9)}}
}

// TestNotifyDeliveredMerge checks the rules of NotifyDelivered: attempts
// never decrease, a delivered (or failed) record never goes back to pending,
// unknown tasks are skipped, and a repeated entry changes nothing.
func TestNotifyDeliveredMerge(t *testing.T) {
	h := newHarness(t)
	h.register("n1", 0)
	h.submit(1, 2)
	key := fsm.NotifyKey(1, 1, fsm.StatusCompleted)
	if key != "1-1-completed" {
		t.Fatalf("NotifyKey = %q", key)
	}
	h.ok(&fsm.NotifyDelivered{At: at(10), Deliveries: []fsm.NotifyRecord{
		rec(1, key, "task", fsm.DeliveryPending, 2, "HTTP 500"),
		rec(999, key, "task", fsm.DeliveryDelivered, 1, ""), // no such task: skipped
	}})
	got := h.task(1).Notifications
	if len(got) != 1 || got[0].State != fsm.DeliveryPending || got[0].Attempts != 2 || got[0].LastError != "HTTP 500" {
		t.Fatalf("after a failed attempt: %+v", got)
	}
	// A stale report with fewer attempts keeps the higher count.
	h.ok(&fsm.NotifyDelivered{At: at(11), Deliveries: []fsm.NotifyRecord{rec(1, key, "task", fsm.DeliveryDelivered, 1, "")}})
	got = h.task(1).Notifications
	if len(got) != 1 || got[0].State != fsm.DeliveryDelivered || got[0].Attempts != 2 {
		t.Fatalf("after delivery: %+v", got)
	}
	// Delivered is final, and a repeat of the same entry changes nothing.
	h.unchanged(&fsm.NotifyDelivered{At: at(12), Deliveries: []fsm.NotifyRecord{rec(1, key, "task", fsm.DeliveryPending, 5, "late")}})
	h.unchanged(&fsm.NotifyDelivered{At: at(11), Deliveries: []fsm.NotifyRecord{rec(1, key, "task", fsm.DeliveryDelivered, 1, "")}})
	// Another target of the same key is a record of its own.
	h.ok(&fsm.NotifyDelivered{At: at(13), Deliveries: []fsm.NotifyRecord{rec(1, key, "webhook:abc", fsm.DeliveryFailed, 8, "timeout")}})
	if n := len(h.task(1).Notifications); n != 2 {
		t.Fatalf("records: %d, want 2", n)
	}
	if len(h.task(2).Notifications) != 0 {
		t.Fatal("task 2 got a record")
	}
}

func TestNotifyDeliveredRejects(t *testing.T) {
	h := newHarness(t)
	h.register("n1", 0)
	h.submit(1)
	good := rec(1, "1-1-completed", "task", fsm.DeliveryDelivered, 1, "")
	bad := []fsm.NotifyRecord{
		rec(1, "", "task", fsm.DeliveryDelivered, 1, ""),
		rec(1, "k", "", fsm.DeliveryDelivered, 1, ""),
		rec(1, "k", "task", "sent", 1, ""),
		rec(1, "k", "task", fsm.DeliveryFailed, -1, ""),
		rec(1, "k", "task", fsm.DeliveryFailed, 1, string(bytes.Repeat([]byte("x"), fsm.MaxNotifyError+1))),
	}
	for _, b := range bad {
		// One bad record refuses the whole entry: the good one is not applied.
		h.reject(&fsm.NotifyDelivered{At: at(5), Deliveries: []fsm.NotifyRecord{good, b}}, fsm.ErrInvalid)
	}
	h.reject(&fsm.NotifyDelivered{At: at(5), Targets: []fsm.NotifyTarget{{ID: ""}}}, fsm.ErrInvalid)
}

// TestNotifyStateInSnapshot checks that delivery records and webhook targets
// survive a snapshot and restore, and that a target keeps its first Since.
func TestNotifyStateInSnapshot(t *testing.T) {
	h := newHarness(t)
	h.register("n1", 0)
	h.submit(1)
	h.ok(&fsm.NotifyDelivered{At: at(5), Targets: []fsm.NotifyTarget{{ID: "webhook:a", Since: at(5)}},
		Deliveries: []fsm.NotifyRecord{rec(1, "1-1-completed", "webhook:a", fsm.DeliveryDelivered, 1, "")}})
	h.ok(&fsm.NotifyDelivered{At: at(6), Targets: []fsm.NotifyTarget{{ID: "webhook:a", Since: at(6)}}})
	if got := h.m.NotifyTargets()["webhook:a"]; !got.Equal(at(5)) {
		t.Fatalf("since = %v, want the first registration's %v", got, at(5))
	}
	snap := snapshotBytes(t, h.m)
	if !bytes.Contains(snap, []byte(`"notify_targets"`)) || !bytes.Contains(snap, []byte(`"notifications"`)) {
		t.Fatalf("snapshot lacks the delivery state: %s", snap)
	}
	m2 := fsm.New()
	if err := m2.Restore(bytes.NewReader(snap)); err != nil {
		t.Fatal(err)
	}
	assertSameState(t, "restored", stateBytes(t, h.m), stateBytes(t, m2))
	// Without any delivery state the snapshot has no new key.
	if bytes.Contains(snapshotBytes(t, fsm.New()), []byte("notify")) {
		t.Fatal("empty state mentions notify")
	}
}
