package fsm_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/hakuriver/hakuriver-ha/fsm"
)

// fuzzBase is a small state with a task in every status, two nodes and a
// request ID, so that fuzzed commands have something to hit.
func fuzzBase(t testing.TB) (snap []byte, idx uint64) {
	h := newHarness(t)
	h.register("n1", 0)
	h.register("n2", 0)
	for i, s := range fsm.AllStatuses() {
		h.taskIn(int64(i+1), s, "n1")
	}
	h.ok(&fsm.SubmitTasks{RequestID: "r1", Tasks: []*fsm.Task{newTask(100), newTask(101)}})
	return snapshotBytes(t, h.m), h.idx
}

// FuzzDecode feeds arbitrary entries to Decode and Apply. Apply must never
// panic; an entry Decode cannot read must halt the Machine without changing
// it; a rejected entry must wrap one of the package's errors and change
// nothing; an accepted one must leave a state that snapshots and restores
// byte-identically; Decode and Encode must agree.
func FuzzDecode(f *testing.F) {
	base, baseIdx := fuzzBase(f)
	for _, c := range sampleCommands() {
		f.Add(encode(f, c))
	}
	for _, c := range []fsm.Command{
		&fsm.UpdateTask{TaskID: 3, Status: fsm.StatusPaused, At: at(1)},
		&fsm.UpdateTask{TaskID: 5, Status: fsm.StatusCompleted, SSHPort: 1, At: at(1)},
		&fsm.KillTask{TaskID: 4, At: at(1)},
		&fsm.AssignTask{TaskID: 1, Node: "n2", GPUs: []int{0}, At: at(1)},
		&fsm.SetNodeStatus{Hostname: "n1", Status: fsm.NodeOffline, At: at(1)},
		&fsm.SubmitTasks{RequestID: "r1", Tasks: []*fsm.Task{newTask(1)}},
		&fsm.SubmitTasks{Tasks: []*fsm.Task{newTask(1)}},
	} {
		f.Add(encode(f, c))
	}
	for _, b := range [][]byte{nil, {0}, {0x80}, {0xff, 1, 2}, {1}, {2, '{', '}'}, {1, 'n', 'u', 'l', 'l'},
		[]byte("\x01{\"tasks\":[null]}"), []byte("\x04{\"node\":{\"hostname\":\"x\",\"numa_topology\":{\"0\":null}}}"),
		[]byte("\x02{\"task_id\":\"1\",\"status\":\"running\",\"at\":\"0001-01-01T00:00:00+23:59\"}")} {
		f.Add(b)
	}

	f.Fuzz(func(t *testing.T, data []byte) {
		m := fsm.New()
		if err := m.Restore(bytes.NewReader(base)); err != nil {
			t.Fatal(err)
		}
		before := stateBytes(t, m)
		c, ok, decErr := fsm.Decode(data)
		r := m.Apply(baseIdx+1, data)
		wantIdx := baseIdx + 1
		if decErr != nil {
			wantIdx = baseIdx // a halting entry is not applied
		}
		if got := m.AppliedIndex(); got != wantIdx {
			t.Fatalf("AppliedIndex = %d, want %d", got, wantIdx)
		}
		switch {
		case decErr != nil:
			if c != nil || ok {
				t.Fatalf("Decode returned a command with an error")
			}
			if !errors.Is(r.Err, fsm.ErrHalted) || m.Halted() == nil {
				t.Fatalf("undecodable entry: Apply error %v, Halted %v, want ErrHalted", r.Err, m.Halted())
			}
			assertSameState(t, "halting fuzz entry", before, stateBytes(t, m))
			return
		case !ok:
			if c != nil || r.Err != nil || r.Value != nil {
				t.Fatalf("ignorable entry: Decode %v, Apply %+v", c, r)
			}
		default:
			if c.Type() != fsm.CommandType(data[0])&^fsm.IgnoreUnknownFlag {
				t.Fatalf("Decode(%#x…) returned %T", data[0], c)
			}
			// Encode is a fixed point after one decode.
			if enc, err := fsm.Encode(c); err == nil {
				c2, ok2, err2 := fsm.Decode(enc)
				if err2 != nil || !ok2 {
					t.Fatalf("re-decoding %q: %v", enc, err2)
				}
				if enc2, err := fsm.Encode(c2); err != nil || !bytes.Equal(enc, enc2) {
					t.Fatalf("Encode not stable:\n%s\n%s (%v)", enc, enc2, err)
				}
			}
		}
		if r.Err != nil {
			if !errors.Is(r.Err, fsm.ErrInvalid) && !errors.Is(r.Err, fsm.ErrNotFound) && !errors.Is(r.Err, fsm.ErrConflict) {
				t.Fatalf("error %q wraps none of the package errors", r.Err)
			}
			assertSameState(t, "rejected fuzz entry", before, stateBytes(t, m))
			return
		}
		checkCounts(t, m)
		var snap bytes.Buffer
		if err := m.Snapshot().Write(&snap); err != nil {
			t.Fatalf("accepted entry %q leaves a state that cannot be snapshotted: %v", data, err)
		}
		m2 := fsm.New()
		if err := m2.Restore(bytes.NewReader(snap.Bytes())); err != nil {
			t.Fatalf("accepted entry %q leaves a snapshot that cannot be restored: %v", data, err)
		}
		if again := snapshotBytes(t, m2); !bytes.Equal(again, snap.Bytes()) {
			assertSameState(t, "restore after fuzz entry", snap.Bytes(), again)
		}
	})
}
