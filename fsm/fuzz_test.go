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
		m, twin := fsm.New(), fsm.New()
		for _, x := range []*fsm.Machine{m, twin} {
			if err := x.Restore(bytes.NewReader(base)); err != nil {
				t.Fatal(err)
			}
		}
		before := stateBytes(t, m)
		c, ok, decErr := fsm.Decode(data)
		r := m.Apply(baseIdx+1, data)
		// Determinism: the same entry applied to a second machine in the
		// same state answers the same and leaves a byte-identical state.
		if r2 := twin.Apply(baseIdx+1, data); errString(r.Err) != errString(r2.Err) {
			t.Fatalf("two machines answer %q and %q", errString(r.Err), errString(r2.Err))
		}
		if a, b := snapshotBytes(t, m), snapshotBytes(t, twin); !bytes.Equal(a, b) {
			assertSameState(t, "the same entry applied to two machines", a, b)
		}
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

// errString is err's message, "" for nil.
func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// fuzzRichBase is fuzzBase with accounts, an audited entry, an environment
// and a cluster ID, so that every snapshot field has content to mutate.
func fuzzRichBase(t testing.TB) []byte {
	h := newHarness(t)
	h.register("n1", 0)
	for i, s := range fsm.AllStatuses() {
		h.taskIn(int64(i+1), s, "n1")
	}
	h.ok(&fsm.SubmitTasks{RequestID: "r1", Tasks: []*fsm.Task{newTask(100)}})
	h.ok(&fsm.BootstrapAuth{Admin: testUser("root", fsm.RoleAdmin), Token: testToken("0000aaaa", "root")})
	h.ok(&fsm.PutGroup{Group: &fsm.Group{Name: "ml", Policy: fsm.Policy{Privileged: true}}, Create: true})
	alice := testUser("alice", fsm.RoleUser)
	alice.Groups = []string{"ml"}
	h.ok(&fsm.PutUser{User: alice, Create: true})
	h.ok(&fsm.CreateToken{Token: testToken("1111aaaa", "alice")})
	w, err := fsm.Wrap(&fsm.SetNodeDrain{Hostname: "n1", Drained: true},
		fsm.AuditRecord{At: at(9), User: "root", Role: fsm.RoleAdmin, Via: "h1", RequestID: "q1"}, 10, 0)
	if err != nil {
		t.Fatal(err)
	}
	h.ok(w)
	h.ok(&fsm.SetEnvironment{Name: "torch", Replica: "h1"})
	h.ok(&fsm.SetClusterID{ID: "c0ffee"})
	return snapshotBytes(t, h.m)
}

// FuzzRestore feeds mutated snapshots to Restore. It must never panic. A
// refused snapshot leaves the machine exactly as it was (state, applied
// index, halt). An accepted one gives a consistent state (checkCounts) that
// snapshots, restores and snapshots again byte-identically, and on which
// every sample command applies the same way on two machines (no panic,
// same answer, identical states).
func FuzzRestore(f *testing.F) {
	rich := fuzzRichBase(f)
	empty := snapshotBytes(f, fsm.New())
	f.Add(rich)
	f.Add(empty)
	f.Add(rich[:len(rich)/2])
	f.Add(bytes.Replace(rich, []byte(`"tasks":[`), []byte(`"tasks":[{"task_id":"1"},`), 1))
	f.Add(bytes.Replace(rich, []byte(`"nodes":[`), []byte(`"nodes":[null,`), 1))
	for _, s := range []string{`{}`, `{"version":1}`, `null`, `{"version":2,"tasks":null}`, `[]`, `{"tasks":[{}]}`,
		`{"version":2,"nodes":[{"hostname":"a"},{"hostname":"a"}]}`, `{"audit":{"x":1}}`, `{"accounts":null}`} {
		f.Add([]byte(s))
	}
	// The machine every input is restored over: a different state, so
	// that an unchanged machine is told from an empty one.
	prev := fuzzRichBase(f)
	prev = bytes.Replace(prev, []byte(`"c0ffee"`), []byte(`"previous"`), 1)
	cmds := sampleCommands()
	cmds = append(cmds, &fsm.RemoveUser{Name: "alice"}, &fsm.RevokeToken{ID: "1111aaaa"},
		&fsm.SetEnvironment{Name: "torch", Replica: "h2"}, &fsm.UpdateTask{TaskID: 3, Status: fsm.StatusCompleted, At: at(20)})
	f.Fuzz(func(t *testing.T, data []byte) {
		m := fsm.New()
		if err := m.Restore(bytes.NewReader(prev)); err != nil {
			t.Fatal(err)
		}
		before := snapshotBytes(t, m)
		if err := m.Restore(bytes.NewReader(data)); err != nil {
			if err.Error() == "" {
				t.Fatal("an error without a message")
			}
			assertSameState(t, "refused snapshot", before, snapshotBytes(t, m))
			if m.Halted() != nil {
				t.Fatalf("a refused snapshot halted the machine: %v", m.Halted())
			}
			return
		}
		checkCounts(t, m)
		snap := snapshotBytes(t, m)
		twin := fsm.New()
		if err := twin.Restore(bytes.NewReader(snap)); err != nil {
			t.Fatalf("the snapshot of a restored state is refused: %v", err)
		}
		if again := snapshotBytes(t, twin); !bytes.Equal(again, snap) {
			assertSameState(t, "restore of a restored state", snap, again)
		}
		idx := m.AppliedIndex()
		for _, c := range cmds {
			idx++
			data := encode(t, c)
			r1, r2 := m.Apply(idx, data), twin.Apply(idx, data)
			if errString(r1.Err) != errString(r2.Err) {
				t.Fatalf("%s: two machines answer %q and %q", c.Type(), errString(r1.Err), errString(r2.Err))
			}
		}
		checkCounts(t, m)
		if a, b := snapshotBytes(t, m), snapshotBytes(t, twin); !bytes.Equal(a, b) {
			assertSameState(t, "the same commands on two restored machines", a, b)
		}
	})
}
