package httpapi

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/fsm"
)

// TestSubmitArgumentSets: a sweep's sets become one task each, with array
// index i, set i as arguments, the throttle of its array spec, its name,
// and a batch ID of their own that is none of their task IDs.
func TestSubmitArgumentSets(t *testing.T) {
	f := newFixture(t, newFakeState(nil, &fsm.Node{Hostname: "n1", TotalCores: 8, MemoryTotalBytes: 1 << 34, Status: fsm.NodeOnline}), Deps{})
	resp, body := f.do(t, "POST", "/api/submit", `{"command":"train","argument_sets":[["--lr","1"],["--lr","2"],["--lr","3"]],"array":"0-2%2","name":"lr"}`)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("submit: %d %s", resp.StatusCode, body)
	}
	cmds := f.prop.proposed()
	st, ok := cmds[len(cmds)-1].(*fsm.SubmitTasks)
	if !ok || len(st.Tasks) != 3 {
		t.Fatalf("proposed %#v, want one SubmitTasks of 3 tasks", cmds)
	}
	batch := st.Tasks[0].BatchID
	for i, tk := range st.Tasks {
		want := []string{"--lr", string(rune('1' + i))}
		if !slices.Equal(tk.Arguments, want) || tk.ArrayIndex == nil || *tk.ArrayIndex != i || tk.ArrayThrottle != 2 || tk.Name != "lr" {
			t.Errorf("task %d: args %q index %v throttle %d name %q, want %q index %d throttle 2 name lr", i, tk.Arguments, tk.ArrayIndex, tk.ArrayThrottle, tk.Name, want, i)
		}
		if tk.BatchID != batch || batch == 0 || tk.TaskID == batch {
			t.Errorf("task %d: batch %d (first %d), want one batch ID that is no task's", tk.TaskID, tk.BatchID, batch)
		}
	}
	var sr api.SubmitResponse
	if err := json.Unmarshal([]byte(body), &sr); err != nil || len(sr.TaskIDs) != 3 {
		t.Errorf("answer %s (%v)", body, err)
	}
}

// TestBatchActionOwnership: a user may act on a batch only when owning
// every task of it (else 403 and nothing proposed); an operator may; kill
// skips the finished tasks; an unknown batch is a 404, an unknown action a
// 400.
func TestBatchActionOwnership(t *testing.T) {
	mk := func(id int64, owner string, st fsm.Status) *fsm.Task {
		tk := task(id, st)
		tk.BatchID, tk.Owner = 50, owner
		return tk
	}
	state := newFakeState([]*fsm.Task{mk(51, "alice", fsm.StatusRunning), mk(52, "bob", fsm.StatusPending), mk(53, "alice", fsm.StatusCompleted)})
	f := newOwnerFixture(t, state, testAccounts(), Config{})
	if code, body := f.do(t, "alice", "POST", "/api/batch/50/kill", ""); code != http.StatusForbidden || !strings.Contains(body, "52") {
		t.Errorf("alice kills a batch holding bob's task: %d %s, want 403 naming task 52", code, body)
	}
	if cmds := f.prop.proposed(); len(cmds) != 0 {
		t.Fatalf("a refused batch kill proposed %#v", cmds)
	}
	if code, body := f.do(t, "opal", "POST", "/api/batch/99/kill", ""); code != http.StatusNotFound {
		t.Errorf("unknown batch: %d %s, want 404", code, body)
	}
	if code, body := f.do(t, "opal", "POST", "/api/batch/50/explode", ""); code != http.StatusBadRequest || !strings.Contains(body, "action") {
		t.Errorf("unknown action: %d %s, want 400 naming action", code, body)
	}
	code, body := f.do(t, "opal", "POST", "/api/batch/50/kill", "")
	if code != http.StatusOK {
		t.Fatalf("operator kills the batch: %d %s", code, body)
	}
	var killed []int64
	for _, c := range f.prop.proposed() {
		if k, ok := c.(*fsm.KillTask); ok {
			killed = append(killed, k.TaskID)
		}
	}
	slices.Sort(killed)
	if !slices.Equal(killed, []int64{51, 52}) {
		t.Errorf("batch kill proposed kills of %v, want 51 and 52 (53 had completed)", killed)
	}
}
