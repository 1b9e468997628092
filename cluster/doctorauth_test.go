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

// TestAccountEdgesFromReview covers three holes an attacker's review
// found: accounts named like the callers without one, a short-lived token
// minting a permanent one, and a login from another origin.
func TestAccountEdgesFromReview(t *testing.T) {
	h := startClusterWith(t, 1, func(_ int, cfg *Config) { cfg.AnonymousRole = fsm.RoleUser })[0]
	admin := bootstrapAdmin(t, h)
	for _, name := range []string{"anonymous", "cluster"} {
		if resp, body := doBearer(t, "POST", h.APIURL()+"/api/users", admin, api.UserRequest{Name: name, Role: fsm.RoleUser}); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("user %q: %d %s, want 400", name, resp.StatusCode, body)
		}
	}
	if resp, body := doBearer(t, "POST", h.APIURL()+"/api/users", admin, api.UserRequest{Name: "sam", Role: fsm.RoleUser}); resp.StatusCode != http.StatusCreated {
		t.Fatalf("create sam: %d %s", resp.StatusCode, body)
	}
	var short api.TokenResponse
	if resp, body := doBearer(t, "POST", h.APIURL()+"/api/tokens", admin, api.TokenRequest{User: "sam", TTL: "1h"}); resp.StatusCode != http.StatusCreated || decodeInto(body, &short) != nil {
		t.Fatalf("sam's short token: %d %s", resp.StatusCode, body)
	}
	for _, ttl := range []string{"", "8760h"} {
		var minted api.TokenResponse
		resp, body := doBearer(t, "POST", h.APIURL()+"/api/tokens", short.Token, api.TokenRequest{TTL: ttl})
		if resp.StatusCode != http.StatusCreated || decodeInto(body, &minted) != nil {
			t.Fatalf("sam mints (ttl %q): %d %s", ttl, resp.StatusCode, body)
		}
		if minted.ExpiresAt == nil || minted.ExpiresAt.After(*short.ExpiresAt) {
			t.Errorf("a token minted with ttl %q by a token expiring at %s expires at %v", ttl, short.ExpiresAt, minted.ExpiresAt)
		}
	}
	hdr := http.Header{"Origin": {"http://127.0.0.1:1"}}
	if resp, body := doHeader(t, "POST", h.APIURL()+"/api/auth/login", hdr, api.LoginRequest{Token: admin}); resp.StatusCode != http.StatusForbidden || len(resp.Cookies()) != 0 {
		t.Errorf("login from another origin: %d %s, cookies %v", resp.StatusCode, body, resp.Cookies())
	}
}
