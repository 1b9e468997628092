package fsm_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/fsm"
)

// updateBatch is a batch of runner reports with every kind of item: applied
// ones, a retry, a task started and ended in one report, two reports for
// one task, and rejected ones (unknown task, unknown status, a final task,
// a move the rules forbid).
func updateBatch() []fsm.UpdateTask {
	return []fsm.UpdateTask{
		{TaskID: 1, Status: fsm.StatusRunning, StartedAt: timep(at(2)), At: at(3)},
		{TaskID: 2, Status: fsm.StatusCompleted, ExitCode: intp(0), StartedAt: timep(at(2)), CompletedAt: timep(at(3)), At: at(4)},
		{TaskID: 99, Status: fsm.StatusRunning, At: at(4)},
		{TaskID: 3, Status: fsm.Status("exploded"), At: at(4)},
		{TaskID: 4, Status: fsm.StatusRunning, At: at(4)},
		{TaskID: 5, Status: fsm.StatusPaused, At: at(4)},
		{TaskID: 1, Status: fsm.StatusFailed, ExitCode: intp(3), Message: strp("Process exited with code 3."), CompletedAt: timep(at(5)), At: at(5)},
		{TaskID: 6, Status: fsm.StatusRunning, SSHPort: 2222, At: at(5)},
		{TaskID: 6, Status: fsm.StatusRunning, SSHPort: 2223, At: at(5)},
	}
}

// updateSetup makes tasks 1..6 on node n1: 1, 2, 3 and 5 assigning, 4
// killed, 6 running.
func updateSetup(t *testing.T) *harness {
	h := newHarness(t)
	h.register("n1", 0)
	h.submit(1, 2, 3, 4, 5, 6)
	h.ok(&fsm.AssignTasks{Assign: []fsm.AssignTask{place(1, "n1"), place(2, "n1"), place(3, "n1"), place(5, "n1"), place(6, "n1")}})
	h.ok(&fsm.KillTask{TaskID: 4, At: at(1)})
	h.ok(&fsm.UpdateTask{TaskID: 6, Status: fsm.StatusRunning, At: at(2)})
	return h
}

// TestUpdateTasks checks that a batch of reports is applied exactly as the
// same reports one entry each: same state, same result per item, a
// rejected item failing alone.
func TestUpdateTasks(t *testing.T) {
	batched := updateSetup(t)
	res := batched.ok(&fsm.UpdateTasks{Updates: updateBatch()})
	one := updateSetup(t)
	var want fsm.UpdateResults
	for _, u := range updateBatch() {
		want = append(want, one.apply(&u).Err)
	}
	assertSameState(t, "UpdateTasks vs one UpdateTask each", stateBytes(t, one.m), stateBytes(t, batched.m))
	got := res.Value.(fsm.UpdateResults)
	if len(got) != len(want) {
		t.Fatalf("%d results, want %d", len(got), len(want))
	}
	for i := range got {
		if fmt.Sprint(got[i]) != fmt.Sprint(want[i]) {
			t.Errorf("update %d: %v, want %v", i, got[i], want[i])
		}
	}
	wantErr := []error{nil, nil, fsm.ErrNotFound, fsm.ErrInvalid, fsm.ErrConflict, fsm.ErrConflict, nil, nil, nil}
	for i, w := range wantErr {
		if (w == nil) != (got[i] == nil) || (w != nil && !errors.Is(got[i], w)) {
			t.Errorf("update %d: %v, want %v", i, got[i], w)
		}
	}
	if tk := batched.task(1); tk.Status != fsm.StatusFailed || *tk.ExitCode != 3 || !tk.StartedAt.Equal(at(2)) || !tk.CompletedAt.Equal(at(5)) {
		t.Errorf("task 1: %+v", tk)
	}
	if tk := batched.task(2); tk.Status != fsm.StatusCompleted || !tk.StartedAt.Equal(at(2)) || !tk.CompletedAt.Equal(at(3)) {
		t.Errorf("task 2 (started and ended in one report): %+v", tk)
	}
	if tk := batched.task(6); tk.SSHPort != 2223 {
		t.Errorf("task 6: ssh port %d, want 2223", tk.SSHPort)
	}

	// A retried batch changes nothing: every applied item is now a no-op,
	// every rejected one is rejected again.
	again := batched.unchanged(&fsm.UpdateTasks{Updates: updateBatch()}).Value.(fsm.UpdateResults)
	for i := range again {
		if i == 0 || i == 1 || i == 6 {
			continue // applied the first time: now refused or a no-op
		}
		if (again[i] == nil) != (got[i] == nil) {
			t.Errorf("retried update %d: %v, first time %v", i, again[i], got[i])
		}
	}
	batched.unchanged(&fsm.UpdateTasks{})
}

// genUpdates makes a random log of submits, placements and runner
// reports, the reports batched (batch=true) or one entry each.
func genUpdates(t *testing.T, seed uint64, n int, batch bool) [][]byte {
	rng := rand.New(rand.NewPCG(seed, seed*3+1))
	out := [][]byte{encode(t, &fsm.RegisterNode{Node: testNode("n1"), At: at(0)})}
	next := int64(0)
	statuses := []fsm.Status{fsm.StatusRunning, fsm.StatusPaused, fsm.StatusCompleted, fsm.StatusFailed, fsm.StatusKilledOOM, fsm.StatusLost, "bogus"}
	for i := range n {
		now := at(i)
		switch p := rng.IntN(10); {
		case p < 3:
			s := &fsm.SubmitTasks{}
			var place []fsm.AssignTask
			for range 1 + rng.IntN(4) {
				next++
				tk := newTask(next)
				tk.SubmittedAt = now
				tk.RequiredCores = 1
				s.Tasks = append(s.Tasks, tk)
				place = append(place, fsm.AssignTask{TaskID: next, Node: "n1", At: now})
			}
			out = append(out, encode(t, &fsm.SubmitPlaced{SubmitTasks: *s, Place: place}))
		case p < 4:
			out = append(out, encode(t, &fsm.KillTask{TaskID: 1 + rng.Int64N(next+2), At: now}))
		default:
			var us []fsm.UpdateTask
			for range 1 + rng.IntN(8) {
				u := fsm.UpdateTask{TaskID: 1 + rng.Int64N(next+2), Status: statuses[rng.IntN(len(statuses))], At: now}
				if rng.IntN(2) == 0 {
					u.StartedAt = timep(now.Add(-time.Second))
				}
				if u.Status.Final() {
					u.ExitCode, u.CompletedAt = intp(rng.IntN(3)), timep(now)
				}
				us = append(us, u)
			}
			if batch {
				out = append(out, encode(t, &fsm.UpdateTasks{Updates: us}))
				continue
			}
			for i := range us {
				out = append(out, encode(t, &us[i]))
			}
		}
	}
	return out
}

// TestUpdateTasksReplay checks that a log of batched reports reaches the
// state of the same reports one entry each, and that replicas applying it
// (one from a snapshot taken half way) reach byte-identical snapshots.
func TestUpdateTasksReplay(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3} {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			batched := genUpdates(t, seed, 600, true)
			single := genUpdates(t, seed, 600, false)
			mb, ms := fsm.New(), fsm.New()
			applyAll(mb, 1, batched)
			applyAll(ms, 1, single)
			assertSameState(t, "batched vs one entry each", stateBytes(t, ms), stateBytes(t, mb))
			checkInvariants(t, mb)

			m2 := fsm.New()
			if r1, r2 := applyAll(m2, 1, batched), applyAll(fsm.New(), 1, batched); fmt.Sprint(r1) != fmt.Sprint(r2) {
				t.Fatal("two replicas got different results")
			}
			assertSameState(t, "two replicas", snapshotBytes(t, mb), snapshotBytes(t, m2))
			half := len(batched) / 2
			m3 := fsm.New()
			applyAll(m3, 1, batched[:half])
			m4 := fsm.New()
			if err := m4.Restore(bytesReader(snapshotBytes(t, m3))); err != nil {
				t.Fatal(err)
			}
			applyAll(m4, uint64(half+1), batched[half:])
			assertSameState(t, "replica restored from a snapshot", snapshotBytes(t, mb), snapshotBytes(t, m4))
		})
	}
}
