package cluster

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/fsm"
	"github.com/hakuriver/hakuriver-ha/ops/environment"
	"github.com/hakuriver/hakuriver-ha/runner/executor/docker"
)

const testImage = "hakuriver-test/busybox:latest"

// dockerEnvs serves Environments with the runner's Docker package, as
// cmd/hakuriver's dockerEnvironments does: the environment API is tested
// against a real engine, so this test file (alone in cluster) imports the
// implementation; cluster's own code never does.
type dockerEnvs struct{ m *docker.Manager }

func (d dockerEnvs) Scoped(clusterID string, adopt func(name string) bool) EnvironmentScope {
	return dockerScope{d.m.Scoped(clusterID, adopt)}
}

type dockerScope struct{ *docker.Manager }

func (s dockerScope) Shell(ctx context.Context, name string, rows, cols uint) (EnvShell, error) {
	sess, err := s.Manager.Shell(ctx, name, rows, cols)
	if err != nil {
		return nil, err
	}
	return sess, nil
}

// startDockerCluster starts n replicas sharing one shared directory, each
// with a Docker manager (over the one local engine). It skips the test
// when the engine is unreachable, or fails with HAKURIVER_REQUIRE_DOCKER=1.
func startDockerCluster(t *testing.T, n int) ([]*Host, string) {
	t.Helper()
	shared := t.TempDir()
	hosts := startClusterWith(t, n, func(i int, cfg *Config) {
		dc := docker.DefaultConfig()
		dc.SharedDir = shared
		dc.Logger = testLogger(t)
		m, err := docker.NewManager(dc)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close() })
		if i == 0 {
			requireDocker(t, m)
		}
		cfg.SharedDir = shared
		cfg.Docker = dockerEnvs{m}
	})
	// Every replica sees every other one in gossip (proxying needs it).
	waitFor(t, 10*time.Second, func() bool {
		for _, h := range hosts {
			for _, o := range hosts {
				if h.replicaAPI(o.NodeID()) == "" {
					return false
				}
			}
		}
		return true
	})
	return hosts, shared
}

func requireDocker(t *testing.T, m *docker.Manager) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := m.Ping(ctx); err != nil {
		if os.Getenv("HAKURIVER_REQUIRE_DOCKER") == "1" {
			t.Fatalf("Docker engine required (HAKURIVER_REQUIRE_DOCKER=1) but unreachable: %v", err)
		}
		t.Skipf("skipping: Docker engine unreachable (%v); set HAKURIVER_REQUIRE_DOCKER=1 to make this a failure", err)
	}
	if err := exec.Command("docker", "image", "inspect", testImage).Run(); err != nil {
		if out, err := exec.Command("bash", "../.ci/test-images.sh").CombinedOutput(); err != nil {
			t.Fatalf("build test image: %v\n%s", err, out)
		}
	}
}

func uniqueEnv() string {
	b := make([]byte, 5)
	rand.Read(b) //nolint:errcheck // never fails
	return "hrtest-env-" + hex.EncodeToString(b)
}

// cleanupEnv removes an environment's container and images (every tag of
// hakuriver/<name>, the cluster-scoped one too) at the end.
func cleanupEnv(t *testing.T, name string) {
	t.Cleanup(func() {
		exec.Command("docker", "rm", "-f", name).Run()                                                                 //nolint:errcheck // cleanup
		out, _ := exec.Command("docker", "images", "--format", "{{.Repository}}:{{.Tag}}", "hakuriver/"+name).Output() //nolint:errcheck // cleanup
		for _, tag := range strings.Fields(string(out)) {
			exec.Command("docker", "rmi", "-f", tag).Run() //nolint:errcheck // cleanup
		}
	})
}

func envRecord(h *Host, name string) string {
	e, ok := h.Machine().Environment(name)
	if !ok {
		return ""
	}
	return e.Replica
}

func TestDockerEnvironmentsAnyReplica(t *testing.T) {
	hosts, shared := startDockerCluster(t, 3)
	var owner, other *Host
	for _, h := range hosts {
		switch {
		case !h.IsLeader() && owner == nil:
			owner = h // a follower: its record must commit through the leader
		case h != owner && other == nil:
			other = h
		}
	}
	if owner == nil || other == nil || owner == other {
		t.Fatal("need two distinct replicas")
	}
	env := uniqueEnv()
	cleanupEnv(t, env)

	resp, body := do(t, "POST", owner.APIURL()+"/api/docker/host/create", api.CreateContainerRequest{ImageName: testImage, ContainerName: env})
	if resp.StatusCode != http.StatusCreated || !strings.Contains(string(body), "created or already exists") {
		t.Fatalf("create: %d %s", resp.StatusCode, body)
	}
	for _, h := range hosts {
		waitFor(t, 5*time.Second, func() bool { return envRecord(h, env) == owner.NodeID() })
	}
	// Creating it again through another replica lands on the owner.
	resp, body = do(t, "POST", other.APIURL()+"/docker/host/create", api.CreateContainerRequest{ImageName: testImage, ContainerName: env})
	var msg api.DockerMessage
	json.Unmarshal(body, &msg)
	if resp.StatusCode != http.StatusCreated || msg.Replica != owner.NodeID() {
		t.Fatalf("create again via %s: %d %s", other.NodeID(), resp.StatusCode, body)
	}

	// Every replica lists it once, on its owner.
	for _, h := range hosts {
		resp, body := do(t, "GET", h.APIURL()+"/api/docker/host/containers", nil)
		var list []api.DockerContainer
		json.Unmarshal(body, &list)
		n := 0
		for _, c := range list {
			if c.Name == env {
				n++
				if c.Replica != owner.NodeID() || c.State != "running" || c.Image != testImage || c.ID == "" {
					t.Fatalf("listed via %s as %+v", h.NodeID(), c)
				}
			}
		}
		if resp.StatusCode != http.StatusOK || n != 1 {
			t.Fatalf("list via %s: %d, %d entries of %s: %s", h.NodeID(), resp.StatusCode, n, env, body)
		}
	}

	// A shell through a replica that does not hold it.
	out, code := runTerminal(t, other.APIURL(), env, "echo from-shell > /marker.txt && cat /marker.txt\nexit 5\n")
	if !strings.Contains(out, "Terminal connected.") || !strings.Contains(out, "from-shell") || code != 5 {
		t.Fatalf("terminal: code %d output %q", code, out)
	}

	// create_tar through another replica, with progress.
	progress, res := createTarStream(t, other.APIURL(), env)
	if res.Replica != owner.NodeID() || res.Timestamp == 0 || res.Size == 0 ||
		res.TarballPath != filepath.Join(shared, "hakuriver-containers", environment.TarballName(env, res.Timestamp)) {
		t.Fatalf("create_tar result %+v", res)
	}
	if !strings.Contains(progress, `"stage":"commit"`) || !strings.Contains(progress, `"stage":"save"`) {
		t.Fatalf("no progress lines: %s", progress)
	}
	if _, err := os.Stat(res.TarballPath); err != nil {
		t.Fatal(err)
	}
	// The original's plain JSON answer; the older tarball is pruned.
	resp, body = do(t, "POST", hosts[0].APIURL()+"/docker/create_tar/"+env, nil)
	var res2 api.CreateTarResponse
	json.Unmarshal(body, &res2)
	if resp.StatusCode != http.StatusOK || res2.Message != "Container tarball created/refreshed successfully." || res2.Timestamp <= res.Timestamp {
		t.Fatalf("plain create_tar: %d %s", resp.StatusCode, body)
	}
	if _, err := os.Stat(res.TarballPath); !os.IsNotExist(err) {
		t.Fatalf("old tarball kept: %v", err)
	}
	for _, h := range hosts {
		resp, body := do(t, "GET", h.APIURL()+"/api/docker/list", nil)
		var sets map[string]api.TarballSet
		json.Unmarshal(body, &sets)
		s, ok := sets[env]
		if resp.StatusCode != http.StatusOK || !ok || s.LatestTimestamp != res2.Timestamp ||
			s.LatestTarball != filepath.Base(res2.TarballPath) || s.LatestSize != res2.Size || len(s.AllVersions) != 1 {
			t.Fatalf("list via %s: %d %s", h.NodeID(), resp.StatusCode, body)
		}
	}

	// Stop and start through another replica.
	for _, op := range []string{"stop", "start"} {
		resp, body := do(t, "POST", other.APIURL()+"/api/docker/host/"+op+"/"+env, nil)
		json.Unmarshal(body, &msg)
		if resp.StatusCode != http.StatusOK || msg.Replica != owner.NodeID() || !strings.Contains(msg.Message, env) {
			t.Fatalf("%s: %d %s", op, resp.StatusCode, body)
		}
	}

	// Bad input.
	cases := []struct {
		method, path, body string
		status             int
		want               string
	}{
		{"POST", "/api/docker/host/create", `{"image_name":"x"}`, 400, "container_name"},
		{"POST", "/api/docker/host/create", `{"image_name":"x","container_name":"Bad Name"}`, 400, "Bad Name"},
		{"POST", "/api/docker/host/create", `{"image_name":"hakuriver-test/nope:1","container_name":"` + uniqueEnv() + `"}`, 404, "hakuriver-test/nope"},
		{"POST", "/api/docker/host/start/" + uniqueEnv(), ``, 404, "does not exist"},
		{"POST", "/api/docker/host/stop/UPPER", ``, 400, "UPPER"},
		{"POST", "/api/docker/create_tar/" + uniqueEnv(), ``, 404, "does not exist"},
		{"POST", "/api/docker/internal/environments", `{"name":"x","replica":"h9"}`, 200, ""}, // do sends the cluster token
	}
	for _, tc := range cases {
		resp, body := do(t, tc.method, other.APIURL()+tc.path, tc.body)
		if resp.StatusCode != tc.status || !strings.Contains(string(body), tc.want) {
			t.Errorf("%s %s: %d %s; want %d naming %q", tc.method, tc.path, resp.StatusCode, body, tc.status, tc.want)
		}
	}
	// Terminals that cannot open: the original's error messages, mapped
	// from the environment sentinels (not found, not running, no shell).
	terminalRefused(t, other.APIURL(), "nosuch-"+env, "Container 'nosuch-"+env+"' not found.", websocket.ClosePolicyViolation)
	if resp, body := do(t, "POST", other.APIURL()+"/api/docker/host/stop/"+env, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("stop: %d %s", resp.StatusCode, body)
	}
	terminalRefused(t, other.APIURL(), env, "Container '"+env+"' is not running (status: exited).", websocket.ClosePolicyViolation)
	if resp, body := do(t, "POST", other.APIURL()+"/api/docker/host/start/"+env, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("start: %d %s", resp.StatusCode, body)
	}
	if out, err := exec.Command("docker", "exec", env, "rm", "/bin/sh").CombinedOutput(); err != nil {
		t.Fatalf("remove the shell: %v %s", err, out)
	}
	terminalRefused(t, other.APIURL(), env, "No suitable shell found in container.", websocket.CloseInternalServerErr)

	// Delete through another replica: gone everywhere.
	resp, body = do(t, "POST", other.APIURL()+"/api/docker/host/delete/"+env, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("delete: %d %s", resp.StatusCode, body)
	}
	for _, h := range hosts {
		waitFor(t, 5*time.Second, func() bool { return envRecord(h, env) == "" })
	}
	resp, body = do(t, "GET", other.APIURL()+"/api/docker/host/containers", nil)
	if resp.StatusCode != http.StatusOK || bytes.Contains(body, []byte(env)) {
		t.Fatalf("listed after delete: %d %s", resp.StatusCode, body)
	}
}

// terminalRefused opens a terminal to env through base and checks that it
// answers one error message want and closes with code.
func terminalRefused(t *testing.T, base, env, want string, code int) {
	t.Helper()
	conn, _, err := websocket.DefaultDialer.Dial(wsURL(base, env), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var m api.TerminalMessage
	if err := conn.ReadJSON(&m); err != nil || m.Type != "error" || m.Data != want {
		t.Fatalf("terminal to %s: %+v %v; want the error %q", env, m, err, want)
	}
	_, _, err = conn.ReadMessage()
	if ce, ok := err.(*websocket.CloseError); !ok || ce.Code != code {
		t.Fatalf("terminal to %s: close %v, want code %d", env, err, code)
	}
}

func wsURL(base, env string) string {
	return "ws" + strings.TrimPrefix(base, "http") + "/api/docker/host/containers/" + env + "/terminal?rows=30&cols=100"
}

// runTerminal runs input through the WebSocket terminal and returns the
// output and the shell's exit code.
func runTerminal(t *testing.T, base, env, input string) (string, int) {
	t.Helper()
	conn, _, err := websocket.DefaultDialer.Dial(wsURL(base, env), nil)
	if err != nil {
		t.Fatalf("dial terminal: %v", err)
	}
	defer conn.Close()
	conn.WriteJSON(api.TerminalMessage{Type: "resize", Rows: 40, Cols: 120}) //nolint:errcheck // checked by the output
	if err := conn.WriteJSON(api.TerminalMessage{Type: "input", Data: input}); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(30 * time.Second)) //nolint:errcheck // a read fails at the deadline
	var out strings.Builder
	for {
		var m api.TerminalMessage
		if err := conn.ReadJSON(&m); err != nil {
			t.Fatalf("terminal ended without an exit message: %v; output %q", err, out.String())
		}
		switch m.Type {
		case "output":
			out.WriteString(m.Data)
		case "error":
			t.Fatalf("terminal error: %s", m.Data)
		case "exit":
			if m.Code == nil {
				t.Fatal("exit without a code")
			}
			return out.String(), *m.Code
		}
	}
}

// createTarStream calls create_tar accepting the progress stream.
func createTarStream(t *testing.T, base, env string) (string, api.CreateTarResponse) {
	t.Helper()
	req, _ := http.NewRequest("POST", base+"/api/docker/create_tar/"+env, nil)
	req.Header.Set("Accept", api.NDJSONType)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != api.NDJSONType {
		t.Fatalf("create_tar stream: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var lines strings.Builder
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		lines.WriteString(sc.Text() + "\n")
		var p api.TarProgress
		if err := json.Unmarshal(sc.Bytes(), &p); err != nil {
			t.Fatalf("bad progress line %q: %v", sc.Text(), err)
		}
		switch p.Type {
		case "result":
			return lines.String(), *p.Result
		case "error":
			t.Fatalf("create_tar error: %+v", p)
		}
	}
	t.Fatalf("stream ended without a result: %s", lines.String())
	return "", api.CreateTarResponse{}
}

// TestDockerUnavailable needs no engine: a replica without Docker, and one
// whose engine cannot be reached, answer 503 naming the replica; tarballs
// are still listed from shared storage.
func TestDockerUnavailable(t *testing.T) {
	t.Setenv("DOCKER_HOST", "unix://"+filepath.Join(t.TempDir(), "no-docker.sock"))
	hosts := startCluster(t, 1)
	h := hosts[0]
	// startCluster gives no Docker manager: disabled.
	resp, body := do(t, "GET", h.APIURL()+"/api/docker/host/containers", nil)
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "not enabled on replica h1") {
		t.Fatalf("list without Docker: %d %s", resp.StatusCode, body)
	}
	resp, body = do(t, "GET", h.APIURL()+"/api/docker/list", nil)
	if resp.StatusCode != http.StatusOK || strings.TrimSpace(string(body)) != "{}" {
		t.Fatalf("tarball list without Docker: %d %s", resp.StatusCode, body)
	}

	// A replica whose engine is unreachable.
	m, err := docker.NewManager(docker.Config{SharedDir: t.TempDir(), ContainerDir: "c", KeepTarballs: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	cfg := DefaultConfig()
	cfg.NodeID, cfg.DataDir, cfg.SharedDir = "h1", t.TempDir(), t.TempDir()
	cfg.APIPort, cfg.RaftPort, cfg.GossipPort = 0, 0, 0
	cfg.FastGossip, cfg.ClusterToken = true, testToken
	cfg.AnonymousRole = fsm.RoleOperator // as in startClusterWith
	cfg.Docker = dockerEnvs{m}
	cfg.Logger = testLogger(t)
	h, err = StartHost(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		h.Close(ctx)
	})
	waitFor(t, 15*time.Second, h.IsLeader)
	for _, c := range []struct{ method, path, body string }{
		{"GET", "/api/docker/host/containers", ""},
		{"POST", "/api/docker/host/create", `{"image_name":"x","container_name":"envx"}`},
		{"POST", "/api/docker/host/stop/envx", ""},
		{"POST", "/api/docker/create_tar/envx", ""},
	} {
		resp, body := do(t, c.method, h.APIURL()+c.path, c.body)
		if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "Docker is unreachable on replica h1") {
			t.Errorf("%s %s: %d %s", c.method, c.path, resp.StatusCode, body)
		}
	}
	if _, ok := h.Machine().Environment("envx"); ok {
		t.Fatal("a failed create was recorded")
	}
}

func TestCheckEnvironmentAndUTF8(t *testing.T) {
	h := startCluster(t, 1)[0]
	dir := filepath.Join(h.cfg.SharedDir, h.cfg.ContainerDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, environment.TarballName("withtar", 100)), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := h.apply(context.Background(), &fsm.SetEnvironment{Name: "recorded", Replica: "h1"}); err != nil {
		t.Fatal(err)
	}
	tb := &fsm.TarballRecord{Version: 100, SHA256: strings.Repeat("a", 64)}
	if _, err := h.apply(context.Background(), &fsm.SetEnvironment{Name: "tarred", Tarball: tb}); err != nil {
		t.Fatal(err)
	}
	for _, ok := range []string{"NULL", "tarred", "recorded"} {
		if err := h.checkEnvironment(ok); err != nil {
			t.Errorf("checkEnvironment(%q): %v", ok, err)
		}
	}
	// A tarball file the cluster did not record is never loaded: refused.
	if err := h.checkEnvironment("withtar"); statusOf(err) != http.StatusBadRequest || !strings.Contains(err.Error(), "recorded no tarball") {
		t.Errorf("checkEnvironment(withtar) = %v, want a 400 saying it is not recorded", err)
	}
	for _, bad := range []string{"nosuch", "Bad Name"} {
		err := h.checkEnvironment(bad)
		if statusOf(err) != http.StatusBadRequest || !strings.Contains(err.Error(), bad) {
			t.Errorf("checkEnvironment(%q) = %v (%d), want a 400 naming it", bad, err, statusOf(err))
		}
	}

	s := "é€😀"
	b := []byte(s)
	for i := 0; i <= len(b); i++ {
		cut := utf8Prefix(b[:i])
		if cut > i || !utf8.Valid(b[:cut]) || i-cut >= utf8.UTFMax {
			t.Fatalf("utf8Prefix of %d bytes = %d", i, cut)
		}
	}
	if utf8Prefix(b) != len(b) || utf8Prefix([]byte{0xff, 'a'}) != 2 {
		t.Fatal("complete input cut")
	}
}
