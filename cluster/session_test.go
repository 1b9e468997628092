package cluster

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"strings"
	"testing"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/cluster/auth"
)

// TestDashboardSessionCookieAndCSRF logs in the way the dashboard does and
// checks the session cookie's attributes, that reads work with the cookie
// alone, and that a write with the cookie but without the CSRF header (what
// a forged cross-site form would send) is refused and changes nothing.
func TestDashboardSessionCookieAndCSRF(t *testing.T) {
	h := startClusterWith(t, 1, func(_ int, cfg *Config) { cfg.AnonymousRole = "" })[0]
	admin := bootstrapAdmin(t, h)
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar}
	send := func(method, path, body string, hdr map[string]string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest(method, h.APIURL()+path, strings.NewReader(body))
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	if resp, body := send("GET", "/api/tasks", "", nil); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("anonymous read before login: %d %s", resp.StatusCode, body)
	}
	if resp, body := send("POST", "/api/auth/login", `{"token":"hkr_wrong"}`, nil); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("login with a wrong token: %d %s", resp.StatusCode, body)
	}
	resp, body := send("POST", "/api/auth/login", `{"token":"`+admin+`"}`, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("login: %d %s", resp.StatusCode, body)
	}
	var lr api.LoginResponse
	json.Unmarshal([]byte(body), &lr)
	var session *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == auth.SessionCookie {
			session = c
		}
	}
	if session == nil || !session.HttpOnly || session.SameSite != http.SameSiteStrictMode || lr.CSRF == "" || lr.User != "root" {
		t.Fatalf("session cookie %+v, login answer %+v: want HttpOnly, SameSite=Strict and a CSRF value", session, lr)
	}
	if resp, body := send("GET", "/api/tasks", "", nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("read with the session cookie: %d %s", resp.StatusCode, body)
	}
	submit := `{"command":"true","container_name":"NULL"}`
	if resp, body := send("POST", "/api/submit", submit, nil); resp.StatusCode != http.StatusForbidden || !strings.Contains(body, auth.CSRFHeader) {
		t.Fatalf("cookie write without the CSRF header: %d %s", resp.StatusCode, body)
	}
	if resp, body := send("POST", "/api/submit", submit, map[string]string{auth.CSRFHeader: "0123456789abcdef0123456789abcdef"}); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("cookie write with a wrong CSRF header: %d %s", resp.StatusCode, body)
	}
	if n := h.machine.Len(); n != 0 {
		t.Fatalf("refused writes created %d tasks", n)
	}
	if resp, body := send("POST", "/api/submit", submit, map[string]string{auth.CSRFHeader: lr.CSRF}); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("cookie write with the CSRF header: %d %s", resp.StatusCode, body)
	}
	if resp, _ := send("POST", "/api/auth/logout", "", nil); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("logout: %d", resp.StatusCode)
	}
	if resp, body := send("GET", "/api/tasks", "", nil); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("read after logout: %d %s", resp.StatusCode, body)
	}
}
