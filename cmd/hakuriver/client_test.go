package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
)

// seenRequest is one request received by a fakeHost.
type seenRequest struct {
	Method string
	Path   string
	Query  string
	Body   []byte
	// Token is the cluster token header the request carried.
	Token string
}

// fakeHost is a test host replica: a mux of canned handlers that records
// every request.
type fakeHost struct {
	srv *httptest.Server
	mux *http.ServeMux
	mu  sync.Mutex
	got []seenRequest
}

func newFakeHost(tb testing.TB) *fakeHost {
	tb.Helper()
	f := &fakeHost{mux: http.NewServeMux()}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			tb.Errorf("read body: %v", err)
		}
		f.mu.Lock()
		f.got = append(f.got, seenRequest{r.Method, r.URL.Path, r.URL.RawQuery, b, r.Header.Get(api.TokenHeader)})
		f.mu.Unlock()
		r.Body = io.NopCloser(bytes.NewReader(b))
		w.Header().Set(api.LeaderHeader, "h1")
		f.mux.ServeHTTP(w, r)
	}))
	tb.Cleanup(f.srv.Close)
	return f
}

// handle answers pattern with status and v as JSON.
func (f *fakeHost) handle(pattern string, status int, v any) {
	f.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		reply(w, status, v)
	})
}

func (f *fakeHost) requests() []seenRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]seenRequest(nil), f.got...)
}

// last returns the last request whose path is path.
func (f *fakeHost) last(tb testing.TB, path string) seenRequest {
	tb.Helper()
	r := f.requests()
	for i := len(r) - 1; i >= 0; i-- {
		if r[i].Path == path {
			return r[i]
		}
	}
	tb.Fatalf("no request to %s among %d", path, len(r))
	return seenRequest{}
}

func reply(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	// An encoding failure shows up as a decode error in the test.
	_ = json.NewEncoder(w).Encode(v)
}

// testRoot builds the client part of the CLI, as main.go wires it.
func testRoot() *cobra.Command {
	root := &cobra.Command{Use: "hakuriver", SilenceUsage: true, SilenceErrors: true}
	g := addClientFlags(root)
	root.AddCommand(newTaskCmd(g), newNodeCmd(g), newClusterCmd(g), newQueueCmd(g))
	return root
}

// runCLI runs the CLI with args and returns stdout, stderr and the error.
func runCLI(tb testing.TB, args ...string) (string, string, error) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	root := testRoot()
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	return out.String(), errOut.String(), err
}

// mustJSON fails the test unless s is valid JSON, and decodes it into v.
func mustJSON(tb testing.TB, s string, v any) {
	tb.Helper()
	if !json.Valid([]byte(s)) {
		tb.Fatalf("output is not valid JSON:\n%s", s)
	}
	if err := json.Unmarshal([]byte(s), v); err != nil {
		tb.Fatalf("decode output: %v\n%s", err, s)
	}
}

func TestClientFlags_HostList(t *testing.T) {
	t.Setenv(hostEnv, "")
	g := &clientFlags{}
	if got := g.hostList(); !reflect.DeepEqual(got, []string{defaultHost}) {
		t.Fatalf("default = %q", got)
	}
	t.Setenv(hostEnv, "h1:8000,h2:8000")
	if got := g.hostList(); !reflect.DeepEqual(got, []string{"h1:8000,h2:8000"}) {
		t.Fatalf("env = %q", got)
	}
	g.hosts = []string{"h3:8000"}
	if got := g.hostList(); !reflect.DeepEqual(got, []string{"h3:8000"}) {
		t.Fatalf("flag = %q", got)
	}
}

func TestCLI_HostFromEnvAndFailover(t *testing.T) {
	f := newFakeHost(t)
	f.handle("GET /api/nodes", http.StatusOK, []api.NodeView{})
	t.Setenv(hostEnv, "127.0.0.1:1,"+f.srv.URL)
	out, _, err := runCLI(t, "node", "list")
	if err != nil {
		t.Fatalf("node list: %v", err)
	}
	if !strings.Contains(out, "No nodes registered.") {
		t.Fatalf("out = %q", out)
	}
}

func TestCLI_BadSharedFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"Output", []string{"-o", "yaml", "node", "list"}, "--output"},
		{"Timeout", []string{"--timeout", "0s", "node", "list"}, "--timeout"},
		{"Host", []string{"--host", "ftp://x", "node", "list"}, "--host"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := runCLI(t, tt.args...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one naming %s", err, tt.want)
			}
		})
	}
}

func TestCLI_APIErrorMessage(t *testing.T) {
	f := newFakeHost(t)
	f.handle("POST /api/kill/{id}", http.StatusConflict, api.ErrorResponse{Error: "task 5 is already completed"})
	_, _, err := runCLI(t, "--host", f.srv.URL, "task", "kill", "5")
	if err == nil || !strings.Contains(err.Error(), "task 5 is already completed") || !strings.Contains(err.Error(), "409") {
		t.Fatalf("err = %v", err)
	}
}
