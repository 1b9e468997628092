package main

import (
	"bytes"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/fsm"
)

func TestCLI_NodeList(t *testing.T) {
	f := newFakeHost(t)
	beat := time.Now().Add(-3500 * time.Millisecond).UTC().Format(time.RFC3339Nano)
	drainedAt := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	nodes := []api.NodeView{
		{Node: fsm.Node{Hostname: "node1", URL: "http://10.0.0.1:8001", TotalCores: 16, MemoryTotalBytes: 16 << 30, Status: fsm.NodeOnline,
			CgroupsLimited: true, GPUInfo: []fsm.GPUInfo{{GPUID: 0}, {GPUID: 1}}},
			State: api.NodeStateMixed, CoresInUse: 4, MemoryInUseBytes: 1288490189, // 1.2GiB
			LastHeartbeat: &beat, CPUPercent: ptr(37.25), MemoryPercent: ptr(50.0)},
		{Node: fsm.Node{Hostname: "node2", URL: "http://10.0.0.2:8001", TotalCores: 8, MemoryTotalBytes: 32 << 30, Status: fsm.NodeOffline, Drained: true,
			DrainReason: "replacing a disk", DrainedBy: "alice", DrainedAt: &drainedAt},
			// The leader keeps an offline node's last live figure: stale, not shown.
			CPUPercent: ptr(88.0)},
		{Node: fsm.Node{Hostname: "node3", TotalCores: 4, MemoryTotalBytes: 8 << 30, Status: fsm.NodeOnline}},
	}
	f.handle("GET /api/nodes", http.StatusOK, nodes)
	out, _, err := runCLI(t, "--host", f.srv.URL, "node", "list")
	if err != nil {
		t.Fatalf("node list: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 6 {
		t.Fatalf("want header, 3 rows, a drain reason and a note:\n%s", out)
	}
	for _, col := range []string{"HOSTNAME", "STATE", "CORES", "MEMORY", "CPU%", "GPUS", "LAST HEARTBEAT", "LIMITS"} {
		if !strings.Contains(lines[0], col) {
			t.Errorf("header %q lacks %s", lines[0], col)
		}
	}
	// Live figures.
	if got := strings.Fields(lines[1]); len(got) != 9 ||
		strings.Join(got[:6], " ") != "node1 mixed 4/16 1.2G/16G 37.2 2" ||
		!regexp.MustCompile(`^[34]s$`).MatchString(got[6]) || got[7] != "ago" || got[8] != "cgroups" {
		t.Errorf("row = %q", lines[1])
	}
	// No heartbeat yet: null live figures show as "-". Without a state from
	// the server (an older one) the CLI derives it.
	if got := strings.Join(strings.Fields(lines[2]), " "); got != "node2 offline -/8 -/32G - 0 - none" {
		t.Errorf("row = %q", got)
	}
	if got := strings.Join(strings.Fields(lines[3]), " "); got != "node3 idle 0/4 0/8G - 0 - none" {
		t.Errorf("row = %q", got)
	}
	if want := "drained node2: replacing a disk (by alice at " + formatTime(drainedAt) + ")"; lines[4] != want {
		t.Errorf("drain reason = %q", lines[4])
	}
	if lines[5] != "note: node2, node3 run native tasks without cgroup limits" {
		t.Errorf("note = %q", lines[5])
	}

	out, _, err = runCLI(t, "--host", f.srv.URL, "-o", "json", "node", "list")
	if err != nil {
		t.Fatalf("node list json: %v", err)
	}
	var got []api.NodeView
	mustJSON(t, out, &got)
	if len(got) != 3 || got[0].Hostname != "node1" || got[0].CoresInUse != 4 || *got[0].CPUPercent != 37.25 ||
		*got[0].LastHeartbeat != beat || got[1].LastHeartbeat != nil || got[1].CPUPercent == nil || *got[1].CPUPercent != 88 {
		t.Fatalf("json = %+v", got)
	}
	if got[1].DrainReason != "replacing a disk" || !strings.Contains(out, `"drain_reason": "replacing a disk"`) ||
		!strings.Contains(out, `"drained_by": "alice"`) || !strings.Contains(out, `"drained_at": "2026-01-02T03:04:05Z"`) ||
		!strings.Contains(out, `"state": "mixed"`) {
		t.Fatalf("json lacks the drain reason:\n%s", out)
	}
	if !strings.Contains(out, `"last_heartbeat": null`) || !strings.Contains(out, `"cgroups_limited": true`) {
		t.Fatalf("json lacks null live figures or cgroups_limited:\n%s", out)
	}
}

func TestPrintNodes_NoteOnlyWhenUnlimited(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	beat := now.Add(-90 * time.Second).Format(time.RFC3339)
	var b bytes.Buffer
	err := printNodes(&b, []api.NodeView{{Node: fsm.Node{Hostname: "n1", Status: fsm.NodeOnline, CgroupsLimited: true, TotalCores: 2},
		LastHeartbeat: &beat}}, now)
	if err != nil {
		t.Fatalf("printNodes: %v", err)
	}
	if strings.Contains(b.String(), "note:") || !strings.Contains(b.String(), "1m ago") {
		t.Fatalf("out =\n%s", b.String())
	}
}

func TestCLI_NodeListEmpty(t *testing.T) {
	f := newFakeHost(t)
	f.handle("GET /api/nodes", http.StatusOK, nil)
	out, _, err := runCLI(t, "--host", f.srv.URL, "-o", "json", "node", "list")
	if err != nil || strings.TrimSpace(out) != "[]" {
		t.Fatalf("out = %q, err = %v", out, err)
	}
}

func TestCLI_NodeHealth(t *testing.T) {
	f := newFakeHost(t)
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	health := api.HealthResponse{
		Nodes: [][]api.NodeHealth{
			{{Hostname: "node1", Status: "online", CPUPercent: ptr(10.0)}},
			{
				{Hostname: "node1", Status: "online", CPUPercent: ptr(20.5), MemoryPercent: ptr(40.0),
					CurrentAvgTemp: ptr(45.0), CurrentMaxTemp: ptr(61.5), GPUInfo: []fsm.GPUInfo{{GPUID: 0}}},
				{Hostname: "node2", Status: "offline"},
			},
		},
		Aggregate: []api.HealthAggregate{
			{TotalNodes: 2, OnlineNodes: 1, TotalCores: 24, TotalMemBytes: 48 << 30, UsedMemBytes: 1 << 30, AvgCPUPercent: 10, AvgMemPercent: 2.1, LastUpdated: t0},
			{TotalNodes: 2, OnlineNodes: 1, TotalCores: 24, TotalMemBytes: 48 << 30, UsedMemBytes: 2 << 30, AvgCPUPercent: 20.5, AvgMemPercent: 4.2,
				MaxAvgCPUTemp: 45, MaxMaxCPUTemp: 61.5, LastUpdated: t0.Add(time.Second)},
		},
	}
	f.mux.HandleFunc("GET /api/health", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("hostname") == "ghost" {
			reply(w, http.StatusNotFound, api.ErrorResponse{Error: `node "ghost" not registered`})
			return
		}
		reply(w, http.StatusOK, health)
	})

	out, _, err := runCLI(t, "--host", f.srv.URL, "node", "health")
	if err != nil {
		t.Fatalf("node health: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 {
		t.Fatalf("want header, 2 rows (latest sample) and the summary:\n%s", out)
	}
	for _, col := range []string{"HOSTNAME", "STATUS", "CPU%", "MEM%", "TEMP(AVG/MAX)", "GPUS"} {
		if !strings.Contains(lines[0], col) {
			t.Errorf("header %q lacks %s", lines[0], col)
		}
	}
	if got := strings.Join(strings.Fields(lines[1]), " "); got != "node1 online 20.5 40.0 45.0/61.5 1" {
		t.Errorf("row = %q", got)
	}
	if got := strings.Join(strings.Fields(lines[2]), " "); got != "node2 offline - - - 0" {
		t.Errorf("row = %q", got)
	}
	for _, want := range []string{"1/2 nodes online", "24 cores", "CPU 20.5%", "memory 2G/48G (4.2%)", "temp 45.0/61.5"} {
		if !strings.Contains(lines[3], want) {
			t.Errorf("summary %q lacks %q", lines[3], want)
		}
	}

	out, _, err = runCLI(t, "--host", f.srv.URL, "node", "health", "--history", "node1")
	if err != nil {
		t.Fatalf("node health --history: %v", err)
	}
	if q := f.last(t, "/api/health").Query; q != "hostname=node1" {
		t.Fatalf("query = %q", q)
	}
	lines = strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 7 || lines[3] != "" || !strings.Contains(lines[4], "TIME") {
		t.Fatalf("want the node table, a blank line, and a header plus one row per sample:\n%s", out)
	}
	if got := strings.Fields(lines[5]); got[2] != "1/2" || got[4] != "10.0" || got[5] != "1G/48G" || got[7] != "-" {
		t.Errorf("first sample row = %q", lines[5])
	}
	if got := strings.Fields(lines[6]); got[4] != "20.5" || got[7] != "45.0/61.5" {
		t.Errorf("last sample row = %q", lines[6])
	}

	out, _, err = runCLI(t, "--host", f.srv.URL, "-o", "json", "node", "health")
	if err != nil {
		t.Fatalf("node health json: %v", err)
	}
	var got api.HealthResponse
	mustJSON(t, out, &got)
	if len(got.Nodes) != 2 || len(got.Aggregate) != 2 || got.Nodes[1][0].Hostname != "node1" {
		t.Fatalf("json = %+v", got)
	}

	if _, _, err := runCLI(t, "--host", f.srv.URL, "node", "health", "ghost"); err == nil || !strings.Contains(err.Error(), "not registered") {
		t.Fatalf("unknown node: err = %v", err)
	}
}

func TestCLI_NodeHealthNoSamples(t *testing.T) {
	f := newFakeHost(t)
	f.handle("GET /api/health", http.StatusOK, api.HealthResponse{Nodes: [][]api.NodeHealth{}, Aggregate: []api.HealthAggregate{}})
	out, _, err := runCLI(t, "--host", f.srv.URL, "node", "health")
	if err != nil || out != "No health samples yet.\n" {
		t.Fatalf("out = %q, err = %v", out, err)
	}
}

func TestCLI_NodeDrainUndrain(t *testing.T) {
	f := newFakeHost(t)
	f.mux.HandleFunc("POST /api/nodes/{name}/{action}", func(w http.ResponseWriter, r *http.Request) {
		name, action := r.PathValue("name"), r.PathValue("action")
		if name == "ghost" {
			reply(w, http.StatusNotFound, api.ErrorResponse{Error: `node "ghost" not registered`})
			return
		}
		msg := "Node " + name + " drained: no new placements."
		if action == "undrain" {
			msg = "Node " + name + " undrained: accepting placements."
		}
		reply(w, http.StatusOK, api.MessageResponse{Message: msg})
	})

	out, _, err := runCLI(t, "--host", f.srv.URL, "node", "drain", "node1")
	if err != nil || out != "Node node1 drained: no new placements.\n" {
		t.Fatalf("drain: out = %q, err = %v", out, err)
	}
	if r := f.last(t, "/api/nodes/node1/drain"); r.Method != http.MethodPost || len(r.Body) != 0 {
		t.Fatalf("drain request = %s %q", r.Method, r.Body)
	}
	out, _, err = runCLI(t, "--host", f.srv.URL, "node", "drain", "node2", "--reason", "  replacing a disk ")
	if err != nil || out != "Node node2 drained: no new placements.\n" {
		t.Fatalf("drain --reason: out = %q, err = %v", out, err)
	}
	if r := f.last(t, "/api/nodes/node2/drain"); string(r.Body) != `{"reason":"replacing a disk"}` {
		t.Fatalf("drain --reason body = %q", r.Body)
	}
	out, _, err = runCLI(t, "--host", f.srv.URL, "-o", "json", "node", "undrain", "node1")
	if err != nil {
		t.Fatalf("undrain: %v", err)
	}
	var m api.MessageResponse
	mustJSON(t, out, &m)
	if m.Message != "Node node1 undrained: accepting placements." {
		t.Fatalf("json = %+v", m)
	}
	if r := f.last(t, "/api/nodes/node1/undrain"); r.Method != http.MethodPost {
		t.Fatalf("undrain method = %s", r.Method)
	}

	_, _, err = runCLI(t, "--host", f.srv.URL, "node", "drain", "ghost")
	if api.StatusCode(err) != http.StatusNotFound || !strings.Contains(err.Error(), "not registered") {
		t.Fatalf("unknown node: err = %v", err)
	}
	n := len(f.requests())
	for _, args := range [][]string{{"drain"}, {"drain", "a", "b"}, {"undrain", " "}} {
		if _, _, err := runCLI(t, append([]string{"--host", f.srv.URL, "node"}, args...)...); err == nil {
			t.Errorf("node %q: want an error", args)
		}
	}
	if got := len(f.requests()); got != n {
		t.Fatalf("bad arguments sent %d requests", got-n)
	}
}
