package auth_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster/auth"
	"github.com/hakuriver/hakuriver-ha/fsm"
)

// t0 is the clock of the machine's records and of the Authenticator.
var t0 = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

const clusterToken = "cluster-secret-token"

// accounts is a real fsm.Machine with one user per role, each holding one
// token, plus a token of alice that expires at t0+1h. It returns the
// machine and the secrets by user name ("alice-exp" for the expiring one).
func accounts(t testing.TB) (*fsm.Machine, map[string]string) {
	t.Helper()
	m := fsm.New()
	idx := uint64(0)
	apply := func(c fsm.Command) {
		t.Helper()
		b, err := fsm.Encode(c)
		if err != nil {
			t.Fatal(err)
		}
		idx++
		if r := m.Apply(idx, b); r.Err != nil {
			t.Fatalf("apply %T: %v", c, r.Err)
		}
	}
	secrets := map[string]string{}
	newTok := func(user string, ttl time.Duration) *fsm.Token {
		t.Helper()
		s, tok, err := auth.NewToken(user, "test", t0, ttl)
		if err != nil {
			t.Fatal(err)
		}
		if !auth.LooksLikeSecret(s) {
			t.Fatalf("secret %q does not look like one", s)
		}
		key := user
		if ttl > 0 {
			key += "-exp"
		}
		secrets[key] = s
		return tok
	}
	apply(&fsm.BootstrapAuth{Admin: &fsm.User{Name: "root", Role: fsm.RoleAdmin, CreatedAt: t0}, Token: newTok("root", 0)})
	for name, role := range map[string]fsm.Role{"vera": fsm.RoleViewer, "alice": fsm.RoleUser, "otto": fsm.RoleOperator} {
		apply(&fsm.PutUser{User: &fsm.User{Name: name, Role: role, CreatedAt: t0}, Create: true})
		apply(&fsm.CreateToken{Token: newTok(name, 0)})
	}
	apply(&fsm.CreateToken{Token: newTok("alice", time.Hour)})
	return m, secrets
}

func newAuth(m *fsm.Machine, anon fsm.Role, now time.Time) *auth.Authenticator {
	return &auth.Authenticator{Accounts: m, ClusterToken: clusterToken, AnonymousRole: anon, Now: func() time.Time { return now }}
}

func req(method string, hdr ...string) *http.Request {
	r := httptest.NewRequest(method, "http://h1:8000/api/x", nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Add(hdr[i], hdr[i+1])
	}
	return r
}

func bearer(s string) []string { return []string{"Authorization", "Bearer " + s} }

func cookie(s string) []string { return []string{"Cookie", auth.SessionCookie + "=" + s} }

func status(err error) int {
	if err == nil {
		return http.StatusOK
	}
	e, ok := err.(*auth.Error)
	if !ok {
		return -1
	}
	return e.HTTPStatus()
}

func TestAuthenticate(t *testing.T) {
	m, sec := accounts(t)
	a := newAuth(m, "", t0)
	cases := []struct {
		name string
		hdr  []string
		want auth.Kind
		user string
		role fsm.Role
		err  bool
	}{
		{"bearer", bearer(sec["alice"]), auth.Account, "alice", fsm.RoleUser, false},
		{"bearer lower-case scheme", []string{"Authorization", "bearer " + sec["otto"]}, auth.Account, "otto", fsm.RoleOperator, false},
		{"bearer with spaces", []string{"Authorization", "Bearer   " + sec["vera"] + " "}, auth.Account, "vera", fsm.RoleViewer, false},
		{"cookie", cookie(sec["root"]), auth.Account, "root", fsm.RoleAdmin, false},
		{"cluster token", []string{auth.ClusterTokenHeader, clusterToken}, auth.Cluster, "cluster", "", false},
		{"nothing", nil, auth.Anonymous, auth.AnonymousName, "", false},
		{"empty cookie", cookie(""), auth.Anonymous, auth.AnonymousName, "", false},
		{"wrong cluster token", []string{auth.ClusterTokenHeader, clusterToken + "x"}, 0, "", "", true},
		{"unknown bearer", bearer("hkr_" + strings.Repeat("A", 43)), 0, "", "", true},
		{"cluster token as bearer", bearer(clusterToken), 0, "", "", true},
		{"basic scheme", []string{"Authorization", "Basic " + sec["alice"]}, 0, "", "", true},
		{"token scheme", []string{"Authorization", "Token " + sec["alice"]}, 0, "", "", true},
		{"bare secret", []string{"Authorization", sec["alice"]}, 0, "", "", true},
		{"empty bearer", []string{"Authorization", "Bearer "}, 0, "", "", true},
		{"unknown cookie", cookie("hkr_nope"), 0, "", "", true},
		// A bad bearer is not rescued by a good cookie: credentials that
		// are present but wrong are an error.
		{"bad bearer, good cookie", append(bearer("hkr_nope"), cookie(sec["root"])...), 0, "", "", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := a.Authenticate(req("GET", c.hdr...))
			if c.err {
				if err == nil || status(err) != http.StatusUnauthorized {
					t.Fatalf("want 401, got %+v, %v", p, err)
				}
				if strings.Contains(err.Error(), "alice") || strings.Contains(err.Error(), "hkr_") {
					t.Fatalf("error %q names an account or echoes the secret", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.Kind != c.want || p.Name != c.user || p.Role != c.role {
				t.Fatalf("got %+v, want kind %d user %s role %s", p, c.want, c.user, c.role)
			}
			if p.Kind == auth.Account && (p.TokenID == "" || p.User == nil || p.User.Name != c.user) {
				t.Fatalf("account principal without token ID or user: %+v", p)
			}
		})
	}
}

func TestAuthenticateExpiry(t *testing.T) {
	m, sec := accounts(t)
	for _, c := range []struct {
		now  time.Time
		want int
	}{
		{t0, http.StatusOK},
		{t0.Add(time.Hour - time.Nanosecond), http.StatusOK},
		{t0.Add(time.Hour), http.StatusUnauthorized},
		{t0.Add(24 * time.Hour), http.StatusUnauthorized},
	} {
		_, err := newAuth(m, "", c.now).Authenticate(req("GET", bearer(sec["alice-exp"])...))
		if status(err) != c.want {
			t.Errorf("at t0+%s: %v, want %d", c.now.Sub(t0), err, c.want)
		}
		// The user's token without expiry is unaffected.
		if _, err := newAuth(m, "", c.now).Authenticate(req("GET", bearer(sec["alice"])...)); err != nil {
			t.Errorf("at t0+%s: the non-expiring token fails: %v", c.now.Sub(t0), err)
		}
	}
}

func TestAuthenticateRevokedAndRemoved(t *testing.T) {
	m, sec := accounts(t)
	a := newAuth(m, "", t0)
	idx := m.AppliedIndex()
	apply := func(c fsm.Command) {
		t.Helper()
		b, _ := fsm.Encode(c)
		idx++
		if r := m.Apply(idx, b); r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	p, err := a.Authenticate(req("GET", bearer(sec["alice"])...))
	if err != nil {
		t.Fatal(err)
	}
	apply(&fsm.RevokeToken{ID: p.TokenID})
	if _, err := a.Authenticate(req("GET", bearer(sec["alice"])...)); status(err) != http.StatusUnauthorized {
		t.Fatalf("revoked token: %v, want 401", err)
	}
	if _, err := a.Authenticate(req("GET", bearer(sec["alice-exp"])...)); err != nil {
		t.Fatalf("alice's other token: %v", err)
	}
	apply(&fsm.RemoveUser{Name: "otto"})
	if _, err := a.Authenticate(req("GET", bearer(sec["otto"])...)); status(err) != http.StatusUnauthorized {
		t.Fatalf("token of a removed user: %v, want 401", err)
	}
	// No accounts at all: every token is unknown.
	noAcc := &auth.Authenticator{ClusterToken: clusterToken}
	if _, err := noAcc.Authenticate(req("GET", bearer(sec["root"])...)); status(err) != http.StatusUnauthorized {
		t.Fatalf("without accounts: %v, want 401", err)
	}
}

func TestCheckRules(t *testing.T) {
	m, sec := accounts(t)
	rules := map[string]auth.Rule{
		"public":    {Public: true},
		"viewer":    {Role: fsm.RoleViewer},
		"user":      {Role: fsm.RoleUser},
		"operator":  {Role: fsm.RoleOperator},
		"admin":     {Role: fsm.RoleAdmin},
		"internal":  {Cluster: true},
		"adminOrCT": {Role: fsm.RoleAdmin, Cluster: true},
		"viewerCT":  {Role: fsm.RoleViewer, Cluster: true},
	}
	callers := map[string][]string{
		"anonymous": nil,
		"viewer":    bearer(sec["vera"]),
		"user":      bearer(sec["alice"]),
		"operator":  bearer(sec["otto"]),
		"admin":     bearer(sec["root"]),
		"cluster":   {auth.ClusterTokenHeader, clusterToken},
		"unknown":   bearer("hkr_unknown"),
		"wrongCT":   {auth.ClusterTokenHeader, "nope"},
		"basic":     {"Authorization", "Basic " + sec["root"]},
	}
	rank := map[string]int{"viewer": 1, "user": 2, "operator": 3, "admin": 4}
	// want is the expected status of caller on rule, from first principles.
	want := func(rule, caller string) int {
		r := rules[rule]
		if r.Public {
			return 200
		}
		switch caller {
		case "anonymous", "unknown", "wrongCT", "basic":
			return 401
		case "cluster":
			if r.Cluster {
				return 200
			}
			return 403
		}
		if r.Role == "" {
			return 403
		}
		if rank[caller] >= rank[string(r.Role)] {
			return 200
		}
		return 403
	}
	a := newAuth(m, "", t0)
	for rn, rule := range rules {
		for cn, hdr := range callers {
			for _, method := range []string{"GET", "POST"} {
				p, err := a.Check(rule, req(method, hdr...))
				if got := status(err); got != want(rn, cn) {
					t.Errorf("%s %s rule by %s: %d (%v), want %d", method, rn, cn, got, err, want(rn, cn))
					continue
				}
				if err == nil && rule.Public && (cn == "unknown" || cn == "wrongCT" || cn == "basic") && p.Kind != auth.Anonymous {
					t.Errorf("public route with bad credentials: principal %+v, want anonymous", p)
				}
				if status(err) == 403 && rule.Role != "" && cn != "cluster" && !strings.Contains(err.Error(), "needs role "+string(rule.Role)) {
					t.Errorf("%s rule by %s: 403 message %q does not name the role", rn, cn, err)
				}
			}
		}
	}
}

func TestCheckAnonymousRole(t *testing.T) {
	m, _ := accounts(t)
	for _, c := range []struct {
		anon             fsm.Role
		rule             auth.Rule
		want             int
		mentionsClusterT bool
	}{
		{"", auth.Rule{Role: fsm.RoleViewer}, 401, false},
		{fsm.RoleViewer, auth.Rule{Role: fsm.RoleViewer}, 200, false},
		{fsm.RoleViewer, auth.Rule{Role: fsm.RoleUser}, 401, false},
		{fsm.RoleUser, auth.Rule{Role: fsm.RoleUser}, 200, false},
		{fsm.RoleUser, auth.Rule{Role: fsm.RoleOperator}, 401, false},
		{fsm.RoleOperator, auth.Rule{Role: fsm.RoleOperator}, 200, false},
		{fsm.RoleOperator, auth.Rule{Role: fsm.RoleAdmin}, 401, false},
		// The anonymous role never opens an internal route.
		{fsm.RoleOperator, auth.Rule{Cluster: true}, 401, true},
		{fsm.RoleOperator, auth.Rule{Role: fsm.RoleAdmin, Cluster: true}, 401, true},
		{fsm.RoleViewer, auth.Rule{Role: fsm.RoleViewer, Cluster: true}, 200, false},
		{"", auth.Rule{Public: true}, 200, false},
	} {
		p, err := newAuth(m, c.anon, t0).Check(c.rule, req("POST"))
		if got := status(err); got != c.want {
			t.Errorf("anonymous role %q on %+v: %d (%v), want %d", c.anon, c.rule, got, err, c.want)
			continue
		}
		if err == nil && (p.Kind != auth.Anonymous || p.Name != auth.AnonymousName) {
			t.Errorf("anonymous role %q on %+v: principal %+v", c.anon, c.rule, p)
		}
		if err == nil && !c.rule.Public && p.Role != c.anon {
			t.Errorf("anonymous principal role %q, want %q", p.Role, c.anon)
		}
		if c.mentionsClusterT && !strings.Contains(err.Error(), "cluster token") {
			t.Errorf("internal route refusal %q does not mention the cluster token", err)
		}
	}
}

func TestCheckCookieCSRF(t *testing.T) {
	m, sec := accounts(t)
	a := newAuth(m, "", t0)
	rule := auth.Rule{Role: fsm.RoleUser}
	good := auth.CSRFToken(sec["alice"])
	if good == auth.CSRFToken(sec["root"]) || good == "" {
		t.Fatal("CSRF tokens of two sessions are equal or empty")
	}
	for _, c := range []struct {
		name   string
		method string
		hdr    []string
		want   int
	}{
		{"GET needs no CSRF", "GET", cookie(sec["alice"]), 200},
		{"HEAD needs no CSRF", "HEAD", cookie(sec["alice"]), 200},
		{"POST without CSRF", "POST", cookie(sec["alice"]), 403},
		{"DELETE without CSRF", "DELETE", cookie(sec["alice"]), 403},
		{"POST with CSRF", "POST", append(cookie(sec["alice"]), auth.CSRFHeader, good), 200},
		{"PATCH with CSRF", "PATCH", append(cookie(sec["alice"]), auth.CSRFHeader, good), 200},
		{"POST with another session's CSRF", "POST", append(cookie(sec["alice"]), auth.CSRFHeader, auth.CSRFToken(sec["root"])), 403},
		{"POST with the secret as CSRF", "POST", append(cookie(sec["alice"]), auth.CSRFHeader, sec["alice"]), 403},
		// A bearer token is not sent by browsers on their own: no CSRF.
		{"POST with bearer", "POST", bearer(sec["alice"]), 200},
		{"POST with bearer and cookie of another", "POST", append(bearer(sec["alice"]), cookie(sec["root"])...), 200},
	} {
		p, err := a.Check(rule, req(c.method, c.hdr...))
		if got := status(err); got != c.want {
			t.Errorf("%s: %d (%v), want %d", c.name, got, err, c.want)
			continue
		}
		if c.want == 403 && !strings.Contains(err.Error(), auth.CSRFHeader) {
			t.Errorf("%s: message %q does not name %s", c.name, err, auth.CSRFHeader)
		}
		if err == nil && p.Name != "alice" {
			t.Errorf("%s: principal %+v, want alice", c.name, p)
		}
	}
}

func TestCheckInsecureNoToken(t *testing.T) {
	m, sec := accounts(t)
	a := &auth.Authenticator{Accounts: m, InsecureNoToken: true, Now: func() time.Time { return t0 }}
	// Internal routes are open to anyone without a cluster token...
	if p, err := a.Check(auth.Rule{Cluster: true}, req("POST")); err != nil || p.Kind != auth.Cluster {
		t.Fatalf("insecure internal route: %+v %v", p, err)
	}
	// ...keeping an account caller's identity...
	if p, err := a.Check(auth.Rule{Role: fsm.RoleAdmin, Cluster: true}, req("POST", bearer(sec["alice"])...)); err != nil || p.Name != "alice" {
		t.Fatalf("insecure adminOrCT with alice: %+v %v", p, err)
	}
	// ...but account routes still need accounts.
	if _, err := a.Check(auth.Rule{Role: fsm.RoleUser}, req("POST")); status(err) != 401 {
		t.Fatalf("insecure user route anonymous: %v, want 401", err)
	}
	if !a.ClusterTokenOK("") || !a.ClusterTokenOK("anything") {
		t.Fatal("insecure: ClusterTokenOK must accept anything")
	}
	strict := &auth.Authenticator{}
	if strict.ClusterTokenOK("") {
		t.Fatal("no cluster token and not insecure: ClusterTokenOK(\"\") = true")
	}
	withTok := &auth.Authenticator{ClusterToken: clusterToken}
	if !withTok.ClusterTokenOK(clusterToken) || withTok.ClusterTokenOK(clusterToken[:5]) || withTok.ClusterTokenOK("") {
		t.Fatal("ClusterTokenOK does not compare exactly")
	}
}

func TestSameOrigin(t *testing.T) {
	for _, c := range []struct {
		host, origin string
		want         bool
	}{
		{"h1:8000", "", true},
		{"h1:8000", "http://h1:8000", true},
		{"h1:8000", "https://H1:8000", true},
		{"h1:8000", "http://h1:8001", false},
		{"h1:8000", "http://evil.example", false},
		{"h1:8000", "http://h1:8000.evil.example", false},
		{"h1:8000", "null", false},
		{"h1:8000", "://bad", false},
	} {
		r := httptest.NewRequest("GET", "http://"+c.host+"/api/x", nil)
		if c.origin != "" {
			r.Header.Set("Origin", c.origin)
		}
		if got := auth.SameOrigin(r); got != c.want {
			t.Errorf("host %s origin %q: %v, want %v", c.host, c.origin, got, c.want)
		}
	}
}

func TestNewTokenAndHash(t *testing.T) {
	s1, r1, err := auth.NewToken("alice", "laptop", t0, 0)
	if err != nil {
		t.Fatal(err)
	}
	s2, r2, _ := auth.NewToken("alice", "laptop", t0, time.Minute)
	if s1 == s2 || r1.ID == r2.ID || r1.Hash == r2.Hash {
		t.Fatal("two tokens are alike")
	}
	if r1.Hash != auth.Hash(s1) || len(r1.Hash) != 64 || !strings.HasPrefix(r1.Hash, r1.ID) {
		t.Fatalf("record %+v does not carry the hash of its secret", r1)
	}
	if strings.Contains(r1.Hash+r1.ID+r1.Name, strings.TrimPrefix(s1, auth.SecretPrefix)) {
		t.Fatal("the record carries the secret")
	}
	if r1.ExpiresAt != nil || r2.ExpiresAt == nil || !r2.ExpiresAt.Equal(t0.Add(time.Minute)) {
		t.Fatalf("expiry: %v, %v", r1.ExpiresAt, r2.ExpiresAt)
	}
	if auth.LooksLikeSecret("hkr_short") || auth.LooksLikeSecret(strings.Repeat("x", 47)) {
		t.Fatal("LooksLikeSecret accepts a wrong shape")
	}
}

func TestPrincipalOwnsAndCan(t *testing.T) {
	acct := auth.Principal{Kind: auth.Account, Name: "alice", Role: fsm.RoleUser}
	anon := auth.Principal{Kind: auth.Anonymous, Name: auth.AnonymousName, Role: fsm.RoleOperator}
	cl := auth.Principal{Kind: auth.Cluster, Name: "cluster"}
	switch {
	case !acct.Owns("alice"), acct.Owns("bob"), acct.Owns(""), acct.Owns(auth.AnonymousName):
		t.Error("account ownership")
	case !anon.Owns(""), !anon.Owns(auth.AnonymousName), anon.Owns("alice"):
		t.Error("anonymous ownership")
	case cl.Owns(""), cl.Owns("alice"), cl.Can(fsm.RoleViewer):
		t.Error("the cluster token owns nothing and has no role")
	case !acct.Can(fsm.RoleUser), acct.Can(fsm.RoleOperator), !anon.Can(fsm.RoleOperator):
		t.Error("Can")
	}
}

// BenchmarkCheck is the per-request cost of authenticating a bearer token
// against a real Machine holding 1000 tokens (SHA-256 and two map reads
// under the Machine's read lock).
func BenchmarkCheck(b *testing.B) {
	m := fsm.New()
	idx := uint64(0)
	apply := func(c fsm.Command) {
		data, err := fsm.Encode(c)
		if err != nil {
			b.Fatal(err)
		}
		idx++
		if r := m.Apply(idx, data); r.Err != nil {
			b.Fatal(r.Err)
		}
	}
	_, boot, _ := auth.NewToken("root", "", t0, 0)
	apply(&fsm.BootstrapAuth{Admin: &fsm.User{Name: "root", Role: fsm.RoleAdmin}, Token: boot})
	var secrets []string
	for i := range 1000 {
		name := "u" + string(rune('a'+i%26)) + strings.Repeat("x", i/26%5)
		if _, ok := m.User(name); !ok {
			apply(&fsm.PutUser{User: &fsm.User{Name: name, Role: fsm.RoleUser, Groups: []string{"g1", "g2"}}, Create: true})
		}
		s, tok, _ := auth.NewToken(name, "bench", t0, 24*time.Hour)
		apply(&fsm.CreateToken{Token: tok})
		secrets = append(secrets, s)
	}
	if n := len(m.Tokens("")); n != 1001 {
		b.Fatalf("%d tokens", n)
	}
	a := newAuth(m, "", t0)
	rule := auth.Rule{Role: fsm.RoleUser}
	reqs := make([]*http.Request, len(secrets))
	for i, s := range secrets {
		reqs[i] = req("POST", bearer(s)...)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := a.Check(rule, reqs[i%len(reqs)]); err != nil {
			b.Fatal(err)
		}
	}
}

// TestIsUnknownToken checks which rejections a lagging replica may take to
// the leader: only a well-formed token it does not hold, never an expired
// one (the replica knows it and it is dead everywhere) nor garbage.
func TestIsUnknownToken(t *testing.T) {
	m, sec := accounts(t)
	other, _, err := auth.NewToken("alice", "", t0, 0)
	if err != nil {
		t.Fatal(err)
	}
	a := newAuth(m, "", t0.Add(2*time.Hour))
	for _, c := range []struct {
		name   string
		secret string
		want   bool
	}{
		{"well-formed, not held", other, true},
		{"expired", sec["alice-exp"], false},
		{"garbage", "hkr_short", false},
		{"not a token at all", "password", false},
	} {
		_, err := a.Authenticate(req("GET", bearer(c.secret)...))
		if status(err) != http.StatusUnauthorized || auth.IsUnknownToken(err) != c.want {
			t.Errorf("%s: %v, IsUnknownToken %v, want 401 and %v", c.name, err, auth.IsUnknownToken(err), c.want)
		}
	}
}
