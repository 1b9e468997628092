package cluster

import (
	"context"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/fsm"
	"github.com/hakuriver/hakuriver-ha/gossip"
)

// TestReportUsageUpgrade checks that a runner's figures are recorded (one
// fsm.ReportTasks entry) while every replica knows that command, and that
// with a replica in gossip that does not, the end is still applied (as an
// UpdateTask entry, which records no figures: the old replica holds the
// same state).
func TestReportUsageUpgrade(t *testing.T) {
	h := startCluster(t, 1)[0]
	ids := assigningTasks(t, h, 2)
	zero := 0
	started := time.Now().UTC().Add(-3 * time.Second)
	ended := started.Add(2 * time.Second)
	u := fsm.Usage{CPUUserNs: int64(1500 * time.Millisecond), CPUSystemNs: int64(100 * time.Millisecond), PeakMemoryBytes: 64 << 20, Source: "cgroup"}
	report := func(id int64) {
		t.Helper()
		resp, body := do(t, "POST", h.APIURL()+"/api/update", api.UpdateRequest{
			TaskID: id, Status: "completed", ExitCode: &zero, StartedAt: &started, CompletedAt: &ended, Usage: &u})
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("report of task %d: %d %s", id, resp.StatusCode, body)
		}
	}
	report(ids[0])
	if tk, _ := h.machine.Task(ids[0]); tk.Status != fsm.StatusCompleted || tk.Usage == nil || *tk.Usage != u {
		t.Fatalf("task %d: %s usage %+v, want completed with %+v", ids[0], tk.Status, tk.Usage, u)
	}

	old, err := gossip.New(gossip.Config{Name: "host:old", BindAddr: "127.0.0.1", Join: []string{h.GossipAddr()}, Fast: true,
		Logger: slog.New(slog.DiscardHandler), Meta: gossip.Meta{Role: gossip.RoleHost, ID: "old", MaxCommand: uint8(fsm.CmdUpdateTasks)}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go old.Run(ctx)                          //nolint:errcheck // returns nil when ctx ends
	defer func() { cancel(); old.Close() }() //nolint:errcheck // test cleanup
	waitFor(t, 10*time.Second, func() bool { return h.commandKnown(fsm.CmdReportTasks) != nil })
	report(ids[1])
	if tk, _ := h.machine.Task(ids[1]); tk.Status != fsm.StatusCompleted || tk.Usage != nil {
		t.Fatalf("task %d with an older replica: %s usage %+v, want completed without figures", ids[1], tk.Status, tk.Usage)
	}
}
