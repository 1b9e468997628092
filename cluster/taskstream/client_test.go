package taskstream

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/fsm"
)

// TestRunnerURLReach: a forward or a copy (Paused, OfflineRunner) reaches
// a paused task and a runner the state calls offline; exec (Reach{})
// reaches neither; nobody reaches a finished task or an unknown runner.
func TestRunnerURLReach(t *testing.T) {
	nodes := fakeState{nodes: map[string]*fsm.Node{
		"on":  {Hostname: "on", URL: "http://10.0.0.1:8001", Status: fsm.NodeOnline},
		"off": {Hostname: "off", URL: "http://10.0.0.2:8001", Status: fsm.NodeOffline},
	}}
	access := Reach{Paused: true, OfflineRunner: true}
	for _, tc := range []struct {
		task               fsm.Task
		execOK, accessOK   bool
		execURL, accessURL string
	}{
		{fsm.Task{TaskID: 1, Status: fsm.StatusRunning, AssignedNode: "on"}, true, true, "http://10.0.0.1:8001", "http://10.0.0.1:8001"},
		{fsm.Task{TaskID: 2, Status: fsm.StatusPaused, AssignedNode: "on"}, false, true, "", "http://10.0.0.1:8001"},
		{fsm.Task{TaskID: 3, Status: fsm.StatusRunning, AssignedNode: "off"}, false, true, "", "http://10.0.0.2:8001"},
		{fsm.Task{TaskID: 4, Status: fsm.StatusCompleted, AssignedNode: "on"}, false, false, "", ""},
		{fsm.Task{TaskID: 5, Status: fsm.StatusRunning, AssignedNode: "gone"}, false, false, "", ""},
	} {
		u, err := RunnerURL(nodes, &tc.task, Reach{})
		if (err == nil) != tc.execOK || u != tc.execURL || (err != nil && !errors.Is(err, ErrNotRunning)) {
			t.Errorf("exec, task %d: %q %v", tc.task.TaskID, u, err)
		}
		u, err = RunnerURL(nodes, &tc.task, access)
		if (err == nil) != tc.accessOK || u != tc.accessURL || (err != nil && !errors.Is(err, ErrNotRunning)) {
			t.Errorf("forward, task %d: %q %v", tc.task.TaskID, u, err)
		}
	}
}

// TestClientStreamAndDo: a raw stream and a plain request carry the
// cluster token; a refusal is an *api.APIError with the runner's status
// and message.
func TestClientStreamAndDo(t *testing.T) {
	const token = "secret"
	runner := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get(api.TokenHeader) != token {
			api.WriteError(w, http.StatusUnauthorized, "missing or wrong cluster token")
			return
		}
		if api.IsStreamRequest(r) {
			conn, err := api.AcceptStream(w)
			if err != nil {
				return
			}
			io.WriteString(conn, "stream:"+r.URL.Query().Get("port")) //nolint:errcheck // the client checks
			conn.Close()
			return
		}
		b, _ := io.ReadAll(r.Body) //nolint:errcheck // the answer shows it
		io.WriteString(w, r.Method+" "+r.Header.Get("Content-Type")+" "+string(b))
	}))
	defer runner.Close()
	ctx := t.Context()
	good := Client{Token: token}
	conn, err := good.DialStream(ctx, runner.URL, "/tasks/1/forward?port=80")
	if err != nil {
		t.Fatalf("DialStream: %v", err)
	}
	got, _ := io.ReadAll(conn)
	conn.Close()
	if string(got) != "stream:80" {
		t.Errorf("stream carried %q, want stream:80", got)
	}
	resp, err := good.Do(ctx, http.MethodPut, runner.URL+"/", "/tasks/1/files?path=x", strings.NewReader("tar"), "application/x-tar")
	if err != nil {
		t.Fatalf("Do: %v", err)
	}
	got, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(got) != "PUT application/x-tar tar" {
		t.Errorf("Do sent %q", got)
	}
	bad := Client{Token: "wrong"}
	if _, err := bad.DialStream(ctx, runner.URL, "/tasks/1/forward?port=80"); !isRunnerError(err, http.StatusUnauthorized, "cluster token") {
		t.Errorf("DialStream with a wrong token: %v", err)
	}
	if _, err := bad.Do(ctx, http.MethodGet, runner.URL, "/tasks/1/files?path=x", nil, ""); !isRunnerError(err, http.StatusUnauthorized, "cluster token") {
		t.Errorf("Do with a wrong token: %v", err)
	}
}
