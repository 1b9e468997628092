package runner_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster"
	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/runner"
	"github.com/hakuriver/hakuriver-ha/runner/executor"
	"github.com/hakuriver/hakuriver-ha/runner/executor/native"
)

// TestReportsFallBackWithoutBatchRoute runs a real runner against a real
// host behind a proxy that answers /api/updates with 404, as a host of an
// earlier version does: the runner, holding several reports at once, tries
// the batch route, then reports each task through /api/update, and every
// task completes.
func TestReportsFallBackWithoutBatchRoute(t *testing.T) {
	shim := shimBinary(t)
	shared := t.TempDir()
	h := startTestHost(t, shared, nil)
	target, _ := url.Parse(h.APIURL())
	var batches, singles atomic.Int64
	release := make(chan struct{})
	var once sync.Once
	rp := httputil.NewSingleHostReverseProxy(target)
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/updates":
			batches.Add(1)
			http.Error(w, `{"error":"not found"}`, http.StatusNotFound)
			return
		case "/api/update":
			// The first report waits until every task has ended, so
			// that the next round holds several reports.
			<-release
			singles.Add(1)
		}
		rp.ServeHTTP(w, r)
	}))
	defer proxy.Close()
	defer once.Do(func() { close(release) })

	a, c, tasksDir := startProxiedRunner(t, h, proxy.URL, shim, shared, "hakuriver-reports-test")
	defer a.Close(context.Background()) //nolint:errcheck // test cleanup
	ctx := context.Background()
	null := "NULL"
	deadline := time.Now().Add(30 * time.Second)
	var ids []string
	// Both fit a 2-core machine at once. Each runs long enough that its
	// first report is its start (held at most startReportDelay), never
	// already its end: with the first single report held back until both
	// ended, the next round then holds at least two reports, which go to
	// the batch route first.
	for range 2 {
		sr, err := c.Submit(ctx, api.SubmitRequest{Command: "sleep", Arguments: []string{"1"}, ContainerName: &null})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, sr.TaskIDs[0])
	}
	ended := func() bool {
		for _, id := range ids {
			if !fileExists(filepath.Join(tasksDir, id, "exit.json")) {
				return false
			}
		}
		return true
	}
	for !ended() && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	once.Do(func() { close(release) })
	for _, id := range ids {
		for time.Now().Before(deadline) {
			if tk, err := c.Status(ctx, id); err == nil && tk.Status == "completed" {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if tk, err := c.Status(ctx, id); err != nil || tk.Status != "completed" {
			t.Fatalf("task %s: %+v %v, want completed", id, tk, err)
		}
	}
	if batches.Load() == 0 || singles.Load() < int64(len(ids)) {
		t.Errorf("%d batch and %d single reports: want the batch route tried, then one report per task", batches.Load(), singles.Load())
	}
}

// startProxiedRunner starts a runner with a native executor (its tasks
// under cgroupParent; passed through wrap, when given, before the runner
// gets it) that reaches host h through hostURL (a test proxy in front of
// it, or h's own URL), and a client of h, once the runner registered (or
// 30 s passed); it returns them and the executor's task state directory.
// The caller closes the runner.
func startProxiedRunner(t *testing.T, h *cluster.Host, hostURL, shim, shared, cgroupParent string, wrap ...func(*native.Executor) executor.Executor) (*runner.Agent, *api.Client, string) {
	t.Helper()
	state, tmp := t.TempDir(), t.TempDir()
	nc := native.DefaultConfig()
	nc.StateDir = filepath.Join(state, "tasks")
	nc.ShimCommand = []string{shim, "runner-shim"}
	nc.CgroupParent = cgroupParent
	ex, err := native.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	rc := runner.DefaultConfig()
	rc.Name, rc.BindAddr, rc.AdvertiseAddr, rc.Port, rc.GossipPort = "r1", "127.0.0.1", "127.0.0.1", 0, 0
	rc.Hosts, rc.Token, rc.SharedDir, rc.LocalTempDir = []string{hostURL}, "secret-token", shared, tmp
	rc.StateDir = state
	rc.HeartbeatInterval, rc.FastGossip, rc.Native, rc.NativeLimited = 500*time.Millisecond, true, ex, ex.Limited()
	for _, w := range wrap {
		rc.Native = w(ex)
	}
	rc.Logger = logger(t)
	a, err := runner.Start(context.Background(), rc)
	if err != nil {
		t.Fatal(err)
	}
	cc := api.DefaultClientConfig()
	cc.Hosts = []string{h.APIURL()}
	c, err := api.NewClient(cc)
	if err != nil {
		a.Close(context.Background()) //nolint:errcheck // test cleanup
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); !a.Registered() && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	return a, c, nc.StateDir
}
