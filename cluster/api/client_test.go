package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/fsm"
)

// recorded is one request seen by a test server.
type recorded struct {
	Method string
	Path   string
	Query  string
	Body   string
	Header http.Header
}

// recorder is a test replica that records requests and answers with fn.
type recorder struct {
	srv *httptest.Server
	mu  sync.Mutex
	got []recorded
}

func (r *recorder) requests() []recorded {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]recorded(nil), r.got...)
}

func newRecorder(tb testing.TB, fn http.HandlerFunc) *recorder {
	tb.Helper()
	r := &recorder{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, err := io.ReadAll(req.Body)
		if err != nil {
			tb.Errorf("read body: %v", err)
		}
		r.mu.Lock()
		r.got = append(r.got, recorded{req.Method, req.URL.Path, req.URL.RawQuery, string(b), req.Header.Clone()})
		r.mu.Unlock()
		fn(w, req)
	}))
	tb.Cleanup(r.srv.Close)
	return r
}

// deadHost returns the address of a closed listener: connections are refused.
func deadHost(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("listen: %v", err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		tb.Fatalf("close listener: %v", err)
	}
	return addr
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set(api.LeaderHeader, "h1")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // the test client reports a broken body itself
}

func newClient(tb testing.TB, mutate func(*api.ClientConfig), hosts ...string) *api.Client {
	tb.Helper()
	cfg := api.DefaultClientConfig()
	cfg.Hosts = hosts
	cfg.Timeout = 5 * time.Second
	cfg.MaxRetryWait = 50 * time.Millisecond
	if mutate != nil {
		mutate(&cfg)
	}
	c, err := api.NewClient(cfg)
	if err != nil {
		tb.Fatalf("NewClient: %v", err)
	}
	tb.Cleanup(c.Close)
	return c
}

func ctxT(tb testing.TB) context.Context {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	tb.Cleanup(cancel)
	return ctx
}

func TestParseHosts(t *testing.T) {
	tests := []struct {
		name string
		in   []string
		want []string
		err  bool
	}{
		{"Bare", []string{"127.0.0.1:8000"}, []string{"http://127.0.0.1:8000"}, false},
		{"Scheme", []string{"https://h1:8000/"}, []string{"https://h1:8000"}, false},
		{"CommaList", []string{" h1:1 , h2:2,,h1:1", "http://h3:3"}, []string{"http://h1:1", "http://h2:2", "http://h3:3"}, false},
		{"Empty", []string{" , "}, nil, true},
		{"BadScheme", []string{"ftp://h1"}, nil, true},
		{"Query", []string{"http://h1:1/?x=1"}, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := api.ParseHosts(tt.in...)
			if (err != nil) != tt.err {
				t.Fatalf("err = %v, want error %v", err, tt.err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestClient_FailoverFromDeadHost(t *testing.T) {
	live := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, []api.NodeView{{Node: fsm.Node{Hostname: "n1", TotalCores: 8}}})
	})
	c := newClient(t, nil, deadHost(t), live.srv.URL)
	nodes, err := c.Nodes(ctxT(t))
	if err != nil {
		t.Fatalf("Nodes: %v", err)
	}
	if len(nodes) != 1 || nodes[0].Hostname != "n1" || nodes[0].TotalCores != 8 {
		t.Fatalf("nodes = %+v", nodes)
	}
	// The client sticks with the replica that answered.
	if _, err := c.Nodes(ctxT(t)); err != nil {
		t.Fatalf("second Nodes: %v", err)
	}
	if n := len(live.requests()); n != 2 {
		t.Fatalf("live replica saw %d requests, want 2", n)
	}
}

func TestClient_AllDead(t *testing.T) {
	c := newClient(t, nil, deadHost(t), deadHost(t))
	_, err := c.Nodes(ctxT(t))
	if !errors.Is(err, api.ErrNoReplica) {
		t.Fatalf("err = %v, want ErrNoReplica", err)
	}
}

func TestClient_TimeoutMovesOn(t *testing.T) {
	stuck := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	})
	live := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, api.ClusterStatus{LeaderID: "h2"})
	})
	c := newClient(t, func(cfg *api.ClientConfig) { cfg.Timeout = 200 * time.Millisecond }, stuck.srv.URL, live.srv.URL)
	st, err := c.Cluster(ctxT(t), true)
	if err != nil {
		t.Fatalf("Cluster: %v", err)
	}
	if st.LeaderID != "h2" {
		t.Fatalf("leader = %q", st.LeaderID)
	}
	if q := live.requests()[0].Query; q != "consistent=1" {
		t.Fatalf("query = %q", q)
	}
}

func TestClient_503MovesToNextHost(t *testing.T) {
	noLeader := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "5")
		writeJSON(w, http.StatusServiceUnavailable, api.ErrorResponse{Error: "no leader"})
	})
	live := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusAccepted, api.MessageResponse{Message: "Kill requested for task 7."})
	})
	c := newClient(t, nil, noLeader.srv.URL, live.srv.URL)
	msg, err := c.Kill(ctxT(t), "7")
	if err != nil {
		t.Fatalf("Kill: %v", err)
	}
	if msg.Message != "Kill requested for task 7." {
		t.Fatalf("message = %q", msg.Message)
	}
	if n := len(noLeader.requests()); n != 1 {
		t.Fatalf("the 503 replica was asked %d times: the next replica should be tried at once, without a retry round", n)
	}
	r := live.requests()
	if len(r) != 1 || r[0].Method != http.MethodPost || r[0].Path != "/api/kill/7" {
		t.Fatalf("live requests = %+v", r)
	}
}

func TestClient_503WaitsThenRetries(t *testing.T) {
	var mu sync.Mutex
	calls := 0
	srv := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		calls++
		n := calls
		mu.Unlock()
		if n < 3 {
			w.Header().Set("Retry-After", "1")
			writeJSON(w, http.StatusServiceUnavailable, api.ErrorResponse{Error: "no leader"})
			return
		}
		writeJSON(w, http.StatusOK, api.ClusterStatus{LeaderID: "h1", Term: 3})
	})
	c := newClient(t, nil, srv.srv.URL)
	st, err := c.Cluster(ctxT(t), false)
	if err != nil {
		t.Fatalf("Cluster: %v", err)
	}
	if st.Term != 3 || len(srv.requests()) != 3 {
		t.Fatalf("term %d after %d requests", st.Term, len(srv.requests()))
	}
}

func TestClient_503BoundedByContext(t *testing.T) {
	srv := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "1")
		writeJSON(w, http.StatusServiceUnavailable, api.ErrorResponse{Error: "no leader"})
	})
	c := newClient(t, func(cfg *api.ClientConfig) { cfg.RetryBudget = time.Minute }, srv.srv.URL)
	ctx, cancel := context.WithTimeout(context.Background(), 2500*time.Millisecond)
	defer cancel()
	_, err := c.Nodes(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want deadline exceeded", err)
	}
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("err = %v, want the last 503 too", err)
	}
}

func TestClient_503BudgetExhausted(t *testing.T) {
	srv := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusServiceUnavailable, api.ErrorResponse{Error: "no leader elected"})
	})
	c := newClient(t, func(cfg *api.ClientConfig) { cfg.RetryBudget = 120 * time.Millisecond }, srv.srv.URL)
	_, err := c.Nodes(ctxT(t))
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 503 || apiErr.Message != "no leader elected" {
		t.Fatalf("err = %v, want APIError 503", err)
	}
}

// APIError is the typed error, aliased for brevity.
type APIError = api.APIError

func TestClient_4xxIsAPIError(t *testing.T) {
	tests := []struct {
		name   string
		status int
		body   string
		want   string
	}{
		{"Error", 400, `{"error":"targets[0]: unknown node \"x\""}`, `targets[0]: unknown node "x"`},
		{"Detail", 404, `{"detail":"Task id not found"}`, "Task id not found"},
		{"Text", 500, "Internal Server Error", "Internal Server Error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tt.status)
				_, _ = io.WriteString(w, tt.body) // the client reports a short body itself
			})
			other := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
				t.Errorf("a final answer must not be retried on another replica")
			})
			c := newClient(t, nil, srv.srv.URL, other.srv.URL)
			_, err := c.Status(ctxT(t), "12")
			var apiErr *APIError
			if !errors.As(err, &apiErr) {
				t.Fatalf("err = %T %v, want *APIError", err, err)
			}
			if apiErr.StatusCode != tt.status || apiErr.Message != tt.want || apiErr.Host != srv.srv.URL {
				t.Fatalf("got %+v", apiErr)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error text %q lacks the message", err)
			}
		})
	}
}

func TestClient_SubmitRequestIDStableAcrossRetry(t *testing.T) {
	var mu sync.Mutex
	var ids []string
	record := func(r *http.Request) {
		var req api.SubmitRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			t.Errorf("decode: %v", err)
		}
		mu.Lock()
		ids = append(ids, req.RequestID)
		mu.Unlock()
	}
	noLeader := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		record(r)
		writeJSON(w, http.StatusServiceUnavailable, api.ErrorResponse{Error: "no leader"})
	}))
	t.Cleanup(noLeader.Close)
	live := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		record(r)
		writeJSON(w, http.StatusAccepted, api.SubmitResponse{Message: "ok", TaskIDs: []string{"101"}})
	}))
	t.Cleanup(live.Close)
	c := newClient(t, nil, deadHost(t), noLeader.URL, live.URL)

	resp, err := c.Submit(ctxT(t), api.SubmitRequest{Command: "echo", Arguments: []string{"hi"}})
	if err != nil {
		t.Fatalf("Submit: %v", err)
	}
	if !reflect.DeepEqual(resp.TaskIDs, []string{"101"}) {
		t.Fatalf("task ids = %v", resp.TaskIDs)
	}
	if len(ids) != 2 || ids[0] == "" || ids[0] != ids[1] {
		t.Fatalf("request ids = %q, want the same non-empty one twice", ids)
	}

	// A second submit gets a fresh ID; an explicit one is kept.
	if _, err := c.Submit(ctxT(t), api.SubmitRequest{Command: "true"}); err != nil {
		t.Fatalf("Submit: %v", err)
	}
	if _, err := c.Submit(ctxT(t), api.SubmitRequest{Command: "true", RequestID: "mine"}); err != nil {
		t.Fatalf("Submit: %v", err)
	}
	if ids[2] == ids[0] || ids[3] != "mine" {
		t.Fatalf("request ids = %q", ids)
	}
}

func TestClient_TasksPage(t *testing.T) {
	srv := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(api.MoreHeader, "true")
		w.Header().Set(api.NextAfterHeader, "41")
		writeJSON(w, http.StatusOK, []fsm.Task{{TaskID: 43, Status: fsm.StatusRunning}, {TaskID: 42, Status: fsm.StatusPending}})
	})
	c := newClient(t, func(cfg *api.ClientConfig) { cfg.Token = "s3cret" }, srv.srv.URL)
	tasks, page, err := c.Tasks(ctxT(t), api.TaskQuery{Status: "running", Node: "n1", Limit: 2, After: "44"})
	if err != nil {
		t.Fatalf("Tasks: %v", err)
	}
	if len(tasks) != 2 || tasks[0].TaskID != 43 {
		t.Fatalf("tasks = %+v", tasks)
	}
	if page != (api.Page{More: true, NextAfter: "41"}) {
		t.Fatalf("page = %+v", page)
	}
	r := srv.requests()[0]
	if r.Path != "/api/tasks" || r.Query != "after=44&limit=2&node=n1&status=running" {
		t.Fatalf("request = %s?%s", r.Path, r.Query)
	}
	if r.Header.Get(api.TokenHeader) != "s3cret" {
		t.Fatalf("token header missing")
	}
}

func TestClient_ClusterWrites(t *testing.T) {
	srv := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, api.MessageResponse{Message: "done"})
	})
	c := newClient(t, nil, srv.srv.URL)
	ctx := ctxT(t)
	if _, err := c.Join(ctx, api.JoinRequest{ID: "h4", Raft: "10.0.0.4:8300"}); err != nil {
		t.Fatalf("Join: %v", err)
	}
	if _, err := c.RemovePeer(ctx, "h4"); err != nil {
		t.Fatalf("RemovePeer: %v", err)
	}
	if _, err := c.TransferLeadership(ctx, ""); err != nil {
		t.Fatalf("TransferLeadership: %v", err)
	}
	if _, err := c.RemovePeer(ctx, " "); err == nil {
		t.Fatalf("RemovePeer with a blank ID must fail")
	}
	got := srv.requests()
	want := []struct{ method, path, body string }{
		{"POST", "/api/cluster/join", `{"id":"h4","raft":"10.0.0.4:8300"}`},
		{"DELETE", "/api/cluster/peers/h4", ""},
		{"POST", "/api/cluster/leadership-transfer", `{}`},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d requests, want %d", len(got), len(want))
	}
	for i, w := range want {
		if got[i].Method != w.method || got[i].Path != w.path || got[i].Body != w.body {
			t.Errorf("request %d = %s %s %s, want %s %s %s", i, got[i].Method, got[i].Path, got[i].Body, w.method, w.path, w.body)
		}
	}
}

func TestClient_DoDecodeError(t *testing.T) {
	srv := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "not json") // the client must report the bad body
	})
	c := newClient(t, nil, srv.srv.URL)
	var out map[string]any
	if _, err := c.Do(ctxT(t), http.MethodGet, "api/health", nil, &out); err == nil {
		t.Fatalf("want a decode error")
	}
	if p := srv.requests()[0].Path; p != "/api/health" {
		t.Fatalf("path = %q", p)
	}
}

func TestClient_Health(t *testing.T) {
	srv := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("hostname") == "ghost" {
			writeJSON(w, http.StatusNotFound, api.ErrorResponse{Error: `node "ghost" not registered`})
			return
		}
		cpu := 12.5
		writeJSON(w, http.StatusOK, api.HealthResponse{
			Nodes:     [][]api.NodeHealth{{{Hostname: "n1", Status: "online", CPUPercent: &cpu}}},
			Aggregate: []api.HealthAggregate{{TotalNodes: 1, OnlineNodes: 1}},
		})
	})
	c := newClient(t, nil, srv.srv.URL)
	h, err := c.Health(ctxT(t), "")
	if err != nil {
		t.Fatalf("Health: %v", err)
	}
	if len(h.Nodes) != 1 || h.Nodes[0][0].Hostname != "n1" || *h.Nodes[0][0].CPUPercent != 12.5 || h.Aggregate[0].OnlineNodes != 1 {
		t.Fatalf("health = %+v", h)
	}
	if _, err := c.Health(ctxT(t), "n 1"); err != nil {
		t.Fatalf("Health(n 1): %v", err)
	}
	_, err = c.Health(ctxT(t), "ghost")
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusNotFound || !strings.Contains(err.Error(), "not registered") {
		t.Fatalf("err = %v, want APIError 404", err)
	}
	got := srv.requests()
	for i, want := range []string{"", "hostname=n+1", "hostname=ghost"} {
		if got[i].Method != http.MethodGet || got[i].Path != "/api/health" || got[i].Query != want {
			t.Errorf("request %d = %s %s?%s, want query %q", i, got[i].Method, got[i].Path, got[i].Query, want)
		}
	}
}

func TestClient_Logs(t *testing.T) {
	const content = "hello\nworld\n"
	srv := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/api/task/404/") {
			w.Header().Set(api.LogOffsetHeader, "0")
			writeJSON(w, http.StatusNotFound, api.ErrorResponse{Error: "stdout file of task 404 not found (might not be generated yet)"})
			return
		}
		var off int
		if v := r.URL.Query().Get("offset"); v != "" {
			if _, err := fmt.Sscan(v, &off); err != nil {
				t.Errorf("offset %q: %v", v, err)
			}
		}
		off = min(off, len(content))
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set(api.LogOffsetHeader, fmt.Sprint(len(content)))
		w.Header().Set(api.TaskStatusHeader, "running")
		_, _ = io.WriteString(w, content[off:]) // a short write shows as a wrong body
	})
	// A dead replica first: the raw variant fails over as Do does.
	c := newClient(t, nil, deadHost(t), srv.srv.URL)
	data, next, status, err := c.Logs(ctxT(t), "7", api.StreamStdout, 0)
	if err != nil {
		t.Fatalf("Logs: %v", err)
	}
	if string(data) != content || next != int64(len(content)) || status != "running" {
		t.Fatalf("Logs = %q, %d, %q", data, next, status)
	}
	data, next, _, err = c.Logs(ctxT(t), "7", api.StreamStderr, 6)
	if err != nil || string(data) != "world\n" || next != 12 {
		t.Fatalf("Logs(offset 6) = %q, %d, %v", data, next, err)
	}
	data, next, _, err = c.Logs(ctxT(t), "404", api.StreamStdout, 3)
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusNotFound || !strings.Contains(err.Error(), "might not be generated yet") {
		t.Fatalf("err = %v, want APIError 404", err)
	}
	if data != nil || next != 3 {
		t.Fatalf("on error: data %q, next %d; want nil, the offset asked", data, next)
	}
	for _, bad := range []struct {
		id, stream string
		off        int64
	}{{" ", "stdout", 0}, {"7", "stdin", 0}, {"7", "stdout", -1}} {
		if _, _, _, err := c.Logs(ctxT(t), bad.id, bad.stream, bad.off); err == nil {
			t.Errorf("Logs(%q, %q, %d) must fail", bad.id, bad.stream, bad.off)
		}
	}
	got := srv.requests()
	if len(got) != 3 {
		t.Fatalf("got %d requests, want 3 (bad arguments send none)", len(got))
	}
	want := []struct{ path, query string }{{"/api/task/7/stdout", ""}, {"/api/task/7/stderr", "offset=6"}, {"/api/task/404/stdout", "offset=3"}}
	for i, w := range want {
		if got[i].Method != http.MethodGet || got[i].Path != w.path || got[i].Query != w.query {
			t.Errorf("request %d = %s %s?%s, want GET %s?%s", i, got[i].Method, got[i].Path, got[i].Query, w.path, w.query)
		}
	}
	if a := got[0].Header.Get("Accept"); !strings.Contains(a, "text/plain") {
		t.Errorf("Accept = %q, want text/plain in it", a)
	}
}

func TestClient_LogsOffsetFallback(t *testing.T) {
	// Without the offset header the next offset counts the bytes read.
	srv := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "abc") // a short write shows as a wrong body
	})
	c := newClient(t, nil, srv.srv.URL)
	data, next, status, err := c.Logs(ctxT(t), "1", api.StreamStdout, 10)
	if err != nil || string(data) != "abc" || next != 13 || status != "" {
		t.Fatalf("Logs = %q, %d, %q, %v", data, next, status, err)
	}

	bad := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(api.LogOffsetHeader, "x")
		_, _ = io.WriteString(w, "abc") // a short write shows as a wrong body
	})
	c = newClient(t, nil, bad.srv.URL)
	if _, _, _, err := c.Logs(ctxT(t), "1", api.StreamStdout, 0); err == nil || !strings.Contains(err.Error(), api.LogOffsetHeader) {
		t.Fatalf("err = %v, want one naming the bad header", err)
	}
}

func TestClient_PauseResume(t *testing.T) {
	srv := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/command/9/resume" {
			writeJSON(w, http.StatusConflict, api.ErrorResponse{Error: "cannot resume task 9 in state running"})
			return
		}
		writeJSON(w, http.StatusOK, api.MessageResponse{Message: "Pause for task 8 sent to runner: pause command sent successfully."})
	})
	c := newClient(t, nil, srv.srv.URL)
	m, err := c.Pause(ctxT(t), "8")
	if err != nil || !strings.Contains(m.Message, "Pause for task 8") {
		t.Fatalf("Pause = %+v, %v", m, err)
	}
	if _, err := c.Resume(ctxT(t), "8"); err != nil {
		t.Fatalf("Resume: %v", err)
	}
	_, err = c.Resume(ctxT(t), "9")
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusConflict || !strings.Contains(err.Error(), "resume task 9") {
		t.Fatalf("err = %v, want APIError 409", err)
	}
	if _, err := c.Pause(ctxT(t), ""); err == nil {
		t.Fatalf("Pause with an empty ID must fail")
	}
	got := srv.requests()
	want := []string{"/api/command/8/pause", "/api/command/8/resume", "/api/command/9/resume"}
	if len(got) != len(want) {
		t.Fatalf("got %d requests, want %d", len(got), len(want))
	}
	for i, p := range want {
		if got[i].Method != http.MethodPost || got[i].Path != p || got[i].Body != "" {
			t.Errorf("request %d = %s %s %q, want POST %s without a body", i, got[i].Method, got[i].Path, got[i].Body, p)
		}
	}
	if _, err := c.DrainWithReason(ctxT(t), "n1", "new disk"); err != nil {
		t.Fatalf("DrainWithReason: %v", err)
	}
	if got := srv.requests(); got[len(got)-1].Path != "/api/nodes/n1/drain" || got[len(got)-1].Body != `{"reason":"new disk"}` {
		t.Fatalf("DrainWithReason sent %s %q", got[len(got)-1].Path, got[len(got)-1].Body)
	}
}

func TestClient_DoRawErrorKeepsHeaders(t *testing.T) {
	srv := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(api.LogOffsetHeader, "0")
		writeJSON(w, http.StatusNotFound, api.ErrorResponse{Error: "nope"})
	})
	c := newClient(t, nil, srv.srv.URL)
	data, h, err := c.DoRaw(ctxT(t), http.MethodGet, "api/task/1/stdout", nil)
	if apiStatusOf(err) != http.StatusNotFound || data != nil || h.Get(api.LogOffsetHeader) != "0" {
		t.Fatalf("DoRaw = %q, %v, %v", data, h, err)
	}
}

func apiStatusOf(err error) int {
	var e *APIError
	if errors.As(err, &e) {
		return e.StatusCode
	}
	return 0
}

func TestClient_Queue(t *testing.T) {
	entries := []api.QueueEntry{
		{TaskID: "12", Priority: 5, Command: "python", Reason: "no node has 4 cores free", SubmittedAt: "2026-01-02T03:04:05Z"},
		{TaskID: "11", Command: "echo", TargetNode: "n1", Reason: "waiting for 10", SubmittedAt: "2026-01-02T03:04:04Z"},
	}
	srv := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, entries)
	})
	c := newClient(t, nil, srv.srv.URL)
	got, err := c.Queue(ctxT(t))
	if err != nil {
		t.Fatalf("Queue: %v", err)
	}
	if !reflect.DeepEqual(got, entries) {
		t.Fatalf("Queue = %+v, want %+v", got, entries)
	}
	if r := srv.requests()[0]; r.Method != http.MethodGet || r.Path != "/api/queue" || r.Query != "" || r.Body != "" {
		t.Fatalf("request = %s %s?%s %q", r.Method, r.Path, r.Query, r.Body)
	}
}

func TestClient_DrainUndrain(t *testing.T) {
	srv := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/api/nodes/ghost/") {
			writeJSON(w, http.StatusNotFound, api.ErrorResponse{Error: `node "ghost" not registered`})
			return
		}
		writeJSON(w, http.StatusOK, api.MessageResponse{Message: "Node n1 drained: no new placements."})
	})
	c := newClient(t, nil, srv.srv.URL)
	m, err := c.Drain(ctxT(t), "n1")
	if err != nil || m.Message != "Node n1 drained: no new placements." {
		t.Fatalf("Drain = %+v, %v", m, err)
	}
	if _, err := c.Undrain(ctxT(t), "n 1"); err != nil {
		t.Fatalf("Undrain: %v", err)
	}
	_, err = c.Drain(ctxT(t), "ghost")
	if apiStatusOf(err) != http.StatusNotFound || !strings.Contains(err.Error(), "drain node ghost") || !strings.Contains(err.Error(), "not registered") {
		t.Fatalf("err = %v, want APIError 404 naming the node", err)
	}
	if _, err := c.Undrain(ctxT(t), " "); err == nil {
		t.Fatalf("Undrain with a blank name must fail")
	}
	got := srv.requests()
	want := []string{"/api/nodes/n1/drain", "/api/nodes/n 1/undrain", "/api/nodes/ghost/drain"}
	if len(got) != len(want) {
		t.Fatalf("got %d requests, want %d", len(got), len(want))
	}
	for i, p := range want {
		if got[i].Method != http.MethodPost || got[i].Path != p || got[i].Body != "" {
			t.Errorf("request %d = %s %s %q, want POST %s without a body", i, got[i].Method, got[i].Path, got[i].Body, p)
		}
	}
}
