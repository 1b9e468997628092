package cluster

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/fsm"
)

// TestAuditRecordsWhoWhatWhereThroughFollower checks that writes made
// through a follower are recorded with the account, the action, the
// replica they entered through and their request ID, on every replica, and
// that a rejected write records nothing.
func TestAuditRecordsWhoWhatWhereThroughFollower(t *testing.T) {
	hosts := startCluster(t, 3)
	leader, followers := leaderAndFollowers(t, hosts)
	f := followers[0]
	admin := bootstrapAdmin(t, f)

	resp, body := doBearer(t, "POST", f.APIURL()+"/api/users", admin, api.UserRequest{Name: "alice", Role: fsm.RoleUser})
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("create alice: %d %s", resp.StatusCode, body)
	}
	resp, body = doBearer(t, "POST", f.APIURL()+"/api/tokens", admin, api.TokenRequest{User: "alice"})
	var tr api.TokenResponse
	json.Unmarshal(body, &tr)
	if resp.StatusCode != http.StatusCreated || tr.Token == "" {
		t.Fatalf("alice's token: %d %s", resp.StatusCode, body)
	}
	req, _ := http.NewRequest("POST", f.APIURL()+"/api/submit", strings.NewReader(`{"command":"true","container_name":"NULL"}`))
	req.Header.Set("Authorization", "Bearer "+tr.Token)
	req.Header.Set(api.RequestIDHeader, "audit-req-1")
	sresp, err := http.DefaultClient.Do(req)
	if err != nil || sresp.StatusCode != http.StatusAccepted {
		t.Fatalf("alice submits: %v %v", err, sresp)
	}
	sresp.Body.Close()
	// A refused write (a duplicate user) is not recorded.
	if resp, body := doBearer(t, "POST", leader.APIURL()+"/api/users", admin, api.UserRequest{Name: "alice", Role: fsm.RoleUser}); resp.StatusCode != http.StatusConflict {
		t.Fatalf("duplicate user: %d %s", resp.StatusCode, body)
	}
	// Leadership transfer, an act outside the FSM, is recorded too.
	if resp, body := doBearer(t, "POST", leader.APIURL()+"/api/cluster/leadership-transfer", admin, map[string]string{}); resp.StatusCode >= 300 {
		t.Fatalf("transfer: %d %s", resp.StatusCode, body)
	}

	want := []struct{ user, action, target, via string }{
		{"cluster", "bootstrap_auth", "user admin", f.cfg.NodeID},
		{"admin", "put_user", "user alice", f.cfg.NodeID},
		{"admin", "create_token", "of alice", f.cfg.NodeID},
		{"alice", "submit_tasks", "task ", f.cfg.NodeID},
		{"admin", "leadership_transfer", "to any replica", leader.cfg.NodeID},
	}
	for _, h := range hosts {
		var recs []fsm.AuditRecord
		waitFor(t, 10*time.Second, func() bool {
			recs, _ = h.machine.Audit(fsm.AuditFilter{}, 100)
			return len(recs) >= len(want)
		})
		if len(recs) != len(want) {
			t.Fatalf("%s: %d records, want %d: %+v", h.cfg.NodeID, len(recs), len(want), recs)
		}
		for i, w := range want {
			r := recs[i]
			if r.User != w.user || r.Action != w.action || !strings.Contains(r.Target, w.target) || r.Via != w.via || r.At.IsZero() || r.Seq == 0 {
				t.Errorf("%s: record %d = %+v, want user %s action %s target ~%q via %s", h.cfg.NodeID, i, r, w.user, w.action, w.target, w.via)
			}
		}
		if recs[3].RequestID != "audit-req-1" {
			t.Errorf("%s: submit record request ID %q, want audit-req-1", h.cfg.NodeID, recs[3].RequestID)
		}
	}
	// GET /api/audit pages and filters.
	resp, body = doBearer(t, "GET", f.APIURL()+"/api/audit?user=alice&limit=1", admin, nil)
	var page api.AuditPage
	if err := json.Unmarshal(body, &page); err != nil || resp.StatusCode != 200 || len(page.Records) != 1 || page.Records[0].User != "alice" {
		t.Fatalf("GET /api/audit?user=alice: %d %s", resp.StatusCode, body)
	}
	if resp, body := doBearer(t, "GET", f.APIURL()+"/api/audit?limit=0", admin, nil); resp.StatusCode != 400 || !strings.Contains(string(body), "limit") {
		t.Fatalf("limit=0: %d %s", resp.StatusCode, body)
	}
}

// TestAuditRetention checks that the leader's AuditKeep bounds the records
// every replica keeps.
func TestAuditRetention(t *testing.T) {
	hosts := startClusterWith(t, 1, func(_ int, cfg *Config) { cfg.AuditKeep = 3 })
	h := hosts[0]
	admin := bootstrapAdmin(t, h)
	for i := 0; i < 6; i++ {
		if resp, body := doBearer(t, "POST", h.APIURL()+"/api/groups", admin, api.GroupRequest{Name: "g" + string(rune('a'+i))}); resp.StatusCode != http.StatusCreated {
			t.Fatalf("group %d: %d %s", i, resp.StatusCode, body)
		}
	}
	recs, more := h.machine.Audit(fsm.AuditFilter{}, 100)
	if len(recs) != 3 || more || recs[0].Target != "group gd" || recs[2].Target != "group gf" {
		t.Fatalf("records after 7 writes with keep 3: %+v", recs)
	}
}
