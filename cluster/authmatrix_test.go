package cluster

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/cluster/auth"
	"github.com/hakuriver/hakuriver-ha/fsm"
)

// need is who may call one route, as the test expects it: the least
// account role, whether the cluster token is accepted, or public.
type need struct {
	role    fsm.Role
	cluster bool
	public  bool
}

var (
	nPublic   = need{public: true}
	nViewer   = need{role: fsm.RoleViewer}
	nUser     = need{role: fsm.RoleUser}
	nOperator = need{role: fsm.RoleOperator}
	nAdmin    = need{role: fsm.RoleAdmin}
	nCT       = need{cluster: true}
	nViewerCT = need{role: fsm.RoleViewer, cluster: true}
	nAdminCT  = need{role: fsm.RoleAdmin, cluster: true}
)

// expectedAccess is the role table of the README, written out route by
// route. Every route of apiTable must be here and everything here must be
// a route.
var expectedAccess = map[string]need{
	"POST /submit":                                nUser,
	"GET /status/{id}":                            nViewerCT,
	"GET /tasks":                                  nViewer,
	"GET /nodes":                                  nViewerCT,
	"GET /health":                                 nPublic,
	"GET /queue":                                  nViewer,
	"POST /nodes/{name}/drain":                    nOperator,
	"POST /nodes/{name}/undrain":                  nOperator,
	"POST /kill/{id}":                             nUser,
	"POST /command/{id}/{action}":                 nUser,
	"POST /batch/{id}/{action}":                   nUser,
	"GET /task/{id}/stdout":                       nUser,
	"GET /task/{id}/stderr":                       nUser,
	"GET /task/{id}/forward":                      nUser,
	"PUT /task/{id}/files":                        nUser,
	"GET /task/{id}/files":                        nUser,
	"POST /audit/sessions":                        nCT,
	"GET /task/{id}/exec":                         nUser,
	"POST /register":                              nCT,
	"PUT /heartbeat/{hostname}":                   nCT,
	"POST /update":                                nCT,
	"GET /cluster/vps-activity":                   nCT,
	"POST /updates":                               nCT,
	"GET /cluster":                                nViewerCT,
	"POST /cluster/join":                          nAdminCT,
	"POST /cluster/prove":                         nPublic,
	"DELETE /cluster/peers/{id}":                  nAdminCT,
	"POST /cluster/leadership-transfer":           nAdminCT,
	"GET /cluster/snapshot":                       nAdmin,
	"GET /docker/host/containers":                 nViewerCT,
	"POST /docker/host/create":                    nOperator,
	"POST /docker/host/start/{name}":              nOperator,
	"POST /docker/host/stop/{name}":               nOperator,
	"POST /docker/host/delete/{name}":             nOperator,
	"GET /docker/host/containers/{name}/terminal": nOperator,
	"POST /docker/create_tar/{name}":              nOperator,
	"GET /docker/list":                            nViewer,
	"POST /docker/internal/environments":          nCT,
	"GET /vps":                                    nViewer,
	"GET /vps/status":                             nViewer,
	"POST /vps/{id}/stop":                         nUser,
	"POST /vps/{id}/start":                        nUser,
	"POST /vps/{id}/snapshot":                     nUser,
	"GET /vps/snapshots":                          nViewer,
	"DELETE /vps/snapshots/{name}":                nUser,
	"GET /doctor":                                 nViewerCT,
	"POST /doctor":                                nAdminCT,
	"POST /auth/bootstrap":                        nCT,
	"GET /auth/whoami":                            nViewer,
	"POST /auth/login":                            nPublic,
	"POST /auth/logout":                           nPublic,
	"GET /users":                                  nViewer,
	"POST /users":                                 nAdmin,
	"GET /users/{name}":                           nViewer,
	"PATCH /users/{name}":                         nAdmin,
	"DELETE /users/{name}":                        nAdmin,
	"GET /groups":                                 nViewer,
	"POST /groups":                                nAdmin,
	"PATCH /groups/{name}":                        nAdmin,
	"DELETE /groups/{name}":                       nAdmin,
	"GET /tokens":                                 nUser,
	"POST /tokens":                                nUser,
	"DELETE /tokens/{id}":                         nUser,
	"GET /audit":                                  nViewer,
	"GET /quota":                                  nViewer,
	"GET /usage":                                  nViewer,
	"GET /events":                                 nViewer,
	"GET /cluster/replicas":                       nViewer,
	"GET /cluster/state-digest":                   nAdminCT,
}

// matrixParams fills a route's path parameters with values that name
// nothing (so an allowed call ends in 404 or 400, never in a change).
var matrixParams = map[string]string{
	"{id}": "1", "{name}": "x", "{hostname}": "x", "{action}": "pause",
}

// matrixPath returns the concrete path of a route pattern.
func matrixPath(pattern string) string {
	p := pattern
	if strings.HasPrefix(p, "/cluster/peers/") {
		return "/cluster/peers/no-such-replica"
	}
	if strings.HasPrefix(p, "/tokens/") {
		return "/tokens/00000000"
	}
	for k, v := range matrixParams {
		p = strings.ReplaceAll(p, k, v)
	}
	return p
}

// caller is one identity of the matrix.
type caller struct {
	name string
	// role is the account's role; "" for the others.
	role fsm.Role
	// hdr sets its credentials.
	hdr func(http.Header)
	// kind: "anonymous", "account", "cluster" or "invalid" (revoked,
	// expired, foreign: an account token no replica accepts).
	kind string
}

// expect returns the status class of c calling a route that needs n:
// 401, 403 or 0 (allowed: any status but 401 and 403).
func (c caller) expect(n need) int {
	switch {
	case n.public:
		return 0
	case c.kind == "anonymous" || c.kind == "invalid":
		return http.StatusUnauthorized
	case c.kind == "cluster":
		if n.cluster {
			return 0
		}
		return http.StatusForbidden
	case n.role == "" || !c.role.AtLeast(n.role):
		return http.StatusForbidden
	}
	return 0
}

// matrixCall sends one request with c's credentials and a body that no
// handler accepts ("{": malformed JSON) on writes, so that allowed calls
// end in 400 or 404 and change nothing.
func matrixCall(t *testing.T, method, url string, c caller) (int, string) {
	t.Helper()
	var body io.Reader
	if method != http.MethodGet && method != http.MethodDelete {
		body = strings.NewReader("{")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	c.hdr(req.Header)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s as %s: %v", method, url, c.name, err)
	}
	defer resp.Body.Close()
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		// The change feed never ends: its status is the answer.
		return resp.StatusCode, ""
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return resp.StatusCode, string(b)
}

// bearerHdr sets an account token.
func bearerHdr(secret string) func(http.Header) {
	return func(h http.Header) { h.Set("Authorization", "Bearer "+secret) }
}

// adminCall makes one JSON call as the admin and decodes a 2xx answer.
func adminCall(t *testing.T, method, url, admin string, body, out any) {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(method, url, strings.NewReader(string(b)))
	req.Header.Set("Authorization", "Bearer "+admin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		t.Fatalf("%s %s: %d %s", method, url, resp.StatusCode, rb)
	}
	if out != nil {
		if err := json.Unmarshal(rb, out); err != nil {
			t.Fatalf("%s %s: decode %s: %v", method, url, rb, err)
		}
	}
}

// bootstrapAdmin bootstraps h's cluster and returns the admin's secret.
func bootstrapAdmin(t *testing.T, h *Host) string {
	t.Helper()
	resp, body := do(t, "POST", h.APIURL()+"/api/auth/bootstrap", api.BootstrapRequest{User: "admin"})
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("bootstrap: %d %s", resp.StatusCode, body)
	}
	var tr api.TokenResponse
	if err := json.Unmarshal(body, &tr); err != nil || !auth.LooksLikeSecret(tr.Token) {
		t.Fatalf("bootstrap answer %s: %v", body, err)
	}
	return tr.Token
}

func matrixLeader(t *testing.T, hosts []*Host) (leader, follower *Host) {
	t.Helper()
	waitFor(t, 10*time.Second, func() bool {
		leader, follower = nil, nil
		for _, h := range hosts {
			if h.IsLeader() {
				leader = h
			} else {
				follower = h
			}
		}
		return leader != nil && (follower != nil || len(hosts) == 1)
	})
	return leader, follower
}

// TestAuthMatrix calls every route of the API (under /api and at the
// root) and /metrics as every kind of caller, through a follower (so that
// forwarded writes are covered), on replicas where callers without a token
// may do nothing, and checks 401 / 403 / allowed against expectedAccess.
func TestAuthMatrix(t *testing.T) {
	noAnon := func(_ int, cfg *Config) { cfg.AnonymousRole = "" }
	hosts := startClusterWith(t, 3, noAnon)
	leader, follower := matrixLeader(t, hosts)
	base := leader.APIURL()
	admin := bootstrapAdmin(t, leader)

	// One account per role, each with its own token.
	secrets := map[fsm.Role]string{fsm.RoleAdmin: admin}
	for name, role := range map[string]fsm.Role{"vic": fsm.RoleViewer, "uma": fsm.RoleUser, "opal": fsm.RoleOperator} {
		adminCall(t, "POST", base+"/api/users", admin, api.UserRequest{Name: name, Role: role}, nil)
		var tr api.TokenResponse
		adminCall(t, "POST", base+"/api/tokens", admin, api.TokenRequest{User: name, Name: "matrix"}, &tr)
		secrets[role] = tr.Token
	}
	// A revoked token of uma.
	var revoked api.TokenResponse
	adminCall(t, "POST", base+"/api/tokens", admin, api.TokenRequest{User: "uma", Name: "revoked"}, &revoked)
	adminCall(t, "DELETE", base+"/api/tokens/"+revoked.TokenID, admin, nil, nil)
	// An expired token of the admin, stamped by the leader in the past.
	expSecret, expTok, err := auth.NewToken("admin", "expired", time.Now().Add(-2*time.Hour), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := leader.Propose(context.Background(), &fsm.CreateToken{Token: expTok}); err != nil {
		t.Fatal(err)
	}
	// The admin token of another cluster.
	other := startClusterWith(t, 1, noAnon)
	foreign := bootstrapAdmin(t, other[0])

	// The follower has applied all of it.
	target := leader.Machine().AppliedIndex()
	waitFor(t, 10*time.Second, func() bool { return follower.Machine().AppliedIndex() >= target })
	if _, ok := follower.Machine().TokenByID(expTok.ID); !ok {
		t.Fatal("the follower does not hold the expired token's record")
	}

	callers := []caller{
		{name: "anonymous", kind: "anonymous", hdr: func(http.Header) {}},
		{name: "viewer", kind: "account", role: fsm.RoleViewer, hdr: bearerHdr(secrets[fsm.RoleViewer])},
		{name: "user", kind: "account", role: fsm.RoleUser, hdr: bearerHdr(secrets[fsm.RoleUser])},
		{name: "operator", kind: "account", role: fsm.RoleOperator, hdr: bearerHdr(secrets[fsm.RoleOperator])},
		{name: "admin", kind: "account", role: fsm.RoleAdmin, hdr: bearerHdr(admin)},
		{name: "cluster token", kind: "cluster", hdr: func(h http.Header) { h.Set(api.TokenHeader, testToken) }},
		{name: "revoked token", kind: "invalid", hdr: bearerHdr(revoked.Token)},
		{name: "expired token", kind: "invalid", hdr: bearerHdr(expSecret)},
		{name: "foreign token", kind: "invalid", hdr: bearerHdr(foreign)},
	}

	// The table and the routes match one to one.
	routes := map[string]bool{}
	for _, rt := range follower.apiTable() {
		key := rt.method + " " + rt.path
		routes[key] = true
		if _, ok := expectedAccess[key]; !ok {
			t.Errorf("route %s is not in the test's expected table: add who may call it", key)
		}
	}
	for key := range expectedAccess {
		if !routes[key] {
			t.Errorf("expected table lists %s, which is no route", key)
		}
	}
	keys := make([]string, 0, len(routes))
	for k := range routes {
		keys = append(keys, k)
	}
	sort.Strings(keys)

	type row struct{ method, path, pattern string }
	var rows []row
	for _, k := range keys {
		method, pattern, _ := strings.Cut(k, " ")
		rows = append(rows, row{method, "/api" + matrixPath(pattern), k}, row{method, matrixPath(pattern), k})
	}
	rows = append(rows, row{"GET", "/metrics", "GET /metrics"})
	access := func(key string) need {
		if key == "GET /metrics" {
			return nViewerCT
		}
		return expectedAccess[key]
	}

	checked := 0
	for _, r := range rows {
		n := access(r.pattern)
		allowed := map[int]int{}
		for _, c := range callers {
			want := c.expect(n)
			got, body := matrixCall(t, r.method, follower.APIURL()+r.path, c)
			checked++
			if want == 0 {
				allowed[got]++
			}
			switch {
			case want == 0 && (got == http.StatusUnauthorized || got == http.StatusForbidden):
				t.Errorf("%s %s as %s: %d %s, want it allowed", r.method, r.path, c.name, got, body)
			case want != 0 && got != want:
				t.Errorf("%s %s as %s: %d %s, want %d", r.method, r.path, c.name, got, body, want)
			case want == http.StatusForbidden && c.kind == "account" && n.role != "" && !strings.Contains(body, "needs role "+string(n.role)):
				t.Errorf("%s %s as %s: 403 %s does not name role %s", r.method, r.path, c.name, body, n.role)
			case want == http.StatusForbidden && c.kind == "account" && n.role == "" && !strings.Contains(body, "cluster token"):
				t.Errorf("%s %s as %s: 403 %s does not say it needs the cluster token", r.method, r.path, c.name, body)
			case want == http.StatusForbidden && c.kind == "cluster" && !strings.Contains(body, "account"):
				t.Errorf("%s %s as %s: 403 %s does not say it needs an account", r.method, r.path, c.name, body)
			case want == http.StatusUnauthorized && strings.Contains(body, "admin") && c.name == "foreign token":
				t.Errorf("%s %s as %s: 401 %s names an account", r.method, r.path, c.name, body)
			}
		}
		t.Logf("%-6s %-45s allowed callers got %v", r.method, r.path, allowed)
	}
	t.Logf("%d calls over %d routes and /metrics, %d callers", checked, len(keys), len(callers))

	// Nothing the matrix did changed the membership or the accounts.
	if n := len(follower.Status().Replicas); n != 3 {
		t.Errorf("after the matrix the cluster lists %d replicas", n)
	}
	// No call moved the leadership. A replica starved of CPU may still
	// start an election on its own (CI load): only a transfer, which is
	// always audited, counts.
	if l, _ := matrixLeader(t, hosts); l != leader {
		recs, _ := follower.Machine().Audit(fsm.AuditFilter{}, 100000)
		for _, r := range recs {
			if r.Action == "leadership_transfer" {
				t.Errorf("the matrix transferred the leadership: %+v", r)
			}
		}
		t.Logf("leadership moved during the matrix, by an election (no transfer was recorded)")
	}
	if users := follower.Machine().Users(); len(users) != 4 {
		t.Errorf("after the matrix: users %v", users)
	}
}

// TestSessionCookieOverHTTP drives the dashboard's session through a real
// replica: login sets an HttpOnly, SameSite=Strict session cookie; a write
// with the cookie alone (what a forged cross-site form sends) is refused
// and changes nothing; with the CSRF header it goes through; a
// cross-origin WebSocket upgrade carrying the cookie is refused. The
// cookie holds a session token of its own, which signing out and revoking
// the token typed at login both end.
func TestSessionCookieOverHTTP(t *testing.T) {
	hosts := startClusterWith(t, 1, func(_ int, cfg *Config) { cfg.AnonymousRole = "" })
	h := hosts[0]
	admin := bootstrapAdmin(t, h)
	base := h.APIURL()

	send := func(method, path, body string, hdr map[string]string, cookies []*http.Cookie) (*http.Response, string) {
		t.Helper()
		var rd io.Reader
		if body != "" {
			rd = strings.NewReader(body)
		}
		req, _ := http.NewRequest(method, base+path, rd)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		for _, c := range cookies {
			req.AddCookie(c)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	resp, body := send("POST", "/api/auth/login", `{"token":"`+admin+`"}`, nil, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("login: %d %s", resp.StatusCode, body)
	}
	var lr api.LoginResponse
	if err := json.Unmarshal([]byte(body), &lr); err != nil || lr.CSRF == "" || lr.User != "admin" {
		t.Fatalf("login answer %s: %v", body, err)
	}
	var session *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == auth.SessionCookie {
			session = c
		}
	}
	if session == nil || !session.HttpOnly || session.SameSite != http.SameSiteStrictMode || session.Path != "/" {
		t.Fatalf("session cookie %+v: want HttpOnly, SameSite=Strict, Path=/", session)
	}
	if session.Value == admin || !auth.LooksLikeSecret(session.Value) {
		t.Fatalf("the session cookie holds %q: want a session token of its own, not the token typed at login", session.Value)
	}
	jar := []*http.Cookie{{Name: auth.SessionCookie, Value: session.Value}}

	if resp, body := send("GET", "/api/auth/whoami", "", nil, jar); resp.StatusCode != http.StatusOK || !strings.Contains(body, `"admin"`) {
		t.Fatalf("whoami with the cookie: %d %s", resp.StatusCode, body)
	}
	// A forged cross-site write: cookie, no CSRF header.
	resp, body = send("POST", "/api/groups", `{"name":"forged"}`, map[string]string{"Content-Type": "application/json"}, jar)
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, auth.CSRFHeader) {
		t.Fatalf("cookie write without CSRF: %d %s", resp.StatusCode, body)
	}
	resp, _ = send("POST", "/api/groups", `{"name":"forged"}`, map[string]string{auth.CSRFHeader: "wrong"}, jar)
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("cookie write with a wrong CSRF: %d", resp.StatusCode)
	}
	if _, ok := h.Machine().Group("forged"); ok {
		t.Fatal("a write refused for CSRF created the group")
	}
	resp, body = send("POST", "/api/groups", `{"name":"real"}`, map[string]string{auth.CSRFHeader: lr.CSRF}, jar)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("cookie write with CSRF: %d %s", resp.StatusCode, body)
	}

	// Cross-site WebSocket hijacking of the terminal: refused before any
	// upgrade.
	// The same for a task's exec stream.
	for _, path := range []string{"/api/docker/host/containers/x/terminal", "/api/task/1/exec"} {
		wsURL := "ws" + strings.TrimPrefix(base, "http") + path
		for _, origin := range []string{"http://evil.example", "null"} {
			hdr := http.Header{"Origin": {origin}, "Cookie": {auth.SessionCookie + "=" + session.Value}}
			conn, resp, err := websocket.DefaultDialer.Dial(wsURL, hdr)
			if err == nil {
				conn.Close()
				t.Fatalf("cross-origin (%s) upgrade of %s with the session cookie succeeded", origin, path)
			}
			if resp == nil || resp.StatusCode != http.StatusForbidden {
				t.Fatalf("cross-origin (%s) upgrade of %s: %v %v, want 403", origin, path, resp, err)
			}
		}
	}

	// Logout expires both cookies, and the session with them: a copy of
	// the cookie (stolen, or kept by a browser) is refused from then on.
	resp, _ = send("POST", "/api/auth/logout", "", nil, jar)
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("logout: %d", resp.StatusCode)
	}
	for _, c := range resp.Cookies() {
		if c.MaxAge >= 0 || c.Value != "" {
			t.Errorf("logout leaves cookie %+v", c)
		}
	}
	if resp, body := send("GET", "/api/auth/whoami", "", nil, jar); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("whoami with the cookie of a session signed out: %d %s, want 401", resp.StatusCode, body)
	}
	if resp, body := send("GET", "/api/auth/whoami", "", map[string]string{"Authorization": "Bearer " + admin}, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("the token typed at login, after signing out: %d %s, want it still valid", resp.StatusCode, body)
	}

	// Revoking the token typed at login ends the sessions made with it.
	resp, body = send("POST", "/api/tokens", `{"name":"laptop"}`, map[string]string{"Authorization": "Bearer " + admin}, nil)
	var laptop api.TokenResponse
	if resp.StatusCode != http.StatusCreated || json.Unmarshal([]byte(body), &laptop) != nil {
		t.Fatalf("create a token: %d %s", resp.StatusCode, body)
	}
	resp, body = send("POST", "/api/auth/login", `{"token":"`+laptop.Token+`"}`, nil, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("login with the new token: %d %s", resp.StatusCode, body)
	}
	jar = nil
	for _, c := range resp.Cookies() {
		if c.Name == auth.SessionCookie {
			jar = []*http.Cookie{{Name: c.Name, Value: c.Value}}
		}
	}
	if resp, body := send("GET", "/api/auth/whoami", "", nil, jar); resp.StatusCode != http.StatusOK {
		t.Fatalf("whoami in the new session: %d %s", resp.StatusCode, body)
	}
	if resp, body := send("DELETE", "/api/tokens/"+laptop.TokenID, "", map[string]string{"Authorization": "Bearer " + admin}, nil); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("revoke the token: %d %s", resp.StatusCode, body)
	}
	if resp, body := send("GET", "/api/auth/whoami", "", nil, jar); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("a session of a revoked token: %d %s, want 401", resp.StatusCode, body)
	}
}

// TestLoginThroughFollower: the dashboard served by a follower signs in
// there: the login (a write: it records the session's token) goes to the
// leader, which checks the browser's Origin against the Host the follower
// was asked for; the cookie then works on the follower at once, and a
// page of another origin still cannot sign a browser in.
func TestLoginThroughFollower(t *testing.T) {
	hosts := startClusterWith(t, 3, func(_ int, cfg *Config) { cfg.AnonymousRole = "" })
	leader, follower := matrixLeader(t, hosts)
	admin := bootstrapAdmin(t, leader)
	base := follower.APIURL()
	u, _ := url.Parse(base)
	for _, origin := range []string{"http://evil.example", "http://" + u.Hostname() + ":1"} {
		resp, body := doHeader(t, "POST", base+"/api/auth/login", http.Header{"Origin": {origin}}, api.LoginRequest{Token: admin})
		if resp.StatusCode != http.StatusForbidden || len(resp.Cookies()) != 0 {
			t.Fatalf("login from origin %s through a follower: %d %s, cookies %v; want 403 and none", origin, resp.StatusCode, body, resp.Cookies())
		}
	}
	resp, body := doHeader(t, "POST", base+"/api/auth/login", http.Header{"Origin": {"http://" + u.Host}}, api.LoginRequest{Token: admin})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("login from the follower's own page: %d %s", resp.StatusCode, body)
	}
	hdr := http.Header{}
	for _, c := range resp.Cookies() {
		if c.Name == auth.SessionCookie {
			hdr.Set("Cookie", c.Name+"="+c.Value)
		}
	}
	if resp, body := doHeader(t, "GET", base+"/api/auth/whoami", hdr, nil); resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"admin"`) {
		t.Fatalf("whoami on the follower with the new session: %d %s", resp.StatusCode, body)
	}
	if resp, body := doHeader(t, "POST", base+"/api/auth/logout", hdr, nil); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("logout through the follower: %d %s", resp.StatusCode, body)
	}
	waitFor(t, 10*time.Second, func() bool {
		resp, _ := doHeader(t, "GET", base+"/api/auth/whoami", hdr, nil)
		return resp.StatusCode == http.StatusUnauthorized
	})
}

// TestSessionsEndWithTheirToken: a dashboard session is made from the
// token typed at login (a session typed in makes one of the same token),
// and is refused as soon as that token is gone, even when the revocation
// never reached the session itself (a login that raced it); a user keeps
// at most maxSessions sessions; sign-ins are paced per user; the names of
// sessions are the dashboard's.
func TestSessionsEndWithTheirToken(t *testing.T) {
	hosts := startClusterWith(t, 1, func(_ int, cfg *Config) { cfg.AnonymousRole = "" })
	h := hosts[0]
	admin := bootstrapAdmin(t, h)
	base := h.APIURL()
	bearer := func(tok string) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }
	login := func(tok string) (string, int) {
		t.Helper()
		resp, _ := doHeader(t, "POST", base+"/api/auth/login", nil, api.LoginRequest{Token: tok})
		for _, c := range resp.Cookies() {
			if c.Name == auth.SessionCookie {
				return c.Value, resp.StatusCode
			}
		}
		return "", resp.StatusCode
	}
	whoami := func(secret string) int {
		resp, _ := doHeader(t, "GET", base+"/api/auth/whoami", http.Header{"Cookie": {auth.SessionCookie + "=" + secret}}, nil)
		return resp.StatusCode
	}
	resp, body := doHeader(t, "POST", base+"/api/tokens", bearer(admin), api.TokenRequest{Name: "laptop"})
	var laptop api.TokenResponse
	if resp.StatusCode != http.StatusCreated || json.Unmarshal(body, &laptop) != nil {
		t.Fatalf("create a token: %d %s", resp.StatusCode, body)
	}
	s1, code := login(laptop.Token)
	if code != http.StatusOK || s1 == "" {
		t.Fatalf("login: %d", code)
	}
	s2, code := login(s1) // a session typed in
	if code != http.StatusOK || s2 == "" {
		t.Fatalf("login with a session: %d", code)
	}
	for _, tok := range h.Machine().Tokens("admin") {
		if parent, ok := auth.SessionParent(tok); ok && parent != laptop.TokenID {
			t.Fatalf("session %s made from %s, want from the typed token %s", tok.ID, parent, laptop.TokenID)
		}
	}
	// The token alone goes (as when a login's session was made while the
	// revocation ran): its sessions are refused all the same.
	if _, err := h.Propose(context.Background(), &fsm.RevokeToken{ID: laptop.TokenID}); err != nil {
		t.Fatal(err)
	}
	for i, s := range []string{s1, s2} {
		if code := whoami(s); code != http.StatusUnauthorized {
			t.Errorf("session %d of a revoked token: whoami %d, want 401", i+1, code)
		}
	}
	if _, code := login(s1); code != http.StatusUnauthorized {
		t.Errorf("login with a session of a revoked token: %d, want 401", code)
	}

	// At most maxSessions live sessions a user; beyond, sign-ins are
	// paced (a burst of loginBurst, then one per loginInterval).
	var sessions []string
	limited := false
	for range maxSessionsForTest + 4 {
		s, code := login(admin)
		if code == http.StatusTooManyRequests {
			limited = true
			time.Sleep(1100 * time.Millisecond)
			if s, code = login(admin); code != http.StatusOK {
				t.Fatalf("login after a pause: %d", code)
			}
		} else if code != http.StatusOK {
			t.Fatalf("login: %d", code)
		}
		sessions = append(sessions, s)
	}
	if !limited {
		t.Errorf("%d sign-ins at once were never paced", len(sessions))
	}
	live := 0
	for _, tok := range h.Machine().Tokens("admin") {
		if _, ok := auth.SessionParent(tok); ok {
			live++
		}
	}
	if live > maxSessionsForTest {
		t.Errorf("admin holds %d sessions, want at most %d", live, maxSessionsForTest)
	}
	if code := whoami(sessions[0]); code != http.StatusUnauthorized {
		t.Errorf("the oldest session beyond the cap: whoami %d, want 401", code)
	}
	if code := whoami(sessions[len(sessions)-1]); code != http.StatusOK {
		t.Errorf("the newest session: whoami %d", code)
	}
	resp, body = doHeader(t, "POST", base+"/api/tokens", bearer(admin), api.TokenRequest{Name: auth.SessionTokenName(laptop.TokenID)})
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("a token named like a session: %d %s, want 400", resp.StatusCode, body)
	}
	// A session mints no token: one would outlive the revocation of the
	// token the session came from.
	newest := sessions[len(sessions)-1]
	resp, body = doHeader(t, "POST", base+"/api/tokens", bearer(newest), api.TokenRequest{Name: "from a session"})
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("a token created with a session: %d %s, want 403", resp.StatusCode, body)
	}
	// A token an account named like a session before such names were
	// reserved (no expiry) is an ordinary token.
	legacySecret, legacy, err := auth.NewToken("admin", auth.SessionTokenName("0123456789abcdef"), time.Now(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Propose(context.Background(), &fsm.CreateToken{Token: legacy}); err != nil {
		t.Fatal(err)
	}
	if resp, body := doHeader(t, "GET", base+"/api/auth/whoami", bearer(legacySecret), nil); resp.StatusCode != http.StatusOK {
		t.Errorf("a token named like a session before the names were reserved: %d %s", resp.StatusCode, body)
	}
}

// maxSessionsForTest is httpapi's maxSessions.
const maxSessionsForTest = 16
