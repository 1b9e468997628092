//go:build integration

package integration

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/fsm"
	"github.com/hakuriver/hakuriver-ha/integration/harness"
)

// TestQuotaRunningTasks (issue 13): alice may run one task at a time. Of
// two `sleep 3` tasks she submits, the second waits pending with the quota
// named in the queue while the first runs (the runner has room for both),
// and runs once the first completed. `hakuriver quota` shows her 1 of 1
// meanwhile; a task that could never fit her quota is refused at submit.
func TestQuotaRunningTasks(t *testing.T) {
	// Anonymous viewers: the harness waits for the replicas with anonymous
	// GET /api/cluster before it bootstraps the admin.
	c := startCluster(t, harness.Options{HeartbeatInterval: hbInterval, HeartbeatTimeoutFactor: hbFactor, AnonymousRole: "viewer"})
	c.StartRunner("r1", twoCores)
	via := c.Followers()[0]
	call := func(bearer, method, path string, body any, want int) harness.Answer {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), harness.WriteTimeout)
		defer cancel()
		a, err := c.CallAs(ctx, via, method, path, bearer, body)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		if a.Status != want {
			t.Fatalf("%s %s: want %d, got %s", method, path, want, a)
		}
		return a
	}
	admin := c.AdminToken()
	call(admin, http.MethodPost, "/api/users", api.UserRequest{Name: "alice", Role: fsm.RoleUser,
		Quota: fsm.Quota{RunningTasks: 1, MemoryBytes: 1 << 30}}, http.StatusCreated)
	var tok api.TokenResponse
	if err := call(admin, http.MethodPost, "/api/tokens", api.TokenRequest{User: "alice"}, http.StatusCreated).Decode(&tok); err != nil {
		t.Fatal(err)
	}
	alice := tok.Token
	// The replica checks tokens against its own state: wait until it has
	// applied alice's.
	c.Poll(10*time.Second, "alice's token to be known on "+c.Replica(via).ID, func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), harness.ReadTimeout)
		defer cancel()
		a, err := c.CallAs(ctx, via, http.MethodGet, "/api/auth/whoami", alice, nil)
		if err != nil {
			return false, err.Error()
		}
		return a.Status == http.StatusOK, a.String()
	})

	// Never: 2 GiB of memory against a quota of 1 GiB (the runner has 4).
	big := native("true")
	mem := int64(2 << 30)
	big.RequiredMemoryBytes = &mem
	if a := call(alice, http.MethodPost, "/api/submit", big, http.StatusForbidden); !strings.Contains(string(a.Body), "user alice's quota is 1073741824") {
		t.Errorf("over-quota submit: %s, want the quota named", a)
	}

	var ids []string
	for range 2 {
		var out api.SubmitResponse
		// As nobody (no unix_user, no run_as_root): in / (inRoot).
		if err := call(alice, http.MethodPost, "/api/submit", inRoot(native("sleep", "3")), http.StatusAccepted).Decode(&out); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, out.TaskIDs...)
	}
	killOnFailure(t, c, ids...)
	first, second := ids[0], ids[1]
	if task := c.WaitStatus(first, "running", taskTimeout); task.Owner != "alice" {
		t.Fatalf("task %s owner %q, want alice", first, task.Owner)
	}

	// While the first runs, the second waits for the quota, as the queue
	// (through the API, to alice herself, and in the CLI) says.
	const reason = "quota: user alice uses 1 of 1 running tasks"
	var queue []api.QueueEntry
	if err := call(alice, http.MethodGet, "/api/queue?consistent=1", nil, http.StatusOK).Decode(&queue); err != nil {
		t.Fatal(err)
	}
	if len(queue) != 1 || queue[0].TaskID != second || queue[0].Reason != reason {
		t.Fatalf("queue while %s runs: %+v, want only %s waiting for %q", first, queue, second, reason)
	}
	if out := c.CLIOK("queue").Stdout; !strings.Contains(out, reason) {
		t.Errorf("hakuriver queue does not show %q:\n%s", reason, out)
	}
	if out := c.CLIOK("task", "status", second).Stdout; !strings.Contains(out, "Waiting for:") || !strings.Contains(out, reason) {
		t.Errorf("hakuriver task status %s does not show %q:\n%s", second, reason, out)
	}
	var quotas []api.QuotaEntry
	if err := call(alice, http.MethodGet, "/api/quota?user=alice", nil, http.StatusOK).Decode(&quotas); err != nil {
		t.Fatal(err)
	}
	if len(quotas) != 1 || quotas[0].Name != "alice" || !hasResource(quotas[0], "running_tasks", 1, 1) || !hasResource(quotas[0], "cores", 1, 0) {
		t.Errorf("GET /api/quota?user=alice: %+v, want alice using 1 of 1 running tasks and 1 core of no limit", quotas)
	}
	table := c.CLIOK("quota").Stdout
	var row string
	for _, l := range strings.Split(table, "\n") {
		if f := strings.Fields(l); len(f) > 1 && f[0] == "user" && f[1] == "alice" {
			row = strings.Join(f, " ")
		}
	}
	// KIND NAME CORES MEMORY GPUS RUNNING-TASKS VPS GROUPS
	if want := "user alice 1 of - 0B of 1.0GiB 0 of - 1 of 1 0 of - -"; row != want {
		t.Errorf("hakuriver quota: alice's row %q, want %q:\n%s", row, want, table)
	}
	var cliQuotas []api.QuotaEntry
	if err := c.CLIOK("quota", "--user", "alice", "-o", "json").Decode(&cliQuotas); err != nil {
		t.Fatal(err)
	}
	if len(cliQuotas) != 1 || !hasResource(cliQuotas[0], "running_tasks", 1, 1) {
		t.Errorf("hakuriver quota --user alice -o json: %+v", cliQuotas)
	}
	if task, err := c.Task(via, second); err != nil || task.Status != fsm.StatusPending {
		t.Fatalf("task %s while %s runs: %s %v, want pending", second, first, task.Status, err)
	}

	// Once the first completes, the second runs: never both at once.
	tasks := c.WaitAllFinal(ids, 60*time.Second)
	requireAll(t, tasks, "completed")
	if peak := maxConcurrent(t, tasks); peak != 1 {
		t.Errorf("alice ran %d tasks at once with a quota of 1 running task", peak)
	}
	// alice's replica may apply the last end a moment after the replica
	// WaitAllFinal read it from.
	c.Poll(10*time.Second, "alice using 0 of 1 running tasks after both completed", func() (bool, string) {
		if err := call(alice, http.MethodGet, "/api/quota", nil, http.StatusOK).Decode(&quotas); err != nil {
			t.Fatal(err)
		}
		return len(quotas) == 1 && hasResource(quotas[0], "running_tasks", 0, 1), fmt.Sprintf("GET /api/quota: %+v", quotas)
	})
}

// hasResource reports whether e lists resource with this use and limit.
func hasResource(e api.QuotaEntry, resource string, used, limit int64) bool {
	for _, r := range e.Resources {
		if r.Resource == resource {
			return r.Used == used && r.Limit == limit
		}
	}
	return false
}
