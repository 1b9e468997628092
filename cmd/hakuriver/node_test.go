package main

import (
	"net/http"
	"strings"
	"testing"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/fsm"
)

func TestCLI_NodeList(t *testing.T) {
	f := newFakeHost(t)
	nodes := []api.NodeView{
		{Node: fsm.Node{Hostname: "node1", URL: "http://10.0.0.1:8001", TotalCores: 16, MemoryTotalBytes: 64 << 30, Status: fsm.NodeOnline},
			CoresInUse: 4, MemoryInUseBytes: 8 << 30},
		{Node: fsm.Node{Hostname: "node2", URL: "http://10.0.0.2:8001", TotalCores: 8, MemoryTotalBytes: 32 << 30, Status: fsm.NodeOffline, Drained: true}},
	}
	f.handle("GET /api/nodes", http.StatusOK, nodes)
	out, _, err := runCLI(t, "--host", f.srv.URL, "node", "list")
	if err != nil {
		t.Fatalf("node list: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 {
		t.Fatalf("out =\n%s", out)
	}
	for _, col := range []string{"HOSTNAME", "STATUS", "CORES", "MEMORY", "URL"} {
		if !strings.Contains(lines[0], col) {
			t.Errorf("header %q lacks %s", lines[0], col)
		}
	}
	for _, want := range []string{"node1", "online", "4/16", "8.0GiB/64.0GiB", "http://10.0.0.1:8001"} {
		if !strings.Contains(lines[1], want) {
			t.Errorf("row %q lacks %q", lines[1], want)
		}
	}
	for _, want := range []string{"node2", "offline (drained)", "-/8"} {
		if !strings.Contains(lines[2], want) {
			t.Errorf("row %q lacks %q", lines[2], want)
		}
	}

	out, _, err = runCLI(t, "--host", f.srv.URL, "-o", "json", "node", "list")
	if err != nil {
		t.Fatalf("node list json: %v", err)
	}
	var got []api.NodeView
	mustJSON(t, out, &got)
	if len(got) != 2 || got[0].Hostname != "node1" || got[0].CoresInUse != 4 {
		t.Fatalf("json = %+v", got)
	}
}
