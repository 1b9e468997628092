package runner_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
)

// TestReportsRefusedFiguresResent runs a real runner against a real host
// behind a proxy that refuses (400) every report carrying figures: the
// runner reports the task's end again without them, and the task ends
// (without figures) instead of being reported forever.
func TestReportsRefusedFiguresResent(t *testing.T) {
	shim := shimBinary(t)
	shared := t.TempDir()
	h := startTestHost(t, shared, nil)
	target, _ := url.Parse(h.APIURL())
	var refused atomic.Int64
	rp := httputil.NewSingleHostReverseProxy(target)
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/update" || r.URL.Path == "/api/updates" {
			body, _ := io.ReadAll(r.Body) //nolint:errcheck // an empty body is forwarded as is
			r.Body = io.NopCloser(bytes.NewReader(body))
			if bytes.Contains(body, []byte(`"usage"`)) {
				refused.Add(1)
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusBadRequest)
				io.WriteString(w, `{"error":"usage.cpu_user_ns: refused by the test"}`) //nolint:errcheck // test server
				return
			}
		}
		rp.ServeHTTP(w, r)
	}))
	defer proxy.Close()

	a, c, _ := startProxiedRunner(t, h, proxy.URL, shim, shared, "hakuriver-reportsusage-test")
	defer a.Close(context.Background()) //nolint:errcheck // test cleanup
	ctx := context.Background()
	deadline := time.Now().Add(30 * time.Second)
	null := "NULL"
	sr, err := c.Submit(ctx, api.SubmitRequest{Command: "true", ContainerName: &null})
	if err != nil {
		t.Fatal(err)
	}
	id := sr.TaskIDs[0]
	for time.Now().Before(deadline) {
		if tk, err := c.Status(ctx, id); err == nil && tk.Status == "completed" {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	tk, err := c.Status(ctx, id)
	if err != nil || tk.Status != "completed" || tk.Usage != nil {
		t.Fatalf("task %s: %+v %v, want completed without figures", id, tk, err)
	}
	if refused.Load() == 0 {
		t.Fatal("no report carried figures: the test proves nothing")
	}
}
