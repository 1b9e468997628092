package cluster

import (
	"net/http"
	"strings"
	"testing"
)

// TestDashboardServed checks that every replica serves the dashboard under
// /ui/ and redirects / there.
func TestDashboardServed(t *testing.T) {
	h := startCluster(t, 1)[0]
	resp, body := do(t, "GET", h.APIURL()+"/ui/", nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "HakuRiver HA") || !strings.Contains(string(body), "/api/cluster") {
		t.Fatalf("/ui/: %d %.200s", resp.StatusCode, body)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	r, err := client.Get(h.APIURL() + "/")
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != http.StatusFound || r.Header.Get("Location") != "/ui/" {
		t.Fatalf("/ redirect: %d %q", r.StatusCode, r.Header.Get("Location"))
	}
}
