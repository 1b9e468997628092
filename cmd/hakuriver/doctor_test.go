package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/fsm"
	"github.com/hakuriver/hakuriver-ha/ops/doctor"
)

const doctorToken = "tok-123"

// runDoctorCLI runs "hakuriver <args>" with the doctor command wired as in
// main.go and returns stdout and the error.
func runDoctorCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	root := &cobra.Command{Use: "hakuriver", SilenceUsage: true, SilenceErrors: true}
	g := addClientFlags(root)
	root.AddCommand(newDoctorCmd(g))
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	return out.String(), err
}

// fakeMember answers a doctor endpoint at path with the checks of checks(),
// requiring the token, and serves ping probes.
func fakeMember(f *fakeHost, path, node, role string, write bool, checks func() []doctor.Check) {
	f.mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get(api.TokenHeader) != doctorToken {
			reply(w, http.StatusUnauthorized, api.ErrorResponse{Error: "missing or wrong cluster token"})
			return
		}
		var req doctor.Request
		if r.Method == http.MethodPost {
			json.NewDecoder(r.Body).Decode(&req) //nolint:errcheck // an empty request is fine here
		}
		rep := doctor.Report{Node: node, Role: role, Version: "0.1.0", Time: time.Now(), SharedDir: "/shared", Checks: []doctor.Check{}}
		if r.URL.Query().Get("ping") == "" {
			rep.Checks = checks()
		}
		if req.WriteProbe && write {
			rep.Probe = &doctor.ProbeFile{Name: ".hakuriver-doctor-" + strings.Repeat("ab", 16), Token: "t0k", Writer: node}
			rep.Checks = append(rep.Checks, doctor.Check{Name: "shared storage write", Status: doctor.StatusOK, Measured: "wrote it"})
			rep.Peers = []doctor.Peer{
				{Name: "h1", Role: "host", ID: "h1", Gossip: "127.0.0.1:7946"},
				{Name: "h2", Role: "host", ID: "h2", Gossip: "127.0.0.1:7947"},
				{Name: "runner:r1", Role: "runner", ID: "r1", Gossip: "127.0.0.1:7950"},
			}
		}
		reply(w, http.StatusOK, rep)
	})
}

// doctorCluster fakes replicas h1 and h2 (h3 is down) and runner r1; when
// broken, r1 cannot read the storage probe and h2 cannot reach h3's Raft.
func doctorCluster(t *testing.T, broken bool) (h1, h2, r1 *fakeHost) {
	h1, h2, r1 = newFakeHost(t), newFakeHost(t), newFakeHost(t)
	beat := time.Now().Add(-time.Second).UTC().Format(time.RFC3339Nano)
	st := api.ClusterStatus{NodeID: "h1", LeaderID: "h1", Term: 4, AppliedIndex: 40, CommitIndex: 40, State: "Leader",
		Replicas: []api.Replica{
			{ID: "h1", API: h1.srv.URL, Raft: "127.0.0.1:8301", State: "leader"},
			{ID: "h2", API: h2.srv.URL, Raft: "127.0.0.1:8302", State: "follower"},
		}}
	if broken {
		st.Replicas = append(st.Replicas, api.Replica{ID: "h3", Raft: "127.0.0.1:8303", State: "unreachable"})
	}
	h1.handle("GET /api/cluster", http.StatusOK, st)
	st2 := st
	st2.NodeID, st2.State, st2.AppliedIndex = "h2", "Follower", 39
	h2.handle("GET /api/cluster", http.StatusOK, st2)
	h1.handle("GET /api/nodes", http.StatusOK, []api.NodeView{{Node: fsm.Node{Hostname: "r1", URL: r1.srv.URL, Status: fsm.NodeOnline}, LastHeartbeat: &beat}})
	h1.handle("GET /api/tasks", http.StatusOK, []fsm.Task{})
	ok := func(name string) doctor.Check {
		return doctor.Check{Name: name, Status: doctor.StatusOK, Measured: "fine", Cause: ""}
	}
	fakeMember(h1, "/api/doctor", "h1", "host", true, func() []doctor.Check { return []doctor.Check{ok("raft")} })
	fakeMember(h2, "/api/doctor", "h2", "host", false, func() []doctor.Check {
		if broken {
			return []doctor.Check{ok("raft"), {Name: "probe raft h3", Status: doctor.StatusFail, Measured: "connect 127.0.0.1:8303: refused", Cause: "refused: nothing listening or a REJECT rule"}}
		}
		return []doctor.Check{ok("raft")}
	})
	fakeMember(r1, "/doctor", "r1", "runner", false, func() []doctor.Check {
		if broken {
			return []doctor.Check{{Name: "shared storage", Status: doctor.StatusFail, Measured: "probe file not found", Cause: "shared_dir is not the same storage"}}
		}
		return []doctor.Check{ok("shared storage")}
	})
	return h1, h2, r1
}

// lastDoctorRequest decodes the last doctor request (a POST; pings are
// GETs) that f received.
func lastDoctorRequest(t *testing.T, f *fakeHost, path string) doctor.Request {
	t.Helper()
	reqs := f.requests()
	for i := len(reqs) - 1; i >= 0; i-- {
		if reqs[i].Path == path && reqs[i].Method == http.MethodPost {
			var req doctor.Request
			if err := json.Unmarshal(reqs[i].Body, &req); err != nil {
				t.Fatalf("decode %s request: %v", path, err)
			}
			return req
		}
	}
	t.Fatalf("no POST %s", path)
	return doctor.Request{}
}

func hasTarget(req doctor.Request, name string, kind doctor.Kind, addr string) bool {
	for _, tg := range req.Targets {
		if tg.Name == name && tg.Kind == kind && (addr == "" || tg.Address == addr) {
			return true
		}
	}
	return false
}

func TestCLI_DoctorReportsFailuresAndExitsOne(t *testing.T) {
	h1, h2, r1 := doctorCluster(t, true)
	out, err := runDoctorCLI(t, "--host", h1.srv.URL, "doctor", "--token", doctorToken, "--probe-timeout", "500ms")
	var ec *exitCodeError
	if !errors.As(err, &ec) || ec.ExitCode() != 1 || !strings.Contains(err.Error(), "failed") {
		t.Fatalf("err = %v, want exit code 1\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if got := strings.Fields(lines[0]); strings.Join(got, " ") != "NODE CHECK STATUS MEASURED CAUSE" {
		t.Fatalf("header = %q", lines[0])
	}
	for _, want := range []string{
		"shared storage", "probe file not found", "shared_dir is not the same storage",
		"probe raft h3", "nothing listening or a REJECT rule",
		"not alive in gossip", "clock skew", "heartbeat", "raft leader", "versions", "raft lag",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// Rows are grouped by member in order; ok rows show no cause.
	order := []string{"cluster", "h1", "h2", "h3", "r1", "client"}
	idx := 0
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		if len(f) == 0 {
			break
		}
		for idx < len(order) && f[0] != order[idx] {
			idx++
		}
		if idx == len(order) {
			t.Fatalf("row %q out of member order %v", l, order)
		}
		if strings.Contains(l, " ok ") && !strings.HasSuffix(l, "-") {
			t.Errorf("ok row with a cause: %q", l)
		}
	}
	if last := lines[len(lines)-1]; !strings.HasPrefix(last, "6 members: ") || !strings.Contains(last, "fail") {
		t.Errorf("summary = %q", last)
	}

	// h1 wrote the probe; the others read it back, each given the paths it
	// opens.
	if req := lastDoctorRequest(t, h1, "/api/doctor"); req.ReadProbe != nil || !hasTarget(req, "runner api r1", doctor.KindHTTP, r1.srv.URL+"/doctor?ping=1") {
		t.Errorf("h1 request = %+v", req)
	}
	writes := 0
	for _, r := range h1.requests() {
		if r.Path == "/api/doctor" && bytes.Contains(r.Body, []byte(`"write_probe":true`)) {
			writes++
		}
	}
	if writes != 1 {
		t.Errorf("h1 got %d probe writes", writes)
	}
	req := lastDoctorRequest(t, h2, "/api/doctor")
	if req.ReadProbe == nil || req.ReadProbe.Writer != "h1" || !hasTarget(req, "raft h3", doctor.KindTCP, "127.0.0.1:8303") ||
		!hasTarget(req, "host api h1", doctor.KindHTTP, h1.srv.URL+"/api/doctor?ping=1") || !hasTarget(req, "gossip udp r1", doctor.KindUDPGossip, "127.0.0.1:7950") {
		t.Errorf("h2 request = %+v", req)
	}
	req = lastDoctorRequest(t, r1, "/doctor")
	if req.ReadProbe == nil || !hasTarget(req, "host api h2", doctor.KindHTTP, "") || !hasTarget(req, "gossip tcp h1", doctor.KindTCP, "127.0.0.1:7946") ||
		hasTarget(req, "raft h1", doctor.KindTCP, "") {
		t.Errorf("r1 request = %+v", req)
	}

	out, err = runDoctorCLI(t, "--host", h1.srv.URL, "-o", "json", "doctor", "--token", doctorToken)
	if !errors.As(err, &ec) || ec.ExitCode() != 1 {
		t.Fatalf("json: err = %v", err)
	}
	var res doctor.ClusterReport
	mustJSON(t, out, &res)
	if res.Summary.Fail < 3 || len(res.Members) != 6 || res.Members[0].Node != "cluster" || res.Members[5].Node != "client" {
		t.Fatalf("json = %+v", res)
	}
	for _, m := range res.Members {
		for _, c := range m.Checks {
			if c.Node != m.Node {
				t.Fatalf("check %+v under member %s", c, m.Node)
			}
		}
	}
}

func TestCLI_DoctorHealthyAndTokenSources(t *testing.T) {
	h1, _, _ := doctorCluster(t, false)
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(doctorToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := runDoctorCLI(t, "--host", h1.srv.URL, "doctor", "--token-file", tokenFile)
	if err != nil {
		t.Fatalf("healthy cluster: %v\n%s", err, out)
	}
	if !strings.Contains(out, "5 members: ") || !strings.Contains(out, " 0 warn, 0 fail") {
		t.Fatalf("healthy output:\n%s", out)
	}

	// The token from a config file; a wrong one is a token mismatch.
	cfg := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(cfg, []byte("[cluster]\ncluster_token = \"wrong\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err = runDoctorCLI(t, "--host", h1.srv.URL, "doctor", "--config", cfg)
	var ec *exitCodeError
	if !errors.As(err, &ec) || !strings.Contains(out, "cluster token mismatch") {
		t.Fatalf("wrong token: err %v\n%s", err, out)
	}
	if _, err := runDoctorCLI(t, "--host", h1.srv.URL, "doctor", "--token", "a", "--token-file", tokenFile); err == nil {
		t.Fatal("--token with --token-file accepted")
	}
}

func TestCLI_DoctorNoReplicaReachable(t *testing.T) {
	f := newFakeHost(t)
	url := f.srv.URL
	f.srv.Close()
	out, err := runDoctorCLI(t, "--host", url, "--timeout", "3s", "doctor", "--token", doctorToken, "--probe-timeout", "300ms")
	var ec *exitCodeError
	if !errors.As(err, &ec) || ec.ExitCode() != 1 {
		t.Fatalf("err = %v\n%s", err, out)
	}
	if !strings.Contains(out, "cluster api") || !strings.Contains(out, "refused") || !strings.Contains(out, "client") {
		t.Fatalf("output:\n%s", out)
	}
}

func TestCLI_DoctorLocal(t *testing.T) {
	dir := t.TempDir()
	shared := filepath.Join(dir, "shared")
	if err := os.MkdirAll(filepath.Join(shared, "task_outputs"), 0o755); err != nil {
		t.Fatal(err)
	}
	// task_errors is a file where the folder should be.
	if err := os.WriteFile(filepath.Join(shared, "task_errors"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "config.toml")
	text := "[network]\nhost_bind_ip = \"127.0.0.1\"\nhost_reachable_address = \"127.0.0.1\"\nrunner_port = 0\n" +
		"[paths]\nshared_dir = \"" + shared + "\"\nlocal_temp_dir = \"" + filepath.Join(dir, "tmp") + "\"\n" +
		"[cluster]\ndata_dir = \"" + filepath.Join(dir, "data") + "\"\ngossip_port = 0\n"
	if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := runDoctorCLI(t, "-o", "json", "doctor", "--local", "--config", cfg, "--role", "runner")
	var ec *exitCodeError
	if !errors.As(err, &ec) {
		t.Fatalf("err = %v\n%s", err, out)
	}
	var res doctor.ClusterReport
	mustJSON(t, out, &res)
	if len(res.Members) != 1 || res.Members[0].Role != "runner" {
		t.Fatalf("members = %+v", res.Members)
	}
	found := false
	for _, c := range res.Members[0].Checks {
		if c.Name == "path task_errors" {
			found = c.Status == doctor.StatusFail && strings.Contains(c.Measured, "not a directory")
		}
		if c.Name == "path task_outputs" && c.Status != doctor.StatusOK {
			t.Errorf("task_outputs = %+v", c)
		}
	}
	if !found {
		t.Fatalf("task_errors as a file not reported:\n%s", out)
	}
	// A host that has never run has no Raft store yet: no alarm.
	out, _ = runDoctorCLI(t, "-o", "json", "doctor", "--local", "--config", cfg, "--role", "host")
	mustJSON(t, out, &res)
	var store []doctor.Check
	for _, c := range res.Members[0].Checks {
		if c.Name == "raft store" {
			store = append(store, c)
		}
	}
	if len(store) != 1 || store[0].Status != doctor.StatusOK || !strings.Contains(store[0].Measured, "none yet") {
		t.Errorf("raft store of a new host = %+v", store)
	}
	if _, err := runDoctorCLI(t, "doctor", "--local", "--config", cfg, "--role", "db"); err == nil || !strings.Contains(err.Error(), "--role") {
		t.Fatalf("bad role: %v", err)
	}
	bad := filepath.Join(dir, "bad.toml")
	os.WriteFile(bad, []byte("[network]\nhost_prot = 1\n"), 0o600) //nolint:errcheck // checked by the run below
	out, err = runDoctorCLI(t, "doctor", "--local", "--config", bad)
	if !errors.As(err, &ec) || !strings.Contains(out, "host_prot") {
		t.Fatalf("bad config: %v\n%s", err, out)
	}
}

// TestCLI_DoctorLocalToken: doctor --local fails a node whose config has no
// cluster token (it would refuse to start), warns about insecure_no_token,
// and passes a token without ever printing it.
func TestCLI_DoctorLocalToken(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, cluster string
		status        doctor.Status
		measured      string
	}{
		{"none", "", doctor.StatusFail, "no cluster token"},
		{"insecure", "insecure_no_token = true\n", doctor.StatusWarn, "insecure: no cluster token"},
		{"token", "cluster_token = \"s3cret-tok\"\n", doctor.StatusOK, "set"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := filepath.Join(dir, tc.name+".toml")
			text := "[network]\nhost_bind_ip = \"127.0.0.1\"\nhost_reachable_address = \"127.0.0.1\"\nrunner_port = 0\n" +
				"[paths]\nshared_dir = \"" + filepath.Join(dir, "shared") + "\"\nlocal_temp_dir = \"" + filepath.Join(dir, "tmp") + "\"\n" +
				"[cluster]\ngossip_port = 0\n" + tc.cluster
			if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
				t.Fatal(err)
			}
			out, _ := runDoctorCLI(t, "-o", "json", "doctor", "--local", "--config", cfg, "--role", "runner")
			var res doctor.ClusterReport
			mustJSON(t, out, &res)
			var got []doctor.Check
			for _, c := range res.Members[0].Checks {
				if c.Name == "cluster token" {
					got = append(got, c)
				}
			}
			if len(got) != 1 || got[0].Status != tc.status || got[0].Measured != tc.measured && !strings.HasPrefix(got[0].Measured, tc.measured) {
				t.Fatalf("cluster token checks = %+v; want one %s %q", got, tc.status, tc.measured)
			}
			if strings.Contains(out, "s3cret-tok") {
				t.Fatalf("the token appears in the report:\n%s", out)
			}
		})
	}
}
