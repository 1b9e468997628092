package doctor

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestSkewCheck(t *testing.T) {
	for _, tc := range []struct {
		skew time.Duration
		want Status
	}{
		{0, StatusOK},
		{SkewWarn, StatusOK},
		{-SkewWarn - time.Millisecond, StatusWarn},
		{SkewFail, StatusWarn},
		{SkewFail + time.Millisecond, StatusFail},
		{-10 * time.Second, StatusFail},
	} {
		c := SkewCheck(tc.skew, 3*time.Millisecond)
		if c.Status != tc.want || c.Name != "clock skew" || (c.Status == StatusOK) != (c.Cause == "") {
			t.Errorf("SkewCheck(%s) = %+v, want %s", tc.skew, c, tc.want)
		}
		if !strings.Contains(c.Measured, "±3.0ms") {
			t.Errorf("SkewCheck(%s).Measured = %q", tc.skew, c.Measured)
		}
	}
}

func TestLagCheck(t *testing.T) {
	for _, tc := range []struct {
		applied, commit uint64
		want            Status
		measured        string
	}{
		{40, 40, StatusOK, "follower, applied 40, 0 behind commit 40"},
		{50, 40, StatusOK, "follower, applied 50, 0 behind commit 40"},
		{40, 40 + RaftLagWarn, StatusOK, "1000 behind"},
		{40, 41 + RaftLagWarn, StatusWarn, "1001 behind"},
	} {
		c := LagCheck(ReplicaStatus{State: "Follower", AppliedIndex: tc.applied}, tc.commit)
		if c.Status != tc.want || !strings.Contains(c.Measured, tc.measured) {
			t.Errorf("LagCheck(%d, %d) = %+v, want %s %q", tc.applied, tc.commit, c, tc.want, tc.measured)
		}
	}
}

func TestHeartbeatCheck(t *testing.T) {
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	ago := func(d time.Duration) string { return now.Add(-d).Format(time.RFC3339Nano) }
	for _, tc := range []struct {
		name     string
		r        Runner
		want     Status
		measured string
	}{
		{"fresh", Runner{Status: "online", LastHeartbeat: ago(time.Second)}, StatusOK, "online, last heartbeat 1.0s ago (every 5s)"},
		{"late", Runner{Status: "online", LastHeartbeat: ago(16 * time.Second)}, StatusWarn, "16.0s ago"},
		{"future is age 0", Runner{Status: "online", LastHeartbeat: now.Add(time.Minute).Format(time.RFC3339Nano)}, StatusOK, "0.0s ago"},
		{"none yet", Runner{Status: "online"}, StatusWarn, "online, no heartbeat seen by the leader"},
		{"offline", Runner{Status: "offline", Offline: true, LastHeartbeat: ago(time.Hour)}, StatusFail, "3600.0s ago"},
		{"offline, none", Runner{Status: "offline", Offline: true}, StatusFail, "no heartbeat"},
		{"unparsable", Runner{Status: "online", LastHeartbeat: "yesterday"}, StatusOK, "last heartbeat yesterday"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := HeartbeatCheck(tc.r, now, 5*time.Second)
			if c.Status != tc.want || !strings.Contains(c.Measured, tc.measured) {
				t.Fatalf("HeartbeatCheck = %+v, want %s %q", c, tc.want, tc.measured)
			}
		})
	}
}

func TestAgreement(t *testing.T) {
	for _, tc := range []struct {
		name     string
		by       map[string][]string
		want     Status
		measured string
	}{
		{"none", map[string][]string{}, StatusWarn, "no member answered"},
		{"same", map[string][]string{"1.0": {"h1", "h2"}}, StatusOK, "1.0 on all 2 members"},
		{"empty value", map[string][]string{"": {"h1"}}, StatusOK, "- on all 1 members"},
		{"mixed", map[string][]string{"1.1": {"h2"}, "1.0": {"h1", "r1"}}, StatusWarn, "1.0 on h1,r1; 1.1 on h2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Agreement("versions", tc.by, "upgrade")
			if c.Status != tc.want || c.Measured != tc.measured {
				t.Fatalf("Agreement = %+v, want %s %q", c, tc.want, tc.measured)
			}
		})
	}
}

func TestLeaderCheck(t *testing.T) {
	st := ReplicaStatus{NodeID: "h1", LeaderID: "h1", Term: 4}
	for _, tc := range []struct {
		name     string
		st       ReplicaStatus
		views    map[string]string // member → the leader it sees
		want     Status
		measured string
	}{
		{"agree", st, map[string]string{"h1": "h1", "h2": "h1"}, StatusOK, "h1 (term 4)"},
		{"no leader", ReplicaStatus{NodeID: "h1", Term: 9}, nil, StatusFail, "none known by h1 (term 9)"},
		{"disagree", st, map[string]string{"h1": "h1", "h2": "h3", "h3": ""}, StatusWarn, "h1 (term 4); but h2 sees h3, h3 sees -"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var members []*Member
			for _, id := range []string{"h1", "h2", "h3"} {
				m := &Member{ID: id, Role: RoleHost}
				if l, ok := tc.views[id]; ok {
					m.Status = &ReplicaStatus{LeaderID: l}
				}
				members = append(members, m)
			}
			c := LeaderCheck(tc.st, members)
			if c.Status != tc.want || c.Measured != tc.measured {
				t.Fatalf("LeaderCheck = %+v, want %s %q", c, tc.want, tc.measured)
			}
		})
	}
}

// TestCompare: only reached members are compared; each gets its skew check
// and each replica its lag against the highest commit index of any replica.
func TestCompare(t *testing.T) {
	h1 := &Member{ID: "h1", Role: RoleHost, Reached: true, Status: &ReplicaStatus{State: "Leader", AppliedIndex: 5000, CommitIndex: 5000},
		Report: Report{Version: "1.0", SharedDir: "/shared", Resolved: map[string][]string{"db": {"10.0.0.2", "10.0.0.1"}}}}
	h2 := &Member{ID: "h2", Role: RoleHost, Reached: true, Skew: 2 * time.Second, Status: &ReplicaStatus{State: "Follower", AppliedIndex: 10},
		Report: Report{Version: "1.1", SharedDir: "/shared", Resolved: map[string][]string{"db": {"10.0.0.1", "10.0.0.2"}}}}
	r1 := &Member{ID: "r1", Role: RoleRunner, Reached: true, Skew: -6 * time.Second,
		Report: Report{Version: "1.0", SharedDir: "/mnt/shared", Resolved: map[string][]string{"db": {"10.0.0.9"}}}}
	r2 := &Member{ID: "r2", Role: RoleRunner, Report: Report{Version: "0.9"}}
	got := Compare([]*Member{h1, h2, r1, r2})
	want := []struct {
		name     string
		status   Status
		measured string
	}{
		{"versions", StatusWarn, "1.0 on h1,r1; 1.1 on h2"},
		{"shared_dir paths", StatusWarn, "/mnt/shared on r1; /shared on h1,h2"},
		{"resolve db", StatusWarn, "10.0.0.1,10.0.0.2 on h1,h2; 10.0.0.9 on r1"},
	}
	if len(got) != len(want) {
		t.Fatalf("Compare = %+v", got)
	}
	for i, w := range want {
		if got[i].Name != w.name || got[i].Status != w.status || got[i].Measured != w.measured {
			t.Errorf("check %d = %+v, want %+v", i, got[i], w)
		}
	}
	statuses := func(m *Member) map[string]Status {
		out := map[string]Status{}
		for _, c := range m.Report.Checks {
			out[c.Name] = c.Status
		}
		return out
	}
	for _, tc := range []struct {
		m    *Member
		want map[string]Status
	}{
		{h1, map[string]Status{"clock skew": StatusOK, "raft lag": StatusOK}},
		{h2, map[string]Status{"clock skew": StatusWarn, "raft lag": StatusWarn}},
		{r1, map[string]Status{"clock skew": StatusFail}},
		{r2, map[string]Status{}},
	} {
		if got := statuses(tc.m); len(got) != len(tc.want) || got["clock skew"] != tc.want["clock skew"] || got["raft lag"] != tc.want["raft lag"] {
			t.Errorf("%s checks = %v, want %v", tc.m.ID, got, tc.want)
		}
	}
}

// TestAggregate: the cluster pseudo-member comes first and client last; a
// failed runner list is a cluster check; heartbeats use the replicas'
// period and the leader's clock.
func TestAggregate(t *testing.T) {
	at := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	members := MembersOf([]Replica{{ID: "h2"}, {ID: "h1"}}, []Runner{{Name: "r1"}})
	for _, m := range members {
		m.Reached = true
	}
	members[0].Status = &ReplicaStatus{LeaderID: "h1", State: "leader", HeartbeatInterval: 2 * time.Second}
	members[0].Skew = 10 * time.Second // the leader's clock runs 10s ahead
	v := View{
		Status:          ReplicaStatus{NodeID: "h1", LeaderID: "h1"},
		Runners:         []Runner{{Name: "r1", Status: "online", LastHeartbeat: at.Add(5 * time.Second).Format(time.RFC3339Nano)}},
		RunnersAt:       at,
		RunnersErr:      errors.New("connection refused"),
		HeartbeatPeriod: time.Minute,
	}
	reps := Aggregate(v, members, Report{Node: ClientNode, Role: ClientNode})
	var order []string
	for _, r := range reps {
		order = append(order, r.Node)
	}
	if strings.Join(order, " ") != "cluster h1 h2 r1 client" {
		t.Fatalf("order = %v", order)
	}
	if c := FindCheck(reps[0].Checks, "runner list"); c.Status != StatusFail || !strings.Contains(c.Measured, "GET /api/nodes") {
		t.Errorf("runner list = %+v", c)
	}
	if c := FindCheck(reps[3].Checks, "heartbeat"); c.Status != StatusOK || c.Measured != "online, last heartbeat 5.0s ago (every 2s)" {
		t.Errorf("heartbeat = %+v", c)
	}
	sum := Summarise(reps, at, at.Add(1500*time.Millisecond))
	if sum.ElapsedMS != 1500 || sum.Time != at.Add(1500*time.Millisecond) || sum.Summary.Fail == 0 {
		t.Fatalf("Summarise = %+v", sum)
	}
	for _, m := range sum.Members {
		if m.Checks == nil {
			t.Fatalf("member %s has nil checks", m.Node)
		}
		for _, c := range m.Checks {
			if c.Node != m.Node {
				t.Fatalf("check %+v under member %s", c, m.Node)
			}
		}
	}
}
