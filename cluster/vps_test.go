package cluster

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/fsm"
	"github.com/hakuriver/hakuriver-ha/sshproxy/sshtest"
)

// TestVPSLifecycleAPI submits a VPS without a target to a host with one
// fake runner: the scheduler places it, /run carries the key and the
// environment, the runner's running report with ssh_port shows in
// /api/status, /api/vps/status and /api/vps, and a kill takes it out of
// /api/vps/status.
func TestVPSLifecycleAPI(t *testing.T) {
	h := startCluster(t, 1)[0]
	var mu sync.Mutex
	var runs []api.RunRequest
	runner := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/run" {
			var req api.RunRequest
			b, _ := io.ReadAll(r.Body)
			json.Unmarshal(b, &req) //nolint:errcheck // checked through its fields
			mu.Lock()
			runs = append(runs, req)
			mu.Unlock()
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"message":"ok"}`) //nolint:errcheck // test server
	}))
	defer runner.Close()
	if resp, body := do(t, "POST", h.APIURL()+"/api/register", api.RegisterRequest{
		Hostname: "n1", TotalCores: 4, TotalRAMBytes: 8 << 30, RunnerURL: runner.URL,
	}); resp.StatusCode != http.StatusOK {
		t.Fatalf("register: %d %s", resp.StatusCode, body)
	}

	key := sshtest.NewKey(t).AuthorizedKey("user@lab")
	cores := 2
	resp, body := do(t, "POST", h.APIURL()+"/api/submit", api.SubmitRequest{TaskType: "vps", Command: key, RequiredCores: &cores})
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("submit: %d %s", resp.StatusCode, body)
	}
	var sr api.SubmitResponse
	if err := json.Unmarshal(body, &sr); err != nil || len(sr.TaskIDs) != 1 {
		t.Fatalf("submit answer %s: %v", body, err)
	}
	id := sr.TaskIDs[0]
	waitFor(t, 10*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(runs) > 0
	})
	mu.Lock()
	run := runs[0]
	mu.Unlock()
	if formatID(run.TaskID) != id || run.TaskType != "vps" || run.Command != key || run.RequiredCores != 2 ||
		run.DockerImageName != "hakuriver/"+h.cfg.DefaultContainer+":base" {
		t.Fatalf("/run body %+v", run)
	}

	if resp, body := do(t, "POST", h.APIURL()+"/api/update", map[string]any{"task_id": run.TaskID, "status": "running", "ssh_port": 40022}); resp.StatusCode != http.StatusOK {
		t.Fatalf("update: %d %s", resp.StatusCode, body)
	}
	var st fsm.Task
	_, body = do(t, "GET", h.APIURL()+"/api/status/"+id, nil)
	if err := json.Unmarshal(body, &st); err != nil || st.Status != fsm.StatusRunning || st.SSHPort != 40022 || st.AssignedNode != "n1" {
		t.Fatalf("status %s: %v", body, err)
	}
	list := func(path string) []fsm.Task {
		t.Helper()
		resp, body := do(t, "GET", h.APIURL()+path, nil)
		var out []fsm.Task
		if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &out) != nil {
			t.Fatalf("GET %s: %d %s", path, resp.StatusCode, body)
		}
		return out
	}
	// A command task is in neither VPS list.
	do(t, "POST", h.APIURL()+"/api/submit", api.SubmitRequest{Command: "true"})
	for _, path := range []string{"/api/vps/status", "/vps/status", "/api/vps", "/api/vps/status?consistent=1"} {
		got := list(path)
		if len(got) != 1 || formatID(got[0].TaskID) != id || got[0].SSHPort != 40022 || got[0].TaskType != fsm.TaskVPS {
			t.Fatalf("GET %s = %+v", path, got)
		}
	}
	_, raw := do(t, "GET", h.APIURL()+"/api/vps/status", nil)
	if !strings.Contains(string(raw), `"ssh_port":40022`) {
		t.Fatalf("no ssh_port in %s", raw)
	}

	if resp, body := do(t, "POST", h.APIURL()+"/api/kill/"+id, nil); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("kill: %d %s", resp.StatusCode, body)
	}
	if got := list("/api/vps/status"); len(got) != 0 {
		t.Fatalf("/api/vps/status after kill = %+v", got)
	}
	if got := list("/api/vps"); len(got) != 1 || got[0].Status != fsm.StatusKilled {
		t.Fatalf("/api/vps after kill = %+v", got)
	}
}

func TestVPSSubmitValidation(t *testing.T) {
	h := startCluster(t, 1)[0]
	if resp, body := do(t, "POST", h.APIURL()+"/api/register", api.RegisterRequest{
		Hostname: "n1", TotalCores: 4, TotalRAMBytes: 8 << 30, RunnerURL: "http://127.0.0.1:1",
	}); resp.StatusCode != http.StatusOK {
		t.Fatalf("register: %d %s", resp.StatusCode, body)
	}
	null := "NULL"
	key := string(ssh.MarshalAuthorizedKey(sshtest.NewKey(t).PublicKey()))
	for name, tc := range map[string]struct {
		req  api.SubmitRequest
		want string
	}{
		"native":      {api.SubmitRequest{TaskType: "vps", Command: key, ContainerName: &null}, "require a Docker container"},
		"two targets": {api.SubmitRequest{TaskType: "vps", Command: key, Targets: []string{"n1", "n1"}}, "multiple targets"},
		"no key":      {api.SubmitRequest{TaskType: "vps", Command: " \n"}, "needs an SSH public key"},
		"bad key":     {api.SubmitRequest{TaskType: "vps", Command: key + "\nssh-ed25519 AAAA"}, "is not an OpenSSH public key"},
	} {
		resp, body := do(t, "POST", h.APIURL()+"/api/submit", tc.req)
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), tc.want) {
			t.Errorf("%s: %d %s, want 400 naming %q", name, resp.StatusCode, body, tc.want)
		}
	}
	if resp, body := do(t, "GET", h.APIURL()+"/api/vps", nil); resp.StatusCode != http.StatusOK || strings.TrimSpace(string(body)) != "[]" {
		t.Fatalf("/api/vps with none: %d %s", resp.StatusCode, body)
	}
}
