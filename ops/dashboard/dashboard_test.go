package dashboard

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

// TestHandlerServesTheApplication checks the single-page fallback (every
// path without a dot is index.html, never cached), the content-hashed
// references of index.html (every embedded script and style, the pages
// included), their long cache lifetime, and that no directory is listed.
func TestHandlerServesTheApplication(t *testing.T) {
	srv := httptest.NewServer(http.StripPrefix("/ui", Handler()))
	defer srv.Close()
	get := func(path string) (*http.Response, string) {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	var index string
	for _, p := range []string{"/ui/", "/ui/task/123", "/ui/node/dev-runner-1", "/ui/nodes", "/ui/vendor/", "/ui/vendor/licenses", "/ui/index.html"} {
		resp, body := get(p)
		if resp.StatusCode != http.StatusOK || !strings.Contains(body, `<div id="app">`) {
			t.Fatalf("%s: %d %.100s", p, resp.StatusCode, body)
		}
		if cc := resp.Header.Get("Cache-Control"); cc != "no-cache" {
			t.Fatalf("%s: Cache-Control %q, want no-cache", p, cc)
		}
		index = body
	}
	refs := regexp.MustCompile(`(?:src|href)="(/ui/[^"]+)"`).FindAllStringSubmatch(index, -1)
	want := []string{"vendor/vue.min.js", "vendor/bootstrap.min.css", "vendor/chart.min.js", "vendor/xterm.js", "lib.js", "app.js", "feedworker.js", "pages/overview.js", "pages/nodes.js", "pages/queue.js", "pages/doctor.js", "pages/audit.js"}
	for _, w := range want {
		found := false
		for _, r := range refs {
			if strings.HasPrefix(r[1], "/ui/"+w+"?v=") {
				found = true
				resp, body := get(r[1])
				if resp.StatusCode != http.StatusOK || len(body) == 0 {
					t.Fatalf("%s: %d", r[1], resp.StatusCode)
				}
				if cc := resp.Header.Get("Cache-Control"); !strings.Contains(cc, "max-age=31536000") {
					t.Fatalf("%s: Cache-Control %q", r[1], cc)
				}
			}
		}
		if !found {
			t.Errorf("index.html does not load %s with a content hash: %v", w, refs)
		}
	}
	if strings.Contains(index, "<!--pages-->") {
		t.Error("the pages marker was not replaced")
	}
	if resp, _ := get("/ui/nothing.js"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("missing file: %d, want 404", resp.StatusCode)
	}
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/ui/", nil)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /ui/: %v %v", resp, err)
	}
}
