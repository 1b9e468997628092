package doctor

import (
	"strings"
	"testing"
	"time"
)

func TestMembersOfAndGossipOnly(t *testing.T) {
	members := MembersOf(
		[]Replica{{ID: "h2", API: "http://h2:8000", Raft: "h2:8301"}, {ID: "h1", API: "http://h1:8000", Raft: "h1:8301"}},
		[]Runner{{Name: "r2", URL: "http://r2:8001", Status: "online"}, {Name: "r1", Status: "offline"}})
	var got []string
	for _, m := range members {
		got = append(got, m.Role+"/"+m.ID+" "+m.Path)
		if m.Report.Node != m.ID || m.Report.Role != m.Role {
			t.Errorf("report of %s = %+v", m.ID, m.Report)
		}
	}
	if strings.Join(got, ", ") != "host/h1 /api/doctor, host/h2 /api/doctor, runner/r1 /doctor, runner/r2 /doctor" {
		t.Fatalf("members = %v", got)
	}
	extra := GossipOnly(members, []Peer{
		{Role: "host", ID: "h1"}, {Role: "host", ID: "h3", API: "http://h3:8000"}, {Role: "runner", ID: "r3"},
		{Role: "client", ID: "c"}, {Role: "runner", ID: "r1"},
	})
	if len(extra) != 2 || extra[0].ID != "h3" || extra[0].Path != HostPath || extra[1].ID != "r3" || extra[1].Path != RunnerPath {
		t.Fatalf("gossip only = %+v", extra)
	}
	for _, m := range extra {
		if c := FindCheck(m.Report.Checks, "membership"); c.Status != StatusFail || c.Measured != m.State || c.Cause == "" {
			t.Errorf("%s membership = %+v", m.ID, c)
		}
	}
}

func TestFindCheck(t *testing.T) {
	checks := []Check{{Name: "a", Status: StatusOK}, {Name: "b", Status: StatusWarn}}
	if c := FindCheck(checks, "b"); c.Status != StatusWarn {
		t.Fatalf("FindCheck(b) = %+v", c)
	}
	if c := FindCheck(checks, "c"); c.Status != StatusFail || c.Measured != "not reported" {
		t.Fatalf("FindCheck(c) = %+v", c)
	}
}

// TestPlan: each member is given exactly the paths it opens in production.
func TestPlan(t *testing.T) {
	members := MembersOf(
		[]Replica{{ID: "h1", API: "http://10.0.0.1:8000", Raft: "10.0.0.1:8301"}, {ID: "h2", Raft: "10.0.0.2:8301"}},
		[]Runner{{Name: "r1", URL: "http://10.0.1.1:8001"}})
	peers := []Peer{{Role: "host", ID: "h1", Gossip: "10.0.0.1:7946"}, {Role: "runner", ID: "r1", Gossip: "10.0.1.1:7946"}}
	vps := []VPSPort{{TaskID: 7, Node: "r1", SSHPort: 2222}, {TaskID: 8, Node: "gone", SSHPort: 2223}}
	probe := &ProbeFile{Name: "p", Writer: "h1"}
	Plan(members, peers, vps, probe, 1500*time.Millisecond)
	names := func(m *Member) string {
		var out []string
		for _, tg := range m.Req.Targets {
			out = append(out, string(tg.Kind)+" "+tg.Name+" "+tg.Address)
		}
		return strings.Join(out, "\n")
	}
	want := map[string]string{
		"h1": "tcp raft h2 10.0.0.2:8301\nhttp runner api r1 http://10.0.1.1:8001/doctor?ping=1\n" +
			"tcp gossip tcp r1 10.0.1.1:7946\nudp-gossip gossip udp r1 10.0.1.1:7946\ntcp vps 7 ssh on r1 10.0.1.1:2222",
		"h2": "http host api h1 http://10.0.0.1:8000/api/doctor?ping=1\ntcp raft h1 10.0.0.1:8301\n" +
			"http runner api r1 http://10.0.1.1:8001/doctor?ping=1\n" +
			"tcp gossip tcp h1 10.0.0.1:7946\nudp-gossip gossip udp h1 10.0.0.1:7946\n" +
			"tcp gossip tcp r1 10.0.1.1:7946\nudp-gossip gossip udp r1 10.0.1.1:7946\ntcp vps 7 ssh on r1 10.0.1.1:2222",
		"r1": "http host api h1 http://10.0.0.1:8000/api/doctor?ping=1\n" +
			"tcp gossip tcp h1 10.0.0.1:7946\nudp-gossip gossip udp h1 10.0.0.1:7946",
	}
	for _, m := range members {
		if got := names(m); got != want[m.ID] {
			t.Errorf("%s targets:\n%s\nwant:\n%s", m.ID, got, want[m.ID])
		}
		if m.Req.TimeoutMS != 1500 {
			t.Errorf("%s timeout = %d", m.ID, m.Req.TimeoutMS)
		}
		if reads := m.Req.ReadProbe != nil; reads != (m.ID != "h1") {
			t.Errorf("%s reads the probe: %v", m.ID, reads)
		}
	}
}

// TestRecord: the skew is the member's clock plus half the round trip left
// after its own work, against the time of the answer.
func TestRecord(t *testing.T) {
	sent := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	received := sent.Add(100 * time.Millisecond)
	m := &Member{ID: "r1", Role: RoleRunner, Report: Report{Checks: []Check{{Name: "membership"}}}, Extra: []Check{{Name: "write"}}}
	// The member worked 40ms; its clock read 3s ahead at the end.
	m.Record(Report{Node: "runner-1", Time: received.Add(3*time.Second - 30*time.Millisecond), ElapsedMS: 40,
		Checks: []Check{{Name: "disk"}}}, sent, received)
	if !m.Reached || m.Report.Node != "r1" || m.Report.Role != RoleRunner {
		t.Fatalf("report = %+v", m.Report)
	}
	if m.SkewErr != 30*time.Millisecond || m.Skew != 3*time.Second {
		t.Fatalf("skew = %s ± %s, want 3s ± 30ms", m.Skew, m.SkewErr)
	}
	var names []string
	for _, c := range m.Report.Checks {
		names = append(names, c.Name)
	}
	if strings.Join(names, ",") != "membership,disk,write" {
		t.Fatalf("checks = %v", names)
	}

	u := &Member{ID: "r2", Role: RoleRunner, State: "", Extra: []Check{{Name: "write"}}}
	u.Unreached(NoAddressCheck(u))
	if len(u.Report.Checks) != 2 || u.Report.Checks[1].Name != "write" || u.Reached ||
		u.Report.Checks[0].Measured != "registered without an API address (state -)" {
		t.Fatalf("unreached = %+v", u.Report.Checks)
	}
}

func TestClientTargets(t *testing.T) {
	members := MembersOf([]Replica{{ID: "h1", API: "http://h1:8000"}, {ID: "h2"}, {ID: "h3", API: "http://h3:8000"}}, []Runner{{Name: "r1", URL: "http://r1:8001"}})
	members[0].Report.Endpoints = map[string]string{"ssh_proxy": "10.0.0.1:8002"}
	var api []string
	for _, tg := range APITargets(members) {
		api = append(api, tg.Name+" "+tg.Address)
	}
	if strings.Join(api, "; ") != "host api h1 http://h1:8000/api/doctor?ping=1; host api h3 http://h3:8000/api/doctor?ping=1" {
		t.Fatalf("api targets = %v", api)
	}
	peers := []Peer{{Role: "host", ID: "h1", SSHProxy: "h1:8002"}, {Role: "host", ID: "h2", SSHProxy: "h2:8002"}, {Role: "runner", ID: "r1", SSHProxy: "x"}}
	var ssh []string
	for _, tg := range SSHProxyTargets(members, peers) {
		ssh = append(ssh, tg.Name+" "+tg.Address)
	}
	if strings.Join(ssh, "; ") != "ssh proxy h1 10.0.0.1:8002; ssh proxy h2 h2:8002" {
		t.Fatalf("ssh targets = %v", ssh)
	}
}
