package fsm

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

// TestSnapshotStreamMatchesEncoder checks that the streaming writer emits
// exactly what encoding the whole state at once would, for an empty and a
// populated machine.
func TestSnapshotStreamMatchesEncoder(t *testing.T) {
	for _, n := range []int{0, 1, 50} {
		m := New()
		if n > 0 {
			var tasks []*Task
			for i := 1; i <= n; i++ {
				tasks = append(tasks, &Task{TaskID: int64(i), Status: StatusPending, Command: "echo <&>", SubmittedAt: time.Unix(int64(i), 0).UTC()})
			}
			data, _ := Encode(&SubmitTasks{RequestID: "r", Tasks: tasks})
			if r := m.Apply(1, data); r.Err != nil {
				t.Fatal(r.Err)
			}
			data, _ = Encode(&RegisterNode{Node: &Node{Hostname: "n1", TotalCores: 4}, At: time.Unix(9, 0).UTC()})
			m.Apply(2, data)
		}
		snap := m.Snapshot()
		var streamed bytes.Buffer
		if err := snap.Write(&streamed); err != nil {
			t.Fatal(err)
		}
		var whole bytes.Buffer
		if err := json.NewEncoder(&whole).Encode(&snap.state); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(streamed.Bytes(), whole.Bytes()) {
			t.Fatalf("n=%d: streamed snapshot differs:\n%s\nwant\n%s", n, streamed.Bytes(), whole.Bytes())
		}
		r := New()
		if err := r.Restore(&streamed); err != nil {
			t.Fatalf("n=%d restore: %v", n, err)
		}
		if r.Len() != n || r.AppliedIndex() != m.AppliedIndex() {
			t.Fatalf("n=%d restored %d tasks at %d", n, r.Len(), r.AppliedIndex())
		}
	}
}
