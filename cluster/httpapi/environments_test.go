package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gorilla/websocket"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/fsm"
	"github.com/hakuriver/hakuriver-ha/ops/environment"
)

// do sends one request and returns the answer with its body read
// (fixture.do on this server).
func (f *envFixture) do(t *testing.T, method, path, body string) (*http.Response, string) {
	t.Helper()
	return (&fixture{srv: f.srv}).do(t, method, path, body)
}

func TestEnvListMergesLocalAndRemote(t *testing.T) {
	state := newFakeEnvState(
		fsm.Environment{Name: "mine", Replica: "h1"},
		fsm.Environment{Name: "theirs", Replica: "h2"},
		fsm.Environment{Name: "lost", Replica: "h3"}, // h3 is not alive
	)
	engine := &fakeEngine{list: []environment.Container{
		{ID: "1", Name: "mine", Image: "busybox", State: "running"},
		{ID: "2", Name: "theirs", Image: "stale"}, // recorded on h2: h2's answer counts
		{ID: "3", Name: "unrecorded", Image: "busybox"},
	}}
	replicas := &fakeReplicas{
		apis: map[string]string{"h2": "http://h2.invalid"},
		lists: map[string][]api.DockerContainer{"http://h2.invalid": {
			{ID: "4", Name: "theirs", Image: "debian", State: "exited"},
			{ID: "5", Name: "mine", Image: "wrong"}, // recorded on h1: dropped
		}},
	}
	f := newEnvFixture(t, state, engine, replicas)
	resp, body := f.do(t, "GET", "/api/docker/host/containers", "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("list: %d %s", resp.StatusCode, body)
	}
	var got []api.DockerContainer
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatalf("list answer %s: %v", body, err)
	}
	var summary []string
	for _, c := range got {
		summary = append(summary, c.Name+"@"+c.Replica+":"+c.Image)
	}
	want := []string{"lost@h3:", "mine@h1:busybox", "theirs@h2:debian", "unrecorded@h1:busybox"}
	if fmt.Sprint(summary) != fmt.Sprint(want) {
		t.Fatalf("listed %v, want %v (%s)", summary, want, body)
	}
	if !strings.HasPrefix(got[0].Status, "unreachable") || got[0].State != "unknown" {
		t.Errorf("environment of an unreachable replica listed as %+v, want status unreachable", got[0])
	}
	if engine.scopedFor != "c0ffee" {
		t.Errorf("engine scoped to %q, want the cluster ID", engine.scopedFor)
	}

	// ?local=1 (how one replica asks another) lists this engine alone.
	resp, body = f.do(t, "GET", "/api/docker/host/containers?local=1", "")
	got = nil
	if err := json.Unmarshal([]byte(body), &got); resp.StatusCode != http.StatusOK || err != nil || len(got) != 3 {
		t.Errorf("local list: %d %s, want this engine's 3 containers", resp.StatusCode, body)
	}
}

func TestEnvCreateTakenNameConflictRecordsNothing(t *testing.T) {
	engine := &fakeEngine{createErr: fmt.Errorf("container name web: %w: taken by a container that is not an environment", environment.ErrConflict)}
	f := newEnvFixture(t, newFakeEnvState(), engine, &fakeReplicas{leader: true})
	resp, body := f.do(t, "POST", "/api/docker/host/create", `{"image_name":"busybox","container_name":"web"}`)
	if resp.StatusCode != http.StatusConflict || !strings.Contains(body, "taken") {
		t.Errorf("create on a taken name: %d %s, want 409 saying it is taken", resp.StatusCode, body)
	}
	if cmds := f.prop.proposed(); len(cmds) != 0 {
		t.Errorf("a refused create proposed %#v", cmds)
	}
	if len(engine.deleted) != 0 {
		t.Errorf("a refused create deleted %v (the container is not ours)", engine.deleted)
	}
}

func TestEnvCreateRecordsThroughLeader(t *testing.T) {
	for _, leader := range []bool{true, false} {
		t.Run(fmt.Sprintf("leader=%v", leader), func(t *testing.T) {
			replicas := &fakeReplicas{leader: leader, leaderID: "h2", apis: map[string]string{"h2": "http://h2.invalid"}}
			engine := &fakeEngine{}
			f := newEnvFixture(t, newFakeEnvState(), engine, replicas)
			resp, body := f.do(t, "POST", "/api/docker/host/create", `{"image_name":"busybox","container_name":"web"}`)
			if resp.StatusCode != http.StatusCreated || !strings.Contains(body, `"replica":"h1"`) {
				t.Fatalf("create: %d %s, want 201 from h1", resp.StatusCode, body)
			}
			var recs []*fsm.SetEnvironment
			for _, c := range f.prop.proposed() {
				recs = append(recs, c.(*fsm.SetEnvironment))
			}
			if !leader {
				recs = replicas.recorded
				if n := len(f.prop.proposed()); n != 0 {
					t.Errorf("a follower proposed %d commands itself", n)
				}
			}
			if len(recs) != 1 || recs[0].Name != "web" || recs[0].Replica != "h1" || recs[0].Deleted {
				t.Errorf("recorded %+v, want web on h1", recs)
			}
		})
	}
}

func TestEnvCreateBadInput(t *testing.T) {
	f := newEnvFixture(t, newFakeEnvState(), &fakeEngine{}, &fakeReplicas{leader: true})
	for _, tc := range []struct{ body, field string }{
		{`{"image_name":"busybox"}`, "container_name"},
		{`{"image_name":" ","container_name":"web"}`, "image_name"},
		{`{"image_name":"busybox","container_name":"../x"}`, "container_name"},
	} {
		resp, body := f.do(t, "POST", "/api/docker/host/create", tc.body)
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, tc.field) {
			t.Errorf("create %s: %d %s, want 400 naming %s", tc.body, resp.StatusCode, body, tc.field)
		}
	}
	if cmds := f.prop.proposed(); len(cmds) != 0 {
		t.Errorf("bad creates proposed %#v", cmds)
	}
}

func TestEnvDockerDisabledIs503(t *testing.T) {
	f := newEnvFixture(t, newFakeEnvState(), nil, &fakeReplicas{leader: true})
	resp, body := f.do(t, "POST", "/api/docker/host/start/web", "")
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "h1") || resp.Header.Get("Retry-After") == "" {
		t.Errorf("start without Docker: %d %s, want 503 naming the replica with Retry-After", resp.StatusCode, body)
	}
}

func TestEnvOpProxiedToOwner(t *testing.T) {
	var gotProxied, gotPath string
	owner := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotProxied, gotPath = r.Header.Get(EnvProxiedHeader), r.URL.Path
		w.Header().Set(api.LeaderHeader, "h2")
		WriteJSON(w, http.StatusOK, api.DockerMessage{Message: "Container 'web' stopped.", Replica: "h2"})
	}))
	t.Cleanup(owner.Close)
	replicas := &fakeReplicas{apis: map[string]string{"h2": owner.URL}}
	f := newEnvFixture(t, newFakeEnvState(fsm.Environment{Name: "web", Replica: "h2"}, fsm.Environment{Name: "gone", Replica: "h3"}), &fakeEngine{}, replicas)
	resp, body := f.do(t, "POST", "/api/docker/host/stop/web", "")
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `"replica":"h2"`) {
		t.Fatalf("stop of h2's environment via h1: %d %s, want h2's answer", resp.StatusCode, body)
	}
	if gotProxied != "h1" || gotPath != "/api/docker/host/stop/web" {
		t.Errorf("owner saw %s with %s=%q, want the same path marked proxied by h1", gotPath, EnvProxiedHeader, gotProxied)
	}
	if resp.Header.Get(api.LeaderHeader) != "" {
		t.Errorf("the owner's %s header was passed on", api.LeaderHeader)
	}
	resp, body = f.do(t, "POST", "/api/docker/host/stop/gone", "")
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "h3") {
		t.Errorf("stop of an unreachable replica's environment: %d %s, want 503 naming h3", resp.StatusCode, body)
	}
}

// terminalError dials the terminal of env and returns the error message
// and the close code it ends with.
func terminalError(t *testing.T, f *envFixture, env string) (string, int) {
	t.Helper()
	u := "ws" + strings.TrimPrefix(f.srv.URL, "http") + "/api/docker/host/containers/" + env + "/terminal"
	conn, resp, err := websocket.DefaultDialer.Dial(u, nil)
	if err != nil {
		t.Fatalf("dial %s: %v (%v)", u, err, resp)
	}
	defer conn.Close()
	var msg api.TerminalMessage
	if err := conn.ReadJSON(&msg); err != nil || msg.Type != "error" {
		t.Fatalf("first message %+v (%v), want an error", msg, err)
	}
	_, _, err = conn.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) {
		t.Fatalf("after the error: %v, want a close", err)
	}
	return msg.Data, ce.Code
}

func TestEnvTerminalRefusedForUnknownEnvironment(t *testing.T) {
	f := newEnvFixture(t, newFakeEnvState(), &fakeEngine{list: []environment.Container{{Name: "noshell"}}}, &fakeReplicas{leader: true})
	msg, code := terminalError(t, f, "nosuch")
	if msg != "Container 'nosuch' not found." || code != websocket.ClosePolicyViolation {
		t.Errorf("terminal of an unknown environment: %q, close %d; want not found, close %d", msg, code, websocket.ClosePolicyViolation)
	}
	msg, code = terminalError(t, f, "noshell")
	if msg != "No suitable shell found in container." || code != websocket.CloseInternalServerErr {
		t.Errorf("terminal without a shell: %q, close %d; want no shell, close %d", msg, code, websocket.CloseInternalServerErr)
	}
	// A bad name is refused before the upgrade.
	resp, body := f.do(t, "GET", "/api/docker/host/containers/a..b/terminal", "")
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("terminal of a bad name: %d %s, want 400", resp.StatusCode, body)
	}
}

func TestUTF8PrefixKeepsIncompleteRune(t *testing.T) {
	b := []byte("a€") // € is 3 bytes
	for i, want := range []int{0, 1, 1, 1, 4} {
		if got := UTF8Prefix(b[:i]); got != want {
			t.Errorf("UTF8Prefix(%q) = %d, want %d", b[:i], got, want)
		}
	}
}

func TestCheckEnvironment(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, environment.TarballName("stray", 100)), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	state := newFakeEnvState(fsm.Environment{Name: "recorded", Replica: "h1"})
	state.tarballs["tarred"] = fsm.TarballRecord{Version: 100, SHA256: "ab"}
	for _, ok := range []string{environment.Native, "recorded", "tarred"} {
		if err := CheckEnvironment(state, dir, ok); err != nil {
			t.Errorf("CheckEnvironment(%q): %v", ok, err)
		}
	}
	for name, want := range map[string]string{"stray": "recorded no tarball", "nosuch": "unknown environment", "a/b": "unknown environment"} {
		err := CheckEnvironment(state, dir, name)
		if StatusOf(err) != http.StatusBadRequest || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "container_name") {
			t.Errorf("CheckEnvironment(%q) = %v, want a 400 on container_name saying %q", name, err, want)
		}
	}
}
