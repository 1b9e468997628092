package runner_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/runner"
	"github.com/hakuriver/hakuriver-ha/runner/executor/docker"
	"github.com/hakuriver/hakuriver-ha/runner/executor/native"
)

// BenchmarkRunTrue measures the runner's side of a native `true` task: a
// real runner (native executor, cgroups where writable, the hakuriver
// binary as the supervisor; HAKURIVER_BIN names a built one) talks to a
// stub host that acknowledges every report at once. One op is one /run,
// from the request until its answer (the task's process runs). It reports,
// at the 10th, 50th and 99th percentile:
//
//   - run-*: the /run round trip;
//   - end-*: from the task's end (the completed_at the runner reports)
//     until the stub host received the report of it.
//
// HAKURIVER_BENCH_DOCKER=1 gives the runner a Docker executor (the
// Docker engine must answer), as a deployed runner has. The /runs are
// benchPace apart (the wait is outside the timer), so the
// warm supervisors have booted.
func BenchmarkRunTrue(b *testing.B) {
	shim := shimBinary(b)
	stub := newStubHost()
	srv := httptest.NewServer(stub)
	defer srv.Close()
	state := b.TempDir()
	nc := native.DefaultConfig()
	nc.StateDir = filepath.Join(state, "tasks")
	nc.ShimCommand = []string{shim, "runner-shim"}
	if slim := filepath.Join(filepath.Dir(shim), native.SlimShimName); fileExists(slim) {
		nc.ShimCommand = []string{slim} // what a runner beside it uses
	}
	nc.CgroupParent = "hakuriver-bench-runtrue"
	ex, err := native.New(nc)
	if err != nil {
		b.Fatal(err)
	}
	defer ex.Close() //nolint:errcheck // never fails
	rc := runner.DefaultConfig()
	rc.Name, rc.BindAddr, rc.AdvertiseAddr, rc.Port, rc.GossipPort = "r1", "127.0.0.1", "127.0.0.1", 0, 0
	rc.Hosts, rc.Token, rc.SharedDir, rc.LocalTempDir = []string{srv.URL}, "secret-token", b.TempDir(), b.TempDir()
	rc.StateDir = state
	rc.HeartbeatInterval, rc.FastGossip, rc.Native, rc.NativeLimited = 500*time.Millisecond, true, ex, ex.Limited()
	if os.Getenv("HAKURIVER_BENCH_DOCKER") == "1" {
		// A runner as deployed: the Docker executor is listed too.
		dc := docker.DefaultConfig()
		dc.SharedDir, dc.RunnerName, dc.LocalTempDir = rc.SharedDir, "bench-runtrue", rc.LocalTempDir
		dc.StateDir = filepath.Join(state, "docker-tasks")
		if rc.Docker, err = docker.NewExecutor(dc); err != nil {
			b.Fatal(err)
		}
	}
	a, err := runner.Start(context.Background(), rc)
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close(context.Background()) //nolint:errcheck // bench cleanup
	var runs, ends []time.Duration
	id := int64(0)
	var last time.Time
	for b.Loop() {
		b.StopTimer()
		time.Sleep(time.Until(last.Add(benchPace)))
		b.StartTimer()
		id++
		t0 := time.Now()
		last = t0
		postRun(b, a.URL(), api.RunRequest{TaskID: id, Command: "true", ContainerName: "NULL", WorkDir: "/"})
		runs = append(runs, time.Since(t0))
		b.StopTimer()
		r := stub.awaitEnd(b, id)
		ends = append(ends, r.arrived.Sub(*r.u.CompletedAt))
		b.StartTimer()
	}
	report := func(d []time.Duration, name string) {
		slices.Sort(d)
		b.ReportMetric(float64(d[len(d)/10])/1e6, name+"-p10-ms")
		b.ReportMetric(float64(d[len(d)/2])/1e6, name+"-p50-ms")
		b.ReportMetric(float64(d[len(d)*99/100])/1e6, name+"-p99-ms")
	}
	report(runs, "run")
	report(ends, "end")
	if !ex.Limited() {
		b.Log("cgroups are not writable here: tasks ran without them")
	}
}

// benchPace is the least time between two /runs of BenchmarkRunTrue.
const benchPace = 150 * time.Millisecond

// postRun sends /run and fails unless it is answered 200.
func postRun(b *testing.B, base string, req api.RunRequest) {
	b.Helper()
	body, err := json.Marshal(req)
	if err != nil {
		b.Fatal(err)
	}
	hr, err := http.NewRequest(http.MethodPost, base+"/run", bytes.NewReader(body))
	if err != nil {
		b.Fatal(err)
	}
	hr.Header.Set(api.TokenHeader, "secret-token")
	resp, err := http.DefaultClient.Do(hr)
	if err != nil {
		b.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b.Fatalf("/run %d: %s", req.TaskID, resp.Status)
	}
}

// stubHost answers a runner's registration, heartbeats and reports, and
// passes on every final report with when it arrived.
type stubHost struct{ ends chan stubReport }

type stubReport struct {
	u       api.UpdateRequest
	arrived time.Time
}

func newStubHost() *stubHost { return &stubHost{ends: make(chan stubReport, 1024)} }

func (s *stubHost) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	switch {
	case r.URL.Path == "/api/updates":
		var req api.UpdatesRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var resp api.UpdatesResponse
		for _, u := range req.Updates {
			s.pass(u, now)
			resp.Results = append(resp.Results, api.UpdateResult{TaskID: u.TaskID, Status: http.StatusOK})
		}
		api.WriteJSON(w, http.StatusOK, resp)
	case r.URL.Path == "/api/update":
		var u api.UpdateRequest
		if err := json.NewDecoder(r.Body).Decode(&u); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		s.pass(u, now)
		api.WriteJSON(w, http.StatusOK, map[string]string{})
	case r.URL.Path == "/api/register", strings.HasPrefix(r.URL.Path, "/api/heartbeat/"):
		api.WriteJSON(w, http.StatusOK, map[string]string{})
	default:
		http.NotFound(w, r)
	}
}

func (s *stubHost) pass(u api.UpdateRequest, at time.Time) {
	if u.CompletedAt != nil {
		s.ends <- stubReport{u: u, arrived: at}
	}
}

// awaitEnd waits (bounded) for the final report of task id.
func (s *stubHost) awaitEnd(b *testing.B, id int64) stubReport {
	b.Helper()
	timeout := time.After(15 * time.Second)
	for {
		select {
		case r := <-s.ends:
			if r.u.TaskID == id {
				if r.u.Status != "completed" {
					b.Fatalf("task %d: %s %d %s", id, r.u.Status, deref(r.u.ExitCode), derefS(r.u.Message))
				}
				return r
			}
		case <-timeout:
			b.Fatalf("task %d: no final report within 15s", id)
		}
	}
}

func deref(p *int) int {
	if p == nil {
		return 0
	}
	return *p
}

func derefS(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}
