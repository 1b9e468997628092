package runner_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster"
	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/ops/doctor"
	"github.com/hakuriver/hakuriver-ha/runner"
	"github.com/hakuriver/hakuriver-ha/runner/executor/native"
	"github.com/hakuriver/hakuriver-ha/runner/statedir"
)

// startDoctorRunner starts runner name against h with its own token and
// shared_dir; tasks are never run, so no shim is needed.
func startDoctorRunner(t *testing.T, h *cluster.Host, name, token, shared string) *runner.Agent {
	t.Helper()
	tmp := t.TempDir()
	sd, err := statedir.Open(filepath.Join(t.TempDir(), "state"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sd.Close() })
	state := sd.Path()
	nc := native.DefaultConfig()
	nc.StateDir = filepath.Join(state, "tasks")
	nc.ShimCommand = []string{"/bin/false"}
	nc.DisableCgroups = true
	ex, err := native.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	rc := runner.DefaultConfig()
	rc.Name, rc.BindAddr, rc.AdvertiseAddr, rc.Port, rc.GossipPort = name, "127.0.0.1", "127.0.0.1", 0, 0
	rc.Join, rc.Token, rc.SharedDir, rc.LocalTempDir = []string{h.GossipAddr()}, token, shared, tmp
	rc.StateDir = state
	rc.HeartbeatInterval, rc.FastGossip, rc.Native = 200*time.Millisecond, true, ex
	rc.Logger = logger(t)
	a, err := runner.Start(context.Background(), rc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(context.Background()) })
	return a
}

// doctorAt calls a member's doctor endpoint with token.
func doctorAt(t *testing.T, base, path, token string, req doctor.Request) (doctor.Report, error) {
	t.Helper()
	cc := api.DefaultClientConfig()
	cc.Hosts, cc.Token = []string{base}, token
	c, err := api.NewClient(cc)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var rep doctor.Report
	_, err = c.Do(ctx, "POST", path, req, &rep)
	return rep, err
}

func findCheck(t *testing.T, rep doctor.Report, name string) doctor.Check {
	t.Helper()
	for _, c := range rep.Checks {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("%s has no check %q: %+v", rep.Node, name, rep.Checks)
	return doctor.Check{}
}

// TestDoctorFindsWrongSharedDirAndToken runs a real host replica and two
// runners in-process: one whose shared_dir is another folder, one with
// another cluster token. The doctor endpoints name both problems.
func TestDoctorFindsWrongSharedDirAndToken(t *testing.T) {
	const token = "doctor-token"
	hc := cluster.DefaultConfig()
	hc.NodeID, hc.DataDir, hc.SharedDir = "h1", t.TempDir(), t.TempDir()
	hc.APIPort, hc.RaftPort, hc.GossipPort = 0, 0, 0
	hc.FastGossip, hc.ClusterToken = true, token
	hc.Logger = logger(t)
	h, err := cluster.StartHost(context.Background(), hc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close(context.Background()) })
	elsewhere := startDoctorRunner(t, h, "r-elsewhere", token, t.TempDir())
	wrongTok := startDoctorRunner(t, h, "r-wrong-token", "not-the-token", hc.SharedDir)
	deadline := time.Now().Add(15 * time.Second)
	for !elsewhere.Registered() && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if !elsewhere.Registered() {
		t.Fatal("runner never registered")
	}

	hostRep, err := doctorAt(t, h.APIURL(), "/api/doctor", token, doctor.Request{WriteProbe: true, TimeoutMS: 1000, Targets: []doctor.Target{
		{Name: "runner api r-elsewhere", Kind: doctor.KindHTTP, Address: elsewhere.URL() + "/doctor?ping=1"},
		{Name: "runner api r-wrong-token", Kind: doctor.KindHTTP, Address: wrongTok.URL() + "/doctor?ping=1"},
	}})
	if err != nil || hostRep.Probe == nil {
		t.Fatalf("host doctor: %+v %v", hostRep, err)
	}
	if c := findCheck(t, hostRep, "probe runner api r-elsewhere"); c.Status != doctor.StatusOK {
		t.Errorf("host→runner = %+v", c)
	}
	if c := findCheck(t, hostRep, "probe runner api r-wrong-token"); c.Status != doctor.StatusFail || !strings.Contains(c.Cause, "cluster token mismatch") {
		t.Errorf("host→runner with another token = %+v", c)
	}

	rep, err := doctorAt(t, elsewhere.URL(), "/doctor", token, doctor.Request{ReadProbe: hostRep.Probe, Targets: []doctor.Target{
		{Name: "host api h1", Kind: doctor.KindHTTP, Address: h.APIURL() + "/api/doctor?ping=1"},
	}})
	if err != nil || rep.Node != "r-elsewhere" || rep.Role != "runner" {
		t.Fatalf("runner doctor: %+v %v", rep, err)
	}
	if c := findCheck(t, rep, "shared storage"); c.Status != doctor.StatusFail || !strings.Contains(c.Cause, "not the same storage") {
		t.Errorf("shared storage on another folder = %+v", c)
	}
	for _, name := range []string{"probe host api h1", "registration", "path task_outputs", "path local_temp_dir", statedir.CheckName} {
		if c := findCheck(t, rep, name); c.Status != doctor.StatusOK {
			t.Errorf("%s = %+v", name, c)
		}
	}

	// The runner with another token refuses the doctor's own call, and its
	// probe of the host API is refused with 401 as well.
	if _, err := doctorAt(t, wrongTok.URL(), "/doctor", token, doctor.Request{}); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("doctor call with the cluster's token to the runner with another: %v", err)
	}
	rep, err = doctorAt(t, wrongTok.URL(), "/doctor", "not-the-token", doctor.Request{ReadProbe: hostRep.Probe, Targets: []doctor.Target{
		{Name: "host api h1", Kind: doctor.KindHTTP, Address: h.APIURL() + "/api/doctor?ping=1"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if c := findCheck(t, rep, "probe host api h1"); c.Status != doctor.StatusFail || !strings.Contains(c.Cause, "cluster token mismatch") {
		t.Errorf("runner→host with another token = %+v", c)
	}
	if c := findCheck(t, rep, "shared storage"); c.Status != doctor.StatusOK {
		t.Errorf("same shared_dir = %+v", c)
	}
	if c := findCheck(t, rep, "registration"); c.Status != doctor.StatusFail {
		t.Errorf("registration with another token = %+v", c)
	}
}
