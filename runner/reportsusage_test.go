package runner_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/runner"
	"github.com/hakuriver/hakuriver-ha/runner/executor/native"
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

	state, tmp := t.TempDir(), t.TempDir()
	nc := native.DefaultConfig()
	nc.StateDir = filepath.Join(state, "tasks")
	nc.ShimCommand = []string{shim, "runner-shim"}
	nc.CgroupParent = "hakuriver-reportsusage-test"
	ex, err := native.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	rc := runner.DefaultConfig()
	rc.Name, rc.BindAddr, rc.AdvertiseAddr, rc.Port, rc.GossipPort = "r1", "127.0.0.1", "127.0.0.1", 0, 0
	rc.Hosts, rc.Token, rc.SharedDir, rc.LocalTempDir = []string{proxy.URL}, "secret-token", shared, tmp
	rc.StateDir = state
	rc.HeartbeatInterval, rc.FastGossip, rc.Native, rc.NativeLimited = 500*time.Millisecond, true, ex, ex.Limited()
	rc.Logger = logger(t)
	a, err := runner.Start(context.Background(), rc)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close(context.Background()) //nolint:errcheck // test cleanup

	ctx := context.Background()
	cc := api.DefaultClientConfig()
	cc.Hosts = []string{h.APIURL()}
	c, err := api.NewClient(cc)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for !a.Registered() && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
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
