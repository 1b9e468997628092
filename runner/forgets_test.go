package runner

import "testing"

// TestForgetsPrune: a task stays skipped from when its forget is queued
// until the watch loop prunes after the job settled, so that a listing
// taken before the Forget ended never shows it as new; a task queued
// twice is forgotten once.
func TestForgetsPrune(t *testing.T) {
	f := newForgets()
	f.add(forgetJob{id: 7, attempt: 1})
	f.add(forgetJob{id: 7, attempt: 1})
	if !f.has(7) {
		t.Fatal("task 7 not pending once queued")
	}
	f.prune()
	if !f.has(7) {
		t.Fatal("a prune before the job settled let task 7 go")
	}
	j, ok := f.next()
	if !ok || j.id != 7 {
		t.Fatalf("next = %+v, %v; want task 7", j, ok)
	}
	if j, ok := f.next(); ok {
		t.Fatalf("task queued twice: second job %+v", j)
	}
	f.done(7)
	if !f.has(7) {
		t.Fatal("task 7 not skipped between its settling and the next prune")
	}
	f.prune()
	if f.has(7) {
		t.Fatal("task 7 still skipped after the prune")
	}
	f.add(forgetJob{id: 7, attempt: 2}) // its next attempt ended
	if j, ok := f.next(); !ok || j.attempt != 2 {
		t.Fatalf("next attempt's job = %+v, %v", j, ok)
	}
}
