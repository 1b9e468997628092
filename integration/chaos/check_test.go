package chaos

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func at(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

// clean is a correct history of two clients: submits, a kill, reads.
func clean() ([]Op, Final) {
	ops := []Op{
		{Client: 1, Kind: OpSubmit, Member: "h1", RequestID: "r1", TaskID: "1", Token: "k1", Invoke: at(0), Complete: at(10), Result: Ok, Index: 10},
		{Client: 1, Kind: OpRead, Member: "h2", TaskID: "1", Invoke: at(20), Complete: at(25), Result: Ok, Status: "pending", Index: 10},
		{Client: 1, Kind: OpRead, Member: "h2", TaskID: "1", Invoke: at(30), Complete: at(35), Result: Ok, Status: "running", Index: 12},
		{Client: 1, Kind: OpRead, Member: "h3", TaskID: "1", Invoke: at(40), Complete: at(45), Result: Ok, Status: "completed", Index: 14},
		{Client: 2, Kind: OpSubmit, Member: "h2", RequestID: "r2", TaskID: "2", Token: "k2", Invoke: at(5), Complete: at(15), Result: Ok, Index: 11},
		{Client: 2, Kind: OpKill, Member: "h2", RequestID: "x2", TaskID: "2", Invoke: at(20), Complete: at(30), Result: Ok, Index: 13},
		{Client: 2, Kind: OpRead, Member: "h1", TaskID: "2", Invoke: at(40), Complete: at(41), Result: Ok, Status: "killed"},
		// Unknown and failed submits need not exist.
		{Client: 2, Kind: OpSubmit, Member: "h3", RequestID: "r3", Token: "k3", Invoke: at(50), Complete: at(60), Result: Info, Err: "timeout"},
		{Client: 1, Kind: OpSubmit, Member: "h3", RequestID: "r4", Token: "k4", Invoke: at(50), Complete: at(60), Result: Fail, Err: "503"},
		// A write to an isolated member that failed.
		{Client: 3, Kind: OpSubmit, Member: "h3", RequestID: "r5", Token: "k5", Invoke: at(110), Complete: at(150), Result: Info, Err: "timeout"},
	}
	tasks := map[string]TaskState{
		"1": {RequestID: "r1", Status: "completed"},
		"2": {RequestID: "r2", Status: "killed", KillRequestID: "x2"},
		"3": {RequestID: "r3", Status: "completed"}, // the unknown submit took effect
	}
	rs := ReplicaState{Applied: 20, Tasks: tasks, Digest: "abc"}
	return ops, Final{
		Replicas: map[string]ReplicaState{"h1": rs, "h2": rs, "h3": rs},
		Order:    []string{"h1", "h2", "h3"},
		Tokens:   map[string]int{"k1": 1, "k3": 1},
	}
}

var isolated = []Isolation{{Member: "h3", From: at(100), To: at(200)}}

func TestCheckCleanHistory(t *testing.T) {
	ops, final := clean()
	if got := Check(ops, isolated, final); len(got) != 0 {
		t.Fatalf("anomalies in a correct history: %v", got)
	}
}

// TestCheckDetectsEachKind breaks the correct history in one way per
// anomaly kind and requires that exactly that kind is reported.
func TestCheckDetectsEachKind(t *testing.T) {
	cases := []struct {
		kind Kind
		brk  func(ops []Op, f *Final) []Op
	}{
		{LostAck, func(ops []Op, f *Final) []Op {
			setTasks(f, func(m map[string]TaskState) { delete(m, "1") })
			return ops
		}},
		{DuplicateSubmit, func(ops []Op, f *Final) []Op {
			setTasks(f, func(m map[string]TaskState) { m["9"] = TaskState{RequestID: "r1", Status: "completed"} })
			return ops
		}},
		{NotFinal, func(ops []Op, f *Final) []Op {
			setTasks(f, func(m map[string]TaskState) { m["2"] = TaskState{RequestID: "r2", Status: "running"} })
			// The kill of task 2 then did not end it either; drop the
			// kill and the read so that only NotFinal remains.
			return slices.DeleteFunc(ops, func(o Op) bool { return o.TaskID == "2" && o.Kind != OpSubmit })
		}},
		{DoubleRun, func(ops []Op, f *Final) []Op {
			f.Tokens["k1"] = 2
			return ops
		}},
		{CompletedNoRun, func(ops []Op, f *Final) []Op {
			delete(f.Tokens, "k1")
			return ops
		}},
		{NonMonotone, func(ops []Op, f *Final) []Op {
			return append(ops, Op{Client: 1, Kind: OpRead, Member: "h1", TaskID: "1", Invoke: at(36), Complete: at(37), Result: Ok, Status: "pending"})
		}},
		{StaleRead, func(ops []Op, f *Final) []Op {
			return append(ops, Op{Client: 2, Kind: OpRead, Member: "h3", TaskID: "2", Invoke: at(16), Complete: at(18), Result: Ok, NotFound: true})
		}},
		{MinorityAck, func(ops []Op, f *Final) []Op {
			ops[len(ops)-1].Result = Ok
			ops[len(ops)-1].TaskID = "5"
			setTasks(f, func(m map[string]TaskState) { m["5"] = TaskState{RequestID: "r5", Status: "failed"} })
			return ops
		}},
		{KillLost, func(ops []Op, f *Final) []Op {
			setTasks(f, func(m map[string]TaskState) { m["2"] = TaskState{RequestID: "r2", Status: "completed"} })
			f.Tokens["k2"] = 1
			return slices.DeleteFunc(ops, func(o Op) bool { return o.TaskID == "2" && o.Kind == OpRead })
		}},
		{Divergence, func(ops []Op, f *Final) []Op {
			r := f.Replicas["h3"]
			r.Digest = "abd"
			f.Replicas["h3"] = r
			return ops
		}},
	}
	covered := map[Kind]bool{}
	for _, tc := range cases {
		t.Run(string(tc.kind), func(t *testing.T) {
			ops, final := clean()
			ops = tc.brk(ops, &final)
			got := Check(ops, isolated, final)
			if len(got) == 0 {
				t.Fatalf("no anomaly reported")
			}
			for _, a := range got {
				if a.Kind != tc.kind {
					t.Errorf("reported %v, want only %s", a, tc.kind)
				}
			}
			t.Logf("%v", got)
		})
		covered[tc.kind] = true
	}
	for _, k := range AllKinds() {
		if !covered[k] {
			t.Errorf("no case for anomaly kind %s", k)
		}
	}
}

// TestCheckStaleIndex: a read at a lower applied index than the client's
// acknowledged write is stale even when the task is found.
func TestCheckStaleIndex(t *testing.T) {
	ops, final := clean()
	ops = append(ops, Op{Client: 2, Kind: OpRead, Member: "h3", TaskID: "1", Invoke: at(35), Complete: at(36), Result: Ok, Status: "running", Index: 12})
	got := Check(ops, isolated, final)
	if len(got) != 1 || got[0].Kind != StaleRead {
		t.Fatalf("got %v, want one %s", got, StaleRead)
	}
}

func TestReachable(t *testing.T) {
	for _, c := range []struct {
		from, to string
		want     bool
	}{
		{"pending", "completed", true},
		{"pending", "running", true},
		{"assigning", "pending", true},
		{"running", "pending", false},
		{"completed", "running", false},
		{"killed", "completed", false},
		{"paused", "running", true},
		{"running", "lost", true},
	} {
		if got := Reachable(c.from, c.to); got != c.want {
			t.Errorf("Reachable(%s, %s) = %v", c.from, c.to, got)
		}
	}
}

func setTasks(f *Final, edit func(map[string]TaskState)) {
	for id, r := range f.Replicas {
		m := map[string]TaskState{}
		for k, v := range r.Tasks {
			m[k] = v
		}
		edit(m)
		r.Tasks = m
		f.Replicas[id] = r
	}
}

func ExampleSummary() {
	fmt.Println(Summary([]Anomaly{{Kind: LostAck}, {Kind: LostAck}, {Kind: StaleRead}}))
	// Output: map[lost-ack:2 stale-read:1]
}

// TestCheckReportedLoss: a task the hosts declared lost while it went on
// running (its token written once, e.g. its runner cut off) is a reported
// loss, counted by Losses, not an anomaly; the same task with its token
// written twice is still a double run.
func TestCheckReportedLoss(t *testing.T) {
	ops, final := clean()
	setTasks(&final, func(m map[string]TaskState) { m["1"] = TaskState{RequestID: "r1", Status: "lost"} })
	// Its last read said running: lost can follow.
	ops = slices.DeleteFunc(ops, func(o Op) bool { return o.TaskID == "1" && o.Status == "completed" })
	if got := Check(ops, isolated, final); len(got) != 0 {
		t.Fatalf("anomalies with a reported loss: %v", got)
	}
	if ran, notRun := Losses(ops, final); ran != 1 || notRun != 0 {
		t.Fatalf("Losses = %d ran, %d not run; want 1, 0", ran, notRun)
	}
	final.Tokens["k1"] = 0
	if ran, notRun := Losses(ops, final); ran != 0 || notRun != 1 {
		t.Fatalf("Losses without its token = %d ran, %d not run; want 0, 1", ran, notRun)
	}
	final.Tokens["k1"] = 2
	if got := Summary(Check(ops, isolated, final)); got[DoubleRun] != 1 || len(got) != 1 {
		t.Fatalf("a lost task whose token appears twice: %v, want one double run", got)
	}
}
