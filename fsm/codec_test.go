package fsm_test

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/hakuriver/hakuriver-ha/fsm"
)

// sampleCommands has one fully populated command of every type.
func sampleCommands() []fsm.Command {
	vps := newTask(7_300_000_000_000_000_001) // a realistic snowflake ID
	vps.TaskType = fsm.TaskVPS
	vps.TargetNUMANodeID = intp(1)
	vps.RequiredGPUs = []int{0, 1}
	return []fsm.Command{
		&fsm.SubmitTasks{RequestID: "r-1", Tasks: []*fsm.Task{newTask(1), vps}},
		&fsm.UpdateTask{TaskID: 7_300_000_000_000_000_001, Status: fsm.StatusFailed, ExitCode: intp(-9), Message: strp("oom"),
			StartedAt: timep(at(1)), CompletedAt: timep(at(2)), SSHPort: 2222, At: at(3)},
		&fsm.KillTask{TaskID: 1, Message: "Kill requested by user.", At: at(4)},
		&fsm.RegisterNode{Node: testNode("n1"), At: at(5)},
		&fsm.SetNodeStatus{Hostname: "n1", Status: fsm.NodeOffline, At: at(6)},
		&fsm.AssignTask{TaskID: 1, Node: "n1", GPUs: []int{1}, NUMA: intp(0), At: at(7)},
		&fsm.SetNodeDrain{Hostname: "n1", Drained: true},
	}
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	wantTypes := []fsm.CommandType{fsm.CmdSubmitTasks, fsm.CmdUpdateTask, fsm.CmdKillTask,
		fsm.CmdRegisterNode, fsm.CmdSetNodeStatus, fsm.CmdAssignTask, fsm.CmdSetNodeDrain}
	wantNames := []string{"submit_tasks", "update_task", "kill_task", "register_node",
		"set_node_status", "assign_task", "set_node_drain"}
	for i, c := range sampleCommands() {
		t.Run(c.Type().String(), func(t *testing.T) {
			if c.Type() != wantTypes[i] || c.Type().String() != wantNames[i] {
				t.Fatalf("Type() = %d %q, want %d %q", c.Type(), c.Type(), wantTypes[i], wantNames[i])
			}
			if got := (c.Type() | fsm.IgnoreUnknownFlag).String(); got != wantNames[i] {
				t.Errorf("String() with IgnoreUnknownFlag = %q", got)
			}
			data := encode(t, c)
			if fsm.CommandType(data[0]) != c.Type() {
				t.Fatalf("first byte %d, want %d", data[0], c.Type())
			}
			got, ok, err := fsm.Decode(data)
			if err != nil || !ok {
				t.Fatalf("Decode: ok=%v err=%v", ok, err)
			}
			if !reflect.DeepEqual(got, c) {
				t.Fatalf("round trip differs:\n got %#v\nwant %#v", got, c)
			}
			if again := encode(t, got); !bytes.Equal(again, data) {
				t.Fatalf("re-encoding differs:\n%s\n%s", data, again)
			}
		})
	}
	// IDs are decimal strings on the wire (JSON numbers lose precision).
	data := encode(t, &fsm.KillTask{TaskID: 7_300_000_000_000_000_001})
	if !strings.Contains(string(data), `"task_id":"7300000000000000001"`) {
		t.Fatalf("task ID not encoded as a decimal string: %s", data)
	}
	if got := fsm.CommandType(0x42).String(); !strings.Contains(got, "unknown") {
		t.Fatalf("String() of an unknown type = %q", got)
	}
}

// TestApplyUnreadableEntryHalts checks that an entry Apply cannot read (a
// corrupt one, or an unknown type without IgnoreUnknownFlag) halts the
// Machine: nothing changes, the applied index stays at the last good entry,
// and every later entry, even a valid one, is refused the same way.
func TestApplyUnreadableEntryHalts(t *testing.T) {
	entry := func(t fsm.CommandType, body string) []byte { return append([]byte{byte(t)}, body...) }
	cases := []struct {
		name string
		data []byte
		typ  fsm.CommandType
	}{
		{"empty entry", nil, 0},
		{"empty non-nil entry", []byte{}, 0},
		{"type zero", entry(0, `{}`), 0},
		{"unknown type above the known ones", entry(fsm.MaxKnownCommand+1, `{"x":1}`), fsm.MaxKnownCommand + 1},
		{"unknown type 0x7f", entry(0x7f, ``), 0x7f},
		{"type byte only", entry(fsm.CmdSubmitTasks, ``), fsm.CmdSubmitTasks},
		{"truncated JSON", entry(fsm.CmdSubmitTasks, `{"tasks":[{"task_id":"5"`), fsm.CmdSubmitTasks},
		{"trailing garbage", entry(fsm.CmdKillTask, `{"task_id":"1"}{}`), fsm.CmdKillTask},
		{"not an object", entry(fsm.CmdUpdateTask, `[1,2,3]`), fsm.CmdUpdateTask},
		{"numeric task id", entry(fsm.CmdUpdateTask, `{"task_id":1,"status":"running"}`), fsm.CmdUpdateTask},
		{"non-numeric task id", entry(fsm.CmdKillTask, `{"task_id":"abc"}`), fsm.CmdKillTask},
		{"bad time", entry(fsm.CmdKillTask, `{"task_id":"1","at":"yesterday"}`), fsm.CmdKillTask},
		{"wrong field type", entry(fsm.CmdSetNodeDrain, `{"hostname":"n1","drained":"yes"}`), fsm.CmdSetNodeDrain},
		{"binary", []byte{byte(fsm.CmdRegisterNode), 0xff, 0xfe, 0x00}, fsm.CmdRegisterNode},
		// Found by FuzzDecode: an envelope around nothing used to count as
		// applied before it halted.
		{"audit envelope without a command", entry(fsm.CmdAudited, `{}`), fsm.CmdAudited},
		{"audit envelope around garbage", entry(fsm.CmdAudited, `{"command":"AXs="}`), fsm.CmdAudited},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.register("n1", 0)
			h.taskIn(1, fsm.StatusRunning, "n1")
			before, last := stateBytes(t, h.m), h.m.AppliedIndex()
			r := h.m.Apply(last+1, tc.data)
			var ee *fsm.EntryError
			if !errors.Is(r.Err, fsm.ErrHalted) || !errors.As(r.Err, &ee) || ee.Index != last+1 || ee.Type != tc.typ {
				t.Fatalf("Apply = %+v, want an EntryError at %d of type %d", r, last+1, tc.typ)
			}
			if !strings.Contains(r.Err.Error(), fmt.Sprintf("log entry %d", last+1)) {
				t.Errorf("error %q does not name the entry", r.Err)
			}
			if h.m.Halted() == nil || h.m.AppliedIndex() != last {
				t.Fatalf("Halted %v, AppliedIndex %d (want %d)", h.m.Halted(), h.m.AppliedIndex(), last)
			}
			// A valid entry after it is refused too and changes nothing.
			r = h.m.Apply(last+2, encode(t, &fsm.SetNodeDrain{Hostname: "n1", Drained: true}))
			if !errors.Is(r.Err, fsm.ErrHalted) || h.m.AppliedIndex() != last {
				t.Fatalf("entry after the halt: %+v, AppliedIndex %d", r, h.m.AppliedIndex())
			}
			assertSameState(t, tc.name, before, stateBytes(t, h.m))
			// Installing a snapshot (a consistent state) lifts the halt.
			var snap bytes.Buffer
			if err := fsm.New().Snapshot().Write(&snap); err != nil {
				t.Fatal(err)
			}
			if err := h.m.Restore(&snap); err != nil || h.m.Halted() != nil {
				t.Fatalf("after Restore: %v, Halted %v", err, h.m.Halted())
			}
		})
	}
}

// TestMaxKnownCommand checks that Decode reads exactly the command types up
// to MaxKnownCommand, so a new type cannot be added without raising it (and
// with it what this build gossips).
func TestMaxKnownCommand(t *testing.T) {
	// An audit envelope is readable only with a readable command inside.
	envelope := encode(t, &fsm.Audited{Command: encode(t, &fsm.Record{})})[1:]
	for ct := fsm.CommandType(1); ct < fsm.IgnoreUnknownFlag; ct++ {
		body := []byte(`{}`)
		if ct == fsm.CmdAudited {
			body = envelope
		}
		_, ok, err := fsm.Decode(append([]byte{byte(ct)}, body...))
		known := err == nil && ok
		if known != (ct <= fsm.MaxKnownCommand) {
			t.Errorf("type %d (%s): decodable %v (%v), MaxKnownCommand %d", ct, ct, known, err, fsm.MaxKnownCommand)
		}
	}
}

func TestApplyUnknownIgnorable(t *testing.T) {
	for _, b := range []byte{0x80, 0xbf, 0xc0, 0xff} { // 0x81-0x91 are known types
		for _, body := range []string{``, `{}`, `{"future":"field"}`, "\x00\x01garbage"} {
			h := newHarness(t)
			h.register("n1", 0)
			h.submit(1)
			before := stateBytes(t, h.m)
			r := h.applyRaw(append([]byte{b}, body...))
			if r.Err != nil || r.Value != nil {
				t.Fatalf("type %#x body %q: result %+v, want empty", b, body, r)
			}
			assertSameState(t, "ignorable unknown entry", before, stateBytes(t, h.m))
			c, ok, err := fsm.Decode(append([]byte{b}, body...))
			if c != nil || ok || err != nil {
				t.Fatalf("Decode(%#x…) = %v %v %v, want nil false nil", b, c, ok, err)
			}
		}
	}
}
