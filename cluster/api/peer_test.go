package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/fsm"
)

// peerServer serves handler on a loopback httptest server for one test.
func peerServer(t *testing.T, handler http.HandlerFunc) string {
	t.Helper()
	srv := httptest.NewServer(handler)
	t.Cleanup(srv.Close)
	return srv.URL
}

func peerCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestRunnerClientSendsTokenAndBody(t *testing.T) {
	type seen struct {
		path, token, ctype string
		ref                TaskRef
	}
	got := make(chan seen, 8)
	base := peerServer(t, func(w http.ResponseWriter, r *http.Request) {
		s := seen{path: r.URL.Path, token: r.Header.Get(TokenHeader), ctype: r.Header.Get("Content-Type")}
		if err := json.NewDecoder(r.Body).Decode(&s.ref); err != nil {
			t.Errorf("decode %s body: %v", r.URL.Path, err)
		}
		got <- s
		WriteJSON(w, http.StatusOK, MessageResponse{Message: "ok"})
	})
	rc := NewRunnerClient(PeerConfig{Token: "s3cret"})
	ctx := peerCtx(t)
	calls := []struct {
		path string
		call func() error
		want int64
	}{
		{"/run", func() error { return rc.Run(ctx, base+"/", RunRequest{TaskID: 7}) }, 7},
		{"/kill", func() error { return rc.Kill(ctx, base, TaskRef{TaskID: 8, UnitName: "u"}) }, 8},
		{"/pause", func() error { return rc.Pause(ctx, base, 9) }, 9},
		{"/resume", func() error { return rc.Resume(ctx, base, 10) }, 10},
	}
	for _, c := range calls {
		t.Run(c.path, func(t *testing.T) {
			if err := c.call(); err != nil {
				t.Fatalf("call: %v", err)
			}
			s := <-got
			if s.path != c.path || s.token != "s3cret" || s.ctype != "application/json" || s.ref.TaskID != c.want {
				t.Fatalf("runner saw %+v, want path %s, the token and task %d", s, c.path, c.want)
			}
		})
	}
}

func TestPeerClientsRefuseOversizedAnswer(t *testing.T) {
	big := `[{"name":"` + strings.Repeat("x", 4096) + `"}]`
	base := peerServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(big)) //nolint:errcheck // the test checks what the client read
	})
	ctx := peerCtx(t)
	rc := NewRunnerClient(PeerConfig{MaxAnswerBytes: 1024})
	if err := rc.Run(ctx, base, RunRequest{TaskID: 1}); !errors.Is(err, ErrAnswerTooLarge) {
		t.Fatalf("runner answer over the limit: err = %v, want ErrAnswerTooLarge", err)
	}
	pc := NewReplicaClient(PeerConfig{MaxAnswerBytes: 1024})
	if list, err := pc.Environments(ctx, base); !errors.Is(err, ErrAnswerTooLarge) || list != nil {
		t.Fatalf("replica answer over the limit: %v, %v; want ErrAnswerTooLarge", list, err)
	}
	// At the limit it is read whole.
	pc = NewReplicaClient(PeerConfig{MaxAnswerBytes: int64(len(big))})
	if list, err := pc.Environments(ctx, base); err != nil || len(list) != 1 || len(list[0].Name) != 4096 {
		t.Fatalf("replica answer at the limit: %d entries, %v", len(list), err)
	}
}

func TestPeerClientsDecodeErrors(t *testing.T) {
	cases := []struct {
		name   string
		status int
		body   string
		want   string
	}{
		{"ErrorField", http.StatusConflict, `{"error":"task 5 already finished","detail":"task 5 already finished"}`, "task 5 already finished"},
		{"OriginalDetail", http.StatusBadRequest, `{"detail":"bad container name"}`, "bad container name"},
		{"PlainText", http.StatusBadGateway, "upstream down\n", "upstream down"},
		{"OversizedErrorBody", http.StatusServiceUnavailable, `{"error":"busy"}` + strings.Repeat(" ", 4096), "busy"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			base := peerServer(t, func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(c.status)
				w.Write([]byte(c.body)) //nolint:errcheck // the test checks what the client read
			})
			ctx := peerCtx(t)
			check := func(who string, err error) {
				t.Helper()
				var ae *APIError
				if !errors.As(err, &ae) {
					t.Fatalf("%s: err = %v (%T), want *APIError", who, err, err)
				}
				if ae.StatusCode != c.status || ae.Message != c.want || ae.Host != base {
					t.Fatalf("%s: APIError = %+v, want status %d message %q host %s", who, ae, c.status, c.want, base)
				}
			}
			check("runner", NewRunnerClient(PeerConfig{MaxAnswerBytes: 1024}).Kill(ctx, base, TaskRef{TaskID: 5}))
			_, err := NewReplicaClient(PeerConfig{MaxAnswerBytes: 1024}).Task(ctx, base, 5)
			check("replica", err)
		})
	}
}

func TestReplicaClientCalls(t *testing.T) {
	type seen struct {
		method, uri, token, from string
		body                     []byte
	}
	got := make(chan seen, 8)
	base := peerServer(t, func(w http.ResponseWriter, r *http.Request) {
		var b json.RawMessage
		if r.Body != nil && r.ContentLength != 0 {
			json.NewDecoder(r.Body).Decode(&b) //nolint:errcheck // compared below
		}
		got <- seen{r.Method, r.URL.RequestURI(), r.Header.Get(TokenHeader), r.Header.Get(ForwardedHeader), b}
		switch r.URL.Path {
		case "/api/status/42":
			WriteJSON(w, http.StatusOK, fsm.Task{TaskID: 42, AssignedNode: "n1"})
		case "/api/nodes":
			WriteJSON(w, http.StatusOK, []NodeView{{Node: fsm.Node{Hostname: "n1"}}})
		case "/api/docker/host/containers":
			WriteJSON(w, http.StatusOK, []DockerContainer{{Name: "env1"}})
		default:
			WriteJSON(w, http.StatusOK, map[string]any{})
		}
	})
	pc := NewReplicaClient(PeerConfig{Token: "tok", From: "h2"})
	ctx := peerCtx(t)
	expect := func(method, uri string) seen {
		t.Helper()
		s := <-got
		if s.method != method || s.uri != uri || s.token != "tok" || s.from != "h2" {
			t.Fatalf("replica saw %s %s token %q from %q; want %s %s with the token, from h2", s.method, s.uri, s.token, s.from, method, uri)
		}
		return s
	}

	if task, err := pc.Task(ctx, base, 42); err != nil || task.TaskID != 42 || task.AssignedNode != "n1" {
		t.Fatalf("Task = %+v, %v", task, err)
	}
	expect(http.MethodGet, "/api/status/42?consistent=1")
	if nodes, err := pc.Nodes(ctx, base); err != nil || len(nodes) != 1 || nodes[0].Hostname != "n1" {
		t.Fatalf("Nodes = %+v, %v", nodes, err)
	}
	expect(http.MethodGet, "/api/nodes")
	if envs, err := pc.Environments(ctx, base); err != nil || len(envs) != 1 || envs[0].Name != "env1" {
		t.Fatalf("Environments = %+v, %v", envs, err)
	}
	expect(http.MethodGet, "/api/docker/host/containers?local=1")
	rec := &fsm.SetEnvironment{Name: "env1", Replica: "h2"}
	if err := pc.RecordEnvironment(ctx, base, rec); err != nil {
		t.Fatalf("RecordEnvironment: %v", err)
	}
	s := expect(http.MethodPost, EnvRecordPath)
	var back fsm.SetEnvironment
	if err := json.Unmarshal(s.body, &back); err != nil || back.Name != "env1" || back.Replica != "h2" {
		t.Fatalf("RecordEnvironment body = %s (%v)", s.body, err)
	}
}

func TestPeerClientTransportError(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	base := srv.URL
	srv.Close() // nothing listens there any more
	err := NewRunnerClient(PeerConfig{}).Run(peerCtx(t), base, RunRequest{TaskID: 1})
	var ae *APIError
	if err == nil || errors.As(err, &ae) || !strings.Contains(err.Error(), strings.TrimPrefix(base, "http://")) {
		t.Fatalf("call to a closed port = %v, want a transport error naming the runner", err)
	}
}
