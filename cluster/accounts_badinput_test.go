package cluster

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/fsm"
)

// accountCall sends one request to an account endpoint with bearer as the
// API token ("" sends none) and extra headers, and returns the answer.
func accountCall(t *testing.T, method, url, bearer, body string, header map[string]string) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatalf("build %s %s: %v", method, url, err)
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// accountState is everything the account endpoints may change.
func accountState(t *testing.T, m *fsm.Machine) string {
	t.Helper()
	recs, _ := m.Audit(fsm.AuditFilter{}, 1<<20)
	b, err := json.Marshal(struct {
		Bootstrapped bool
		Users        []fsm.User
		Groups       []fsm.Group
		Tokens       []fsm.Token
		Audit        []fsm.AuditRecord
	}{m.Bootstrapped(), m.Users(), m.Groups(), m.Tokens(""), recs})
	if err != nil {
		t.Fatalf("encode account state: %v", err)
	}
	return string(b)
}

// TestAccountEndpointsRejectBadInput sends malformed, impossible and
// forbidden requests to every account endpoint of a real replica and checks
// that each gets a 4xx whose message names the field or the problem, and
// that neither the accounts, the tokens, the audit log nor the Raft log
// moved: bad input is turned away before it is proposed.
func TestAccountEndpointsRejectBadInput(t *testing.T) {
	h := startCluster(t, 1)[0]
	base := h.APIURL() + "/api"

	resp, body := do(t, "POST", base+"/auth/bootstrap", `{"user":"root_admin"}`)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("bootstrap: %d %s", resp.StatusCode, body)
	}
	var boot api.TokenResponse
	if err := json.Unmarshal(body, &boot); err != nil || boot.Token == "" {
		t.Fatalf("bootstrap answer %s: %v", body, err)
	}
	admin := boot.Token
	// A user with a token, and a group, to collide with.
	mustStatus := func(want int, method, path, bearer, body string) []byte {
		t.Helper()
		st, b := accountCall(t, method, base+path, bearer, body, nil)
		if st != want {
			t.Fatalf("setup %s %s: %d, want %d: %s", method, path, st, want, b)
		}
		return b
	}
	mustStatus(201, "POST", "/users", admin, `{"name":"bob","role":"user"}`)
	var bobTok api.TokenResponse
	json.Unmarshal(mustStatus(201, "POST", "/tokens", admin, `{"user":"bob","name":"laptop"}`), &bobTok)
	bob := bobTok.Token
	mustStatus(201, "POST", "/groups", admin, `{"name":"ml"}`)

	huge := `{"name":"` + strings.Repeat("a", 300<<10) + `","role":"user"}`
	longKey := "ssh-ed25519 " + strings.Repeat("A", fsm.MaxSSHKeyLen)
	manyKeys, _ := json.Marshal(api.UserRequest{Name: "keys", Role: fsm.RoleUser, SSHKeys: make([]string, fsm.MaxSSHKeys+1)})
	const goodKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGq1S2kHk5i0jCwKRLbTB0m1WgOJQv1XrQmn5nE8TqG8 bob@laptop"

	cases := []struct {
		name, method, path, who, body string
		header                        map[string]string
		status                        int
		want                          string
	}{
		// bootstrap (cluster token only, once)
		{"bootstrap again", "POST", "/auth/bootstrap", "cluster", `{"user":"other"}`, nil, 409, "bootstrapped already"},
		{"bootstrap bad name", "POST", "/auth/bootstrap", "cluster", `{"user":"Bad Name"}`, nil, 400, "user"},
		{"bootstrap bad token", "POST", "/auth/bootstrap", "cluster", `{"token":"hkr_short"}`, nil, 400, "token"},
		{"bootstrap unknown field", "POST", "/auth/bootstrap", "cluster", `{"usr":"x"}`, nil, 400, "usr"},
		{"bootstrap oversize", "POST", "/auth/bootstrap", "cluster", `{"user":"` + strings.Repeat("a", 300<<10) + `"}`, nil, 413, "larger than the limit"},
		{"bootstrap as admin", "POST", "/auth/bootstrap", "admin", `{}`, nil, 403, "cluster token"},
		{"bootstrap wrong cluster token", "POST", "/auth/bootstrap", "", `{}`, map[string]string{api.TokenHeader: "nope"}, 401, "cluster token"},
		// whoami and the credentials themselves
		{"unknown bearer", "GET", "/auth/whoami", "hkr_not-a-token", ``, nil, 401, "token"},
		{"basic auth", "GET", "/auth/whoami", "", ``, map[string]string{"Authorization": "Basic YWRtaW46eA=="}, 401, "Bearer"},
		{"empty bearer", "GET", "/auth/whoami", "", ``, map[string]string{"Authorization": "Bearer "}, 401, "Bearer"},
		// login (public: trades a token for a cookie)
		{"login empty body", "POST", "/auth/login", "", ``, nil, 400, "empty request body"},
		{"login unknown token", "POST", "/auth/login", "", `{"token":"hkr_nope"}`, nil, 401, "token"},
		{"login unknown field", "POST", "/auth/login", "", `{"token":"x","user":"bob"}`, nil, 400, "user"},
		{"login token not a string", "POST", "/auth/login", "", `{"token":42}`, nil, 400, "token"},
		// users: create
		{"user bad name", "POST", "/users", "admin", `{"name":"Bad Name","role":"user"}`, nil, 400, "name"},
		{"user name too long", "POST", "/users", "admin", `{"name":"` + strings.Repeat("a", 33) + `","role":"user"}`, nil, 400, "name"},
		{"user name with slash", "POST", "/users", "admin", `{"name":"a/b","role":"user"}`, nil, 400, "name"},
		{"user bad role", "POST", "/users", "admin", `{"name":"carol","role":"god"}`, nil, 400, "role"},
		{"user missing role", "POST", "/users", "admin", `{"name":"carol"}`, nil, 400, "role"},
		{"user role not a string", "POST", "/users", "admin", `{"name":"carol","role":3}`, nil, 400, "role"},
		{"user unknown field", "POST", "/users", "admin", `{"name":"carol","role":"user","admin":true}`, nil, 400, "admin"},
		{"user duplicate key", "POST", "/users", "admin", `{"name":"carol","role":"user","role":"admin"}`, nil, 400, "role"},
		{"user malformed", "POST", "/users", "admin", `{"name":"carol"`, nil, 400, "malformed JSON"},
		{"user empty body", "POST", "/users", "admin", ``, nil, 400, "empty request body"},
		{"user oversize", "POST", "/users", "admin", huge, nil, 413, "larger than the limit"},
		{"user bad unix_user", "POST", "/users", "admin", `{"name":"carol","role":"user","unix_user":"root;rm -rf"}`, nil, 400, "unix_user"},
		{"user bad ssh key", "POST", "/users", "admin", `{"name":"carol","role":"user","ssh_keys":["not a key"]}`, nil, 400, "ssh_keys[0]"},
		{"user ssh key with newline", "POST", "/users", "admin", `{"name":"carol","role":"user","ssh_keys":["` + goodKey + `\nssh-rsa AAAA"]}`, nil, 400, "ssh_keys"},
		{"user ssh key too long", "POST", "/users", "admin", `{"name":"carol","role":"user","ssh_keys":["` + longKey + `"]}`, nil, 400, "ssh_keys"},
		{"user too many keys", "POST", "/users", "admin", string(manyKeys), nil, 400, "ssh_keys"},
		{"user bad group", "POST", "/users", "admin", `{"name":"carol","role":"user","groups":["ML!"]}`, nil, 400, "groups"},
		{"user negative quota", "POST", "/users", "admin", `{"name":"carol","role":"user","quota":{"cores":-1}}`, nil, 400, "quota"},
		{"user quota unknown field", "POST", "/users", "admin", `{"name":"carol","role":"user","quota":{"cpus":4}}`, nil, 400, "cpus"},
		{"user policy unknown field", "POST", "/users", "admin", `{"name":"carol","role":"user","policy":{"sudo":true}}`, nil, 400, "sudo"},
		{"user duplicate", "POST", "/users", "admin", `{"name":"bob","role":"viewer"}`, nil, 409, "bob"},
		{"user create as user", "POST", "/users", "bob", `{"name":"carol","role":"admin"}`, nil, 403, "admin"},
		{"user create anonymous", "POST", "/users", "", `{"name":"carol","role":"admin"}`, nil, 401, "token"},
		// users: read, change, remove
		{"get unknown user", "GET", "/users/nobody", "admin", ``, nil, 404, "nobody"},
		{"patch unknown user", "PATCH", "/users/nobody", "admin", `{"role":"user"}`, nil, 404, "nobody"},
		{"patch bad role", "PATCH", "/users/bob", "admin", `{"role":"superuser"}`, nil, 400, "role"},
		{"patch unknown field", "PATCH", "/users/bob", "admin", `{"name":"robert"}`, nil, 400, "name"},
		{"patch bad ssh key", "PATCH", "/users/bob", "admin", `{"ssh_keys":["ssh-ed25519 !!!"]}`, nil, 400, "ssh_keys[0]"},
		{"patch bad unix_user", "PATCH", "/users/bob", "admin", `{"unix_user":"../etc"}`, nil, 400, "unix_user"},
		{"patch negative quota", "PATCH", "/users/bob", "admin", `{"quota":{"memory_bytes":-5}}`, nil, 400, "quota"},
		{"patch empty body", "PATCH", "/users/bob", "admin", ``, nil, 400, "empty request body"},
		{"patch oversize", "PATCH", "/users/bob", "admin", `{"unix_user":"` + strings.Repeat("b", 300<<10) + `"}`, nil, 413, "larger than the limit"},
		{"demote last admin", "PATCH", "/users/root_admin", "admin", `{"role":"operator"}`, nil, 409, "last admin"},
		{"patch as user", "PATCH", "/users/bob", "bob", `{"role":"admin"}`, nil, 403, "admin"},
		{"remove unknown user", "DELETE", "/users/nobody", "admin", ``, nil, 404, "nobody"},
		{"remove last admin", "DELETE", "/users/root_admin", "admin", ``, nil, 409, "last admin"},
		{"remove as user", "DELETE", "/users/root_admin", "bob", ``, nil, 403, "admin"},
		// groups
		{"group bad name", "POST", "/groups", "admin", `{"name":"Machine Learning"}`, nil, 400, "name"},
		{"group empty name", "POST", "/groups", "admin", `{}`, nil, 400, "name"},
		{"group negative quota", "POST", "/groups", "admin", `{"name":"gpu","quota":{"gpus":-2}}`, nil, 400, "quota"},
		{"group unknown field", "POST", "/groups", "admin", `{"name":"gpu","members":["bob"]}`, nil, 400, "members"},
		{"group duplicate", "POST", "/groups", "admin", `{"name":"ml"}`, nil, 409, "ml"},
		{"group oversize", "POST", "/groups", "admin", `{"name":"` + strings.Repeat("g", 300<<10) + `"}`, nil, 413, "larger than the limit"},
		{"group create as user", "POST", "/groups", "bob", `{"name":"gpu"}`, nil, 403, "admin"},
		{"patch unknown group", "PATCH", "/groups/nogroup", "admin", `{"quota":{"gpus":1}}`, nil, 404, "nogroup"},
		{"patch group negative quota", "PATCH", "/groups/ml", "admin", `{"quota":{"vps":-1}}`, nil, 400, "quota"},
		{"patch group unknown field", "PATCH", "/groups/ml", "admin", `{"name":"ai"}`, nil, 400, "name"},
		{"patch group as user", "PATCH", "/groups/ml", "bob", `{"policy":{"privileged":true}}`, nil, 403, "admin"},
		{"remove unknown group", "DELETE", "/groups/nogroup", "admin", ``, nil, 404, "nogroup"},
		{"remove group as user", "DELETE", "/groups/ml", "bob", ``, nil, 403, "admin"},
		// tokens
		{"token bad ttl", "POST", "/tokens", "admin", `{"ttl":"forever"}`, nil, 400, "ttl"},
		{"token negative ttl", "POST", "/tokens", "admin", `{"ttl":"-1h"}`, nil, 400, "ttl"},
		{"token zero ttl", "POST", "/tokens", "admin", `{"ttl":"0s"}`, nil, 400, "ttl"},
		{"token huge ttl", "POST", "/tokens", "admin", `{"ttl":"1000000h"}`, nil, 400, "ttl"},
		{"token ttl as number", "POST", "/tokens", "admin", `{"ttl":3600}`, nil, 400, "ttl"},
		{"token unknown user", "POST", "/tokens", "admin", `{"user":"nobody"}`, nil, 404, "nobody"},
		{"token name too long", "POST", "/tokens", "admin", `{"name":"` + strings.Repeat("n", fsm.MaxTokenName+1) + `"}`, nil, 400, "name"},
		{"token name with newline", "POST", "/tokens", "admin", `{"name":"a\nb"}`, nil, 400, "name"},
		{"token unknown field", "POST", "/tokens", "admin", `{"role":"admin"}`, nil, 400, "role"},
		{"token oversize", "POST", "/tokens", "admin", `{"name":"` + strings.Repeat("n", 300<<10) + `"}`, nil, 413, "larger than the limit"},
		{"token for another as user", "POST", "/tokens", "bob", `{"user":"root_admin"}`, nil, 403, "admin"},
		{"token anonymous", "POST", "/tokens", "", `{}`, nil, 403, "account"},
		{"list another's tokens as user", "GET", "/tokens?user=root_admin", "bob", ``, nil, 403, "admin"},
		{"revoke unknown token", "DELETE", "/tokens/0123456789abcdef", "admin", ``, nil, 404, "0123456789abcdef"},
		{"revoke another's token as user", "DELETE", "/tokens/" + boot.TokenID, "bob", ``, nil, 404, boot.TokenID},
		{"revoke bad id", "DELETE", "/tokens/..%2F..", "admin", ``, nil, 404, "token"},
		// the cluster token is no account
		{"cluster token creates a user", "POST", "/users", "cluster", `{"name":"carol","role":"admin"}`, nil, 403, "cluster token"},
		{"cluster token creates a token", "POST", "/tokens", "cluster", `{"user":"root_admin"}`, nil, 403, "cluster token"},
		{"cluster token lists users", "GET", "/users", "cluster", ``, nil, 403, "cluster token"},
		{"cluster token reads the audit", "GET", "/audit", "cluster", ``, nil, 403, "cluster token"},
		// audit
		{"audit bad since", "GET", "/audit?since=yesterday", "admin", ``, nil, 400, "since"},
		{"audit negative since", "GET", "/audit?since=-5h", "admin", ``, nil, 400, "since"},
		{"audit bad after", "GET", "/audit?after=x", "admin", ``, nil, 400, "after"},
		{"audit bad limit", "GET", "/audit?limit=0", "admin", ``, nil, 400, "limit"},
		{"audit huge limit", "GET", "/audit?limit=100000", "admin", ``, nil, 400, "limit"},
		{"audit unknown bearer", "GET", "/audit", "hkr_nope", ``, nil, 401, "token"},
	}
	tokens := map[string]string{"admin": admin, "bob": bob}
	m := h.Machine()
	before, index := accountState(t, m), m.AppliedIndex()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			bearer, ok := tokens[tc.who]
			if !ok && strings.HasPrefix(tc.who, "hkr_") {
				bearer = tc.who // a made-up token
			}
			start := m.AppliedIndex()
			defer func() {
				if got := m.AppliedIndex(); got != start {
					t.Errorf("proposed to Raft before it was rejected (applied index %d -> %d)", start, got)
				}
			}()
			header := tc.header
			if tc.who == "cluster" {
				header = map[string]string{api.TokenHeader: testToken}
			}
			status, body := accountCall(t, tc.method, base+tc.path, bearer, tc.body, header)
			if status != tc.status {
				t.Fatalf("status %d, want %d: %s", status, tc.status, truncateBody(body))
			}
			var e api.ErrorResponse
			if err := json.Unmarshal(body, &e); err != nil || e.Error == "" {
				t.Fatalf("error body is not {\"error\": ...}: %s", truncateBody(body))
			}
			if !strings.Contains(e.Error, tc.want) {
				t.Errorf("error %q does not name %q", e.Error, tc.want)
			}
			if bytes.Contains(body, []byte(admin)) || bytes.Contains(body, []byte(bob)) {
				t.Errorf("the answer repeats a token secret: %s", truncateBody(body))
			}
		})
	}
	if after := accountState(t, m); after != before {
		t.Errorf("rejected input changed the accounts:\nbefore %s\nafter  %s", before, after)
	}
	if got := m.AppliedIndex(); got != index {
		t.Errorf("rejected input reached the Raft log: applied index moved from %d to %d", index, got)
	}
	// Positive control: the same endpoints take good input.
	mustStatus(201, "POST", "/users", admin, `{"name":"carol","role":"user","ssh_keys":["`+goodKey+`"],"groups":["ml"],"quota":{"cores":4}}`)
	mustStatus(200, "PATCH", "/users/carol", admin, `{"role":"operator"}`)
	mustStatus(201, "POST", "/tokens", admin, `{"user":"carol","ttl":"720h"}`)
	mustStatus(200, "GET", "/audit?since=1h&limit=5", admin, ``)
	mustStatus(204, "DELETE", "/users/carol", admin, ``)
	if accountState(t, m) == before {
		t.Error("good input changed nothing")
	}
}

func truncateBody(b []byte) string {
	if len(b) > 300 {
		return string(b[:300]) + "..."
	}
	return string(b)
}
