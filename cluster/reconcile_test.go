package cluster

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/fsm"
)

// TestHeartbeatReconcileAndUsage drives one fake runner through the
// leader: submit refuses targets that can never hold the task (the
// scheduler's fit check), /api/nodes shows the scheduler's accounting, and
// heartbeats reconcile (kill what the FSM does not place there, lose a
// running task after two consecutive full omissions, never on a partial
// one).
func TestHeartbeatReconcileAndUsage(t *testing.T) {
	h := startCluster(t, 1)[0]
	var runs atomic.Int64
	runner := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/run" {
			runs.Add(1)
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"message":"ok"}`) //nolint:errcheck // test server
	}))
	defer runner.Close()
	if resp, body := do(t, "POST", h.APIURL()+"/api/register", api.RegisterRequest{
		Hostname: "n1", TotalCores: 4, TotalRAMBytes: 8 << 30, RunnerURL: runner.URL,
		NUMATopology: map[string]fsm.NUMANode{"0": {Cores: []int{0, 1}}, "1": {Cores: []int{2, 3}}},
		GPUInfo:      []fsm.GPUInfo{{GPUID: 0}},
	}); resp.StatusCode != http.StatusOK {
		t.Fatalf("register: %d %s", resp.StatusCode, body)
	}
	null := "NULL"
	submit := func(req api.SubmitRequest) (int, string) {
		t.Helper()
		req.Command = "true"
		req.ContainerName = &null
		resp, body := do(t, "POST", h.APIURL()+"/api/submit", req)
		return resp.StatusCode, string(body)
	}
	cores := func(n int) *int { return &n }
	for _, c := range []struct {
		name string
		req  api.SubmitRequest
		want []string
	}{
		{"too many cores", api.SubmitRequest{Targets: []string{"n1"}, RequiredCores: cores(5)}, []string{`"n1"`, "needs 5"}},
		{"too much memory", api.SubmitRequest{Targets: []string{"n1"}, RequiredMemoryBytes: new(int64(9 << 30))}, []string{`"n1"`, "memory"}},
		{"no such NUMA node", api.SubmitRequest{Targets: []string{"n1:2"}}, []string{`"n1:2"`, "no NUMA node 2"}},
		{"NUMA node too small", api.SubmitRequest{Targets: []string{"n1:1"}, RequiredCores: cores(3)}, []string{`"n1:1"`, "NUMA node 1", "needs 3"}},
		{"no such GPU", api.SubmitRequest{Targets: []string{"n1"}, RequiredGPUs: [][]int{{3}}}, []string{`"n1"`, "GPU 3"}},
		{"too many GPUs", api.SubmitRequest{Targets: []string{"n1"}, GPUCount: 2}, []string{`"n1"`, "needs 2"}},
		{"untargeted, too large", api.SubmitRequest{RequiredCores: cores(5)}, []string{"largest node, n1, has 4 cores"}},
	} {
		status, body := submit(c.req)
		var e struct{ Error string }
		if status != http.StatusBadRequest || json.Unmarshal([]byte(body), &e) != nil {
			t.Fatalf("%s: submit = %d %s, want 400", c.name, status, body)
		}
		for _, w := range c.want {
			if !strings.Contains(e.Error, w) {
				t.Errorf("%s: error %q does not name %s", c.name, e.Error, w)
			}
		}
	}
	if got := len(h.machine.Active()); got != 0 {
		t.Fatalf("refused submits left %d tasks", got)
	}

	status, body := submit(api.SubmitRequest{Targets: []string{"n1:0"}, RequiredCores: cores(2), RequiredMemoryBytes: new(int64(1 << 30)), RequiredGPUs: [][]int{{0}}})
	if status != http.StatusAccepted {
		t.Fatalf("submit: %d %s", status, body)
	}
	var sr api.SubmitResponse
	if err := json.Unmarshal([]byte(body), &sr); err != nil || len(sr.TaskIDs) != 1 {
		t.Fatalf("submit answer %s: %v", body, err)
	}
	id, err := strconv.ParseInt(sr.TaskIDs[0], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, func() bool { return runs.Load() > 0 })
	if resp, body := do(t, "POST", h.APIURL()+"/api/update", map[string]any{"task_id": id, "status": "running"}); resp.StatusCode != http.StatusOK {
		t.Fatalf("update: %d %s", resp.StatusCode, body)
	}
	usage := func() api.NodeView {
		t.Helper()
		var nv []api.NodeView
		_, body := do(t, "GET", h.APIURL()+"/api/nodes", nil)
		if err := json.Unmarshal(body, &nv); err != nil || len(nv) != 1 {
			t.Fatalf("/api/nodes %s: %v", body, err)
		}
		return nv[0]
	}
	if v := usage(); v.CoresInUse != 2 || v.MemoryInUseBytes != 1<<30 || v.AvailableCores != 2 {
		t.Fatalf("node view with a running task: in use %d cores, %d bytes, %d available", v.CoresInUse, v.MemoryInUseBytes, v.AvailableCores)
	}

	heartbeat := func(hb api.HeartbeatRequest) []int64 {
		t.Helper()
		resp, body := do(t, "PUT", h.APIURL()+"/api/heartbeat/n1", hb)
		var hr api.HeartbeatResponse
		if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &hr) != nil {
			t.Fatalf("heartbeat: %d %s", resp.StatusCode, body)
		}
		return hr.Kill
	}
	taskStatus := func() fsm.Status {
		t.Helper()
		tk, _ := h.machine.Task(id)
		return tk.Status
	}
	const stranger = int64(987654321)
	if kill := heartbeat(api.HeartbeatRequest{RunningTasks: []int64{id, stranger}}); !slices.Equal(kill, []int64{stranger}) {
		t.Fatalf("kill = %v, want [%d]", kill, stranger)
	}
	if kill := heartbeat(api.HeartbeatRequest{RunningTasks: []int64{stranger}, Partial: true}); len(kill) != 0 {
		t.Fatalf("partial heartbeat: kill = %v, want none", kill)
	}
	heartbeat(api.HeartbeatRequest{RunningTasks: []int64{}}) // omitted once
	heartbeat(api.HeartbeatRequest{RunningTasks: []int64{}, Partial: true})
	if s := taskStatus(); s != fsm.StatusRunning {
		t.Fatalf("after one full omission and a partial heartbeat: %s, want running", s)
	}
	heartbeat(api.HeartbeatRequest{RunningTasks: []int64{id}}) // back: the counter resets
	heartbeat(api.HeartbeatRequest{RunningTasks: []int64{}})
	if s := taskStatus(); s != fsm.StatusRunning {
		t.Fatalf("after a reset and one omission: %s, want running", s)
	}
	heartbeat(api.HeartbeatRequest{RunningTasks: []int64{}})
	if s := taskStatus(); s != fsm.StatusLost {
		t.Fatalf("after two consecutive omissions: %s, want lost", s)
	}
	if kill := heartbeat(api.HeartbeatRequest{RunningTasks: []int64{id}}); !slices.Equal(kill, []int64{id}) {
		t.Fatalf("a lost task the runner still runs: kill = %v, want [%d]", kill, id)
	}
	if v := usage(); v.CoresInUse != 0 || v.MemoryInUseBytes != 0 || v.AvailableCores != 4 {
		t.Fatalf("node view after loss: in use %d cores, %d bytes, %d available", v.CoresInUse, v.MemoryInUseBytes, v.AvailableCores)
	}
}
