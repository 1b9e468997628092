package cluster

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/fsm"
	"github.com/hakuriver/hakuriver-ha/gossip"
)

// TestBatchUpdates drives POST /api/updates on a real host: a batch of
// reports is one log entry with a result per report, a retried batch
// changes nothing, and a hostile batch (too large, a task twice, a status
// a runner may not report, no list) is refused whole, naming the field,
// with the applied index unchanged.
func TestBatchUpdates(t *testing.T) {
	h := startCluster(t, 1)[0]
	ids := assigningTasks(t, h, 3)
	null, one := "NULL", 1
	url := h.APIURL() + "/api/updates"

	t.Run("hostile", func(t *testing.T) {
		big := make([]api.UpdateRequest, api.MaxUpdateBatch+1)
		for i := range big {
			big[i] = api.UpdateRequest{TaskID: ids[0], Status: "running"}
		}
		for _, c := range []struct {
			name   string
			body   any
			status int
			want   string
		}{
			{"too many reports", api.UpdatesRequest{Updates: big}, 413, "updates"},
			{"a task twice", api.UpdatesRequest{Updates: []api.UpdateRequest{{TaskID: ids[0], Status: "running"}, {TaskID: ids[0], Status: "completed"}}}, 400, "updates[1].task_id"},
			{"status a runner may not report", api.UpdatesRequest{Updates: []api.UpdateRequest{{TaskID: ids[1], Status: "running"}, {TaskID: ids[0], Status: "pending"}}}, 400, "updates[1].status"},
			{"unknown status", api.UpdatesRequest{Updates: []api.UpdateRequest{{TaskID: ids[0], Status: "sleeping"}}}, 400, "sleeping"},
			{"no task id", api.UpdatesRequest{Updates: []api.UpdateRequest{{Status: "running"}}}, 400, "updates[0].task_id"},
			{"no list", `{}`, 400, "updates"},
			{"not a list", `{"updates":{"task_id":1}}`, 400, "updates"},
		} {
			before := h.machine.AppliedIndex()
			resp, body := do(t, "POST", url, c.body)
			var e api.ErrorResponse
			if resp.StatusCode != c.status || json.Unmarshal(body, &e) != nil || !strings.Contains(e.Error, c.want) {
				t.Errorf("%s: %d %s, want %d naming %q", c.name, resp.StatusCode, body, c.status, c.want)
			}
			if after := h.machine.AppliedIndex(); after != before {
				t.Errorf("%s: applied index moved %d → %d", c.name, before, after)
			}
		}
		if resp, _ := doToken(t, "POST", url, "", api.UpdatesRequest{Updates: []api.UpdateRequest{{TaskID: ids[0], Status: "running"}}}); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("without the cluster token: %d, want 401", resp.StatusCode)
		}
	})

	started := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	ended, zero, three := started.Add(time.Second), 0, 3
	batch := api.UpdatesRequest{Updates: []api.UpdateRequest{
		{TaskID: ids[0], Status: "running", StartedAt: &started},
		{TaskID: ids[1], Status: "completed", ExitCode: &zero, StartedAt: &started, CompletedAt: &ended},
		{TaskID: 987654321, Status: "running"},
		{TaskID: ids[2], Status: "failed", ExitCode: &three, StartedAt: &started, CompletedAt: &ended},
	}}
	post := func() []api.UpdateResult {
		t.Helper()
		resp, body := do(t, "POST", url, batch)
		var ur api.UpdatesResponse
		if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &ur) != nil || len(ur.Results) != len(batch.Updates) {
			t.Fatalf("batch: %d %s", resp.StatusCode, body)
		}
		for i, r := range ur.Results {
			if r.TaskID != batch.Updates[i].TaskID {
				t.Errorf("result %d is for task %d, want %d", i, r.TaskID, batch.Updates[i].TaskID)
			}
		}
		return ur.Results
	}
	t.Run("one entry", func(t *testing.T) {
		before := h.machine.AppliedIndex()
		res := post()
		for i, want := range []int{200, 200, 404, 200} {
			if res[i].Status != want || (want != 200) != (res[i].Error != "") {
				t.Errorf("result %d: %+v, want %d", i, res[i], want)
			}
		}
		if !strings.Contains(res[2].Error, "987654321") {
			t.Errorf("unknown task's error %q does not name it", res[2].Error)
		}
		if after := h.machine.AppliedIndex(); after != before+1 {
			t.Errorf("applied index %d → %d, want one entry", before, after)
		}
		if tk, _ := h.machine.Task(ids[1]); tk.Status != fsm.StatusCompleted || !tk.StartedAt.Equal(started) || !tk.CompletedAt.Equal(ended) {
			t.Errorf("task started and ended in one report: %+v", tk)
		}
		if tk, _ := h.machine.Task(ids[0]); tk.Status != fsm.StatusRunning || !tk.StartedAt.Equal(started) {
			t.Errorf("running task: %+v", tk)
		}
	})
	t.Run("retry changes nothing", func(t *testing.T) {
		before := h.machine.AppliedIndex()
		res := post()
		for i, want := range []int{200, 200, 404, 200} {
			if res[i].Status != want {
				t.Errorf("result %d: %+v, want %d", i, res[i], want)
			}
		}
		if after := h.machine.AppliedIndex(); after != before {
			t.Errorf("a retried batch moved the applied index %d → %d", before, after)
		}
	})
	t.Run("older replica", func(t *testing.T) {
		// A host replica in gossip that knows commands up to SubmitPlaced
		// only: the leader must not propose UpdateTasks, and falls back
		// to one UpdateTask entry per report.
		old, err := gossip.New(gossip.Config{Name: "host:old", BindAddr: "127.0.0.1", Join: []string{h.GossipAddr()}, Fast: true,
			Logger: slog.New(slog.DiscardHandler), Meta: gossip.Meta{Role: gossip.RoleHost, ID: "old", MaxCommand: uint8(fsm.CmdSubmitPlaced)}})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		go old.Run(ctx)                          //nolint:errcheck // returns nil when ctx ends
		defer func() { cancel(); old.Close() }() //nolint:errcheck // test cleanup
		waitFor(t, 10*time.Second, func() bool { return h.commandKnown(fsm.CmdUpdateTasks) != nil })
		var more []int64
		for range 2 {
			resp, body := do(t, "POST", h.APIURL()+"/api/submit", api.SubmitRequest{Command: "true", ContainerName: &null, RequiredCores: &one})
			var sr api.SubmitResponse
			if resp.StatusCode != http.StatusAccepted || json.Unmarshal(body, &sr) != nil || len(sr.TaskIDs) != 1 {
				t.Fatalf("submit: %d %s", resp.StatusCode, body)
			}
			id, _ := strconv.ParseInt(sr.TaskIDs[0], 10, 64)
			more = append(more, id)
		}
		waitFor(t, 10*time.Second, func() bool {
			for _, id := range more {
				if tk, ok := h.machine.Task(id); !ok || tk.Status != fsm.StatusAssigning {
					return false
				}
			}
			return true
		})
		before := h.machine.AppliedIndex()
		resp, body := do(t, "POST", url, api.UpdatesRequest{Updates: []api.UpdateRequest{
			{TaskID: more[0], Status: "running"}, {TaskID: 987654321, Status: "running"}, {TaskID: more[1], Status: "completed", ExitCode: &zero},
		}})
		var ur api.UpdatesResponse
		if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &ur) != nil || len(ur.Results) != 3 {
			t.Fatalf("batch: %d %s", resp.StatusCode, body)
		}
		if ur.Results[0].Status != 200 || ur.Results[1].Status != 404 || ur.Results[2].Status != 200 {
			t.Errorf("results %+v, want 200, 404, 200", ur.Results)
		}
		if after := h.machine.AppliedIndex(); after != before+2 {
			t.Errorf("applied index %d → %d, want one entry per applied report", before, after)
		}
	})
	t.Run("final task", func(t *testing.T) {
		resp, body := do(t, "POST", url, api.UpdatesRequest{Updates: []api.UpdateRequest{
			{TaskID: ids[1], Status: "failed", ExitCode: &three}, {TaskID: ids[0], Status: "completed", ExitCode: &zero},
		}})
		var ur api.UpdatesResponse
		if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &ur) != nil || len(ur.Results) != 2 {
			t.Fatalf("batch: %d %s", resp.StatusCode, body)
		}
		if ur.Results[0].Status != http.StatusConflict || ur.Results[1].Status != http.StatusOK {
			t.Errorf("results %+v, want 409 then 200", ur.Results)
		}
		if tk, _ := h.machine.Task(ids[1]); tk.Status != fsm.StatusCompleted {
			t.Errorf("a final task changed: %+v", tk)
		}
	})
}

// assigningTasks registers a runner n1 that accepts every dispatch on h,
// submits n one-core native tasks and waits until all are assigning; it
// returns their IDs.
func assigningTasks(t *testing.T, h *Host, n int) []int64 {
	t.Helper()
	runner := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"message":"ok"}`) //nolint:errcheck // test server
	}))
	t.Cleanup(runner.Close)
	if resp, body := do(t, "POST", h.APIURL()+"/api/register", api.RegisterRequest{
		Hostname: "n1", TotalCores: 8, TotalRAMBytes: 8 << 30, RunnerURL: runner.URL,
	}); resp.StatusCode != http.StatusOK {
		t.Fatalf("register: %d %s", resp.StatusCode, body)
	}
	null, one := "NULL", 1
	var ids []int64
	for range n {
		resp, body := do(t, "POST", h.APIURL()+"/api/submit", api.SubmitRequest{Command: "true", ContainerName: &null, RequiredCores: &one})
		var sr api.SubmitResponse
		if resp.StatusCode != http.StatusAccepted || json.Unmarshal(body, &sr) != nil || len(sr.TaskIDs) != 1 {
			t.Fatalf("submit: %d %s", resp.StatusCode, body)
		}
		id, _ := strconv.ParseInt(sr.TaskIDs[0], 10, 64)
		ids = append(ids, id)
	}
	waitFor(t, 10*time.Second, func() bool {
		for _, id := range ids {
			if tk, ok := h.machine.Task(id); !ok || tk.Status != fsm.StatusAssigning {
				return false
			}
		}
		return true
	})
	return ids
}
