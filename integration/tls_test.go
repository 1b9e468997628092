//go:build integration

package integration

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/integration/harness"
)

// TestTLSClusterRunsTasks starts three replicas and a runner with TLS
// (certificates made by `hakuriver tls init`): the CLI submits through a
// follower over HTTPS verifying the CA (HAKURIVER_CA_FILE), the leader
// dispatches to the runner's HTTPS API, the runner reports back over HTTPS,
// and the task completes. A CLI without the CA and a plain HTTP client get
// nowhere.
func TestTLSClusterRunsTasks(t *testing.T) {
	// AnonymousRole viewer: the harness waits for GET /api/cluster before it
	// bootstraps the accounts.
	c := startCluster(t, harness.Options{TLS: true, AnonymousRole: "viewer", HeartbeatInterval: hbInterval, HeartbeatTimeoutFactor: hbFactor})
	for i := range c.N() {
		if !strings.HasPrefix(c.Replica(i).API, "https://") {
			t.Fatalf("replica %d API %s", i, c.Replica(i).API)
		}
	}
	r := c.StartRunner("r1", twoCores)
	if !strings.HasPrefix(r.API, "https://") {
		t.Fatalf("runner API %s", r.API)
	}
	via := c.Followers()[0]
	res := c.CLIVia([]int{via}, 60*time.Second, "", "task", "submit", "--container", "NULL", "--wait", "--", "echo", "hello over tls")
	if res.Code != 0 {
		t.Fatalf("submit --wait through follower over https: %s", res)
	}
	id := strings.TrimSpace(strings.SplitN(res.Stdout, "\n", 2)[0])
	out := c.CLIOK("task", "logs", id).Stdout
	if !strings.Contains(out, "hello over tls") {
		t.Fatalf("task %s output %q", id, out)
	}
	task := c.WaitFinal(id, taskTimeout)
	if task.Status != "completed" || task.AssignedNode != "r1" {
		t.Fatalf("task %s: %s", id, describe(task))
	}

	t.Run("CLIWithoutTheCA", func(t *testing.T) {
		env := []string{"HAKURIVER_TOKEN=" + c.AdminToken()}
		res := harness.RunCLI(context.Background(), harness.CLICommand{Bin: c.Bin(), Env: env, Timeout: 30 * time.Second,
			Args: []string{"--host", c.Replica(via).API, "--timeout", "5s", "task", "status", id}})
		if res.Code == 0 || !strings.Contains(res.Stderr, "certificate") {
			t.Fatalf("CLI without the CA: %s", res)
		}
	})
	t.Run("PlainHTTP", func(t *testing.T) {
		plain := "http://" + strings.TrimPrefix(c.Replica(via).API, "https://")
		resp, err := http.Get(plain + "/api/status/" + id)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadRequest {
				t.Fatalf("plain HTTP to the API: %d, want 400", resp.StatusCode)
			}
		}
	})
}
