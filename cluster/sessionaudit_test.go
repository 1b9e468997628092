package cluster

import (
	"strings"
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
)

func TestCheckSessionRecord(t *testing.T) {
	good := api.SessionRecord{User: "alice", Role: "user", Action: "exec_end", TaskID: 7, Via: "h1", At: "2026-12-07T01:00:00Z", Seconds: 1.5}
	if err := checkSessionRecord(good); err != nil {
		t.Fatalf("a good record: %v", err)
	}
	for field, mut := range map[string]func(*api.SessionRecord){
		"action":  func(r *api.SessionRecord) { r.Action = "submit" },
		"task_id": func(r *api.SessionRecord) { r.TaskID = 0 },
		"user":    func(r *api.SessionRecord) { r.User = "" },
		"seconds": func(r *api.SessionRecord) { r.Seconds = -1 },
		"at":      func(r *api.SessionRecord) { r.At = "yesterday" },
		"via":     func(r *api.SessionRecord) { r.Via = strings.Repeat("x", 300) },
		"target":  func(r *api.SessionRecord) { r.Target = strings.Repeat("x", maxSessionTarget+1) },
		"conns":   func(r *api.SessionRecord) { r.Conns = -1 },
	} {
		r := good
		mut(&r)
		if err := checkSessionRecord(r); err == nil || !strings.HasPrefix(err.Error(), field) {
			t.Errorf("bad %s: %v, want an error naming it", field, err)
		}
	}
}

// TestSessionTarget: the audit record of each kind of session says what
// the replica saw: an exec's terminal and duration, a forward's port and
// connections, a copy's path, each with when and for how long.
func TestSessionTarget(t *testing.T) {
	at := time.Date(2026, 12, 7, 1, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		rec  api.SessionRecord
		want string
	}{
		{api.SessionRecord{Action: api.SessionExecStart, TaskID: 7, TTY: true}, "task 7 (tty)"},
		{api.SessionRecord{Action: api.SessionExecEnd, TaskID: 7, Seconds: 1.5}, "task 7 after 1.500s"},
		{api.SessionRecord{Action: api.SessionForward, TaskID: 7, Target: "port 80", Seconds: 2.25, Conns: 3},
			"task 7 port 80, 3 connection(s), from 2026-12-07T01:00:00Z for 2.25s"},
		{api.SessionRecord{Action: api.SessionCopyTo, TaskID: 7, Target: "path /tmp/x", Seconds: 0.5},
			"task 7 path /tmp/x, from 2026-12-07T01:00:00Z for 500ms"},
	} {
		if got := sessionTarget(tc.rec, at); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.rec.Action, got, tc.want)
		}
	}
}
