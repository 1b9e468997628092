package cluster

import (
	"strings"
	"testing"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
)

func TestCheckSessionAudit(t *testing.T) {
	good := api.SessionAudit{User: "alice", Role: "user", Action: "exec_end", TaskID: 7, Via: "h1", At: "2026-12-07T01:00:00Z", Seconds: 1.5}
	if err := checkSessionAudit(good); err != nil {
		t.Fatalf("a good record: %v", err)
	}
	for field, mut := range map[string]func(*api.SessionAudit){
		"action":  func(r *api.SessionAudit) { r.Action = "submit" },
		"task_id": func(r *api.SessionAudit) { r.TaskID = 0 },
		"user":    func(r *api.SessionAudit) { r.User = "" },
		"seconds": func(r *api.SessionAudit) { r.Seconds = -1 },
		"at":      func(r *api.SessionAudit) { r.At = "yesterday" },
		"via":     func(r *api.SessionAudit) { r.Via = strings.Repeat("x", 300) },
	} {
		r := good
		mut(&r)
		if err := checkSessionAudit(r); err == nil || !strings.HasPrefix(err.Error(), field) {
			t.Errorf("bad %s: %v, want an error naming it", field, err)
		}
	}
}
