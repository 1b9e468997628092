package cluster

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/ops/doctor"
)

// startTokenHost starts one in-process replica that requires token.
func startTokenHost(t *testing.T, token string) *Host {
	t.Helper()
	cfg := DefaultConfig()
	cfg.NodeID = "h1"
	cfg.DataDir, cfg.SharedDir = t.TempDir(), t.TempDir()
	cfg.APIPort, cfg.RaftPort, cfg.GossipPort = 0, 0, 0
	cfg.FastGossip = true
	cfg.ClusterToken = token
	cfg.Version = "9.9.9"
	cfg.Logger = testLogger(t)
	h, err := StartHost(context.Background(), cfg)
	if err != nil {
		t.Fatalf("start host: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		h.Close(ctx)
	})
	waitFor(t, 15*time.Second, h.IsLeader)
	return h
}

// doctorCall sends a doctor request with token ("" sends none).
func doctorCall(t *testing.T, method, u, token string, body any) (int, doctor.Report, string) {
	t.Helper()
	var rd *strings.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = strings.NewReader(string(b))
	} else {
		rd = strings.NewReader("")
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set(api.TokenHeader, token)
	}
	c := &http.Client{Timeout: 20 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	var raw json.RawMessage
	json.NewDecoder(resp.Body).Decode(&raw) //nolint:errcheck // checked through the report below
	var rep doctor.Report
	json.Unmarshal(raw, &rep) //nolint:errcheck // an error answer has no report
	return resp.StatusCode, rep, string(raw)
}

func checksByName(rep doctor.Report) map[string]doctor.Check {
	out := map[string]doctor.Check{}
	for _, c := range rep.Checks {
		out[c.Name] = c
	}
	return out
}

func TestDoctorEndpoint(t *testing.T) {
	const token = "doctor-secret"
	h := startTokenHost(t, token)

	for _, tok := range []string{"", "wrong"} {
		status, _, body := doctorCall(t, http.MethodGet, h.APIURL()+"/api/doctor", tok, nil)
		if status != http.StatusUnauthorized || !strings.Contains(body, "cluster token") {
			t.Fatalf("token %q: %d %s", tok, status, body)
		}
		if strings.Contains(body, token) {
			t.Fatalf("answer leaks the token: %s", body)
		}
	}

	status, rep, body := doctorCall(t, http.MethodGet, h.APIURL()+"/api/doctor", token, nil)
	if status != http.StatusOK || rep.Node != "h1" || rep.Role != "host" || rep.Version != "9.9.9" || rep.Time.IsZero() {
		t.Fatalf("GET /api/doctor: %d %s", status, body)
	}
	if strings.Contains(body, token) {
		t.Fatalf("report leaks the token: %s", body)
	}
	byName := checksByName(rep)
	for _, name := range []string{"raft", "gossip", "advertise address", "path data_dir", "path shared_dir", "disk data_dir"} {
		if c := byName[name]; c.Status != doctor.StatusOK || c.Node != "h1" {
			t.Errorf("%s = %+v", name, c)
		}
	}
	if c := byName["raft"]; !strings.Contains(c.Measured, "leader h1") {
		t.Errorf("raft = %+v", c)
	}
	_, apiPort, _ := net.SplitHostPort(strings.TrimPrefix(h.APIURL(), "http://"))
	if c := byName["port api "+apiPort+"/tcp"]; c.Status != doctor.StatusOK || !strings.Contains(c.Measured, "held by this process") {
		t.Errorf("api port = %+v (all %+v)", c, rep.Checks)
	}
	if rep.Endpoints["api"] != h.APIURL() || rep.Endpoints["raft"] != h.RaftAddr() || len(rep.Peers) != 1 {
		t.Errorf("endpoints %v, peers %+v", rep.Endpoints, rep.Peers)
	}

	// Probes opened from the replica, with its own token, and a storage
	// probe written, then read back.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	req := doctor.Request{WriteProbe: true, TimeoutMS: 1000, Targets: []doctor.Target{
		{Name: "self api", Kind: doctor.KindHTTP, Address: h.APIURL() + "/api/doctor?ping=1"},
		{Name: "nobody", Kind: doctor.KindTCP, Address: closed},
	}}
	status, rep, body = doctorCall(t, http.MethodPost, h.APIURL()+"/api/doctor", token, req)
	if status != http.StatusOK || rep.Probe == nil || rep.Probe.Writer != "h1" {
		t.Fatalf("POST /api/doctor: %d %s", status, body)
	}
	byName = checksByName(rep)
	if c := byName["probe self api"]; c.Status != doctor.StatusOK || !strings.Contains(c.Measured, "HTTP 200") {
		t.Errorf("self api probe = %+v", c)
	}
	if c := byName["probe nobody"]; c.Status != doctor.StatusFail || !strings.Contains(c.Measured, "refused") {
		t.Errorf("closed port probe = %+v", c)
	}
	q := url.Values{"probe_file": {rep.Probe.Name}, "probe_token": {rep.Probe.Token}, "probe_writer": {"h1"}}
	status, rep, body = doctorCall(t, http.MethodGet, h.APIURL()+"/doctor?"+q.Encode(), token, nil)
	if c := checksByName(rep)["shared storage"]; status != http.StatusOK || c.Status != doctor.StatusOK {
		t.Fatalf("read back: %d %+v %s", status, c, body)
	}

	// A ping is cheap and carries no checks; bad input is a 400; other
	// methods a 405.
	if status, rep, body = doctorCall(t, http.MethodGet, h.APIURL()+"/api/doctor?ping=1", token, nil); status != http.StatusOK || len(rep.Checks) != 0 {
		t.Fatalf("ping: %d %s", status, body)
	}
	if status, _, body = doctorCall(t, http.MethodGet, h.APIURL()+"/api/doctor?target=icmp,x,y", token, nil); status != http.StatusBadRequest || !strings.Contains(body, "kind") {
		t.Fatalf("bad target: %d %s", status, body)
	}
	if status, _, _ = doctorCall(t, http.MethodDelete, h.APIURL()+"/api/doctor", token, nil); status != http.StatusMethodNotAllowed {
		t.Fatalf("DELETE: %d", status)
	}
}
