//go:build integration

package integration

import (
	"context"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/integration/harness"
)

// TestRollingUpgradeUnknownCommand runs a cluster in the middle of a rolling
// upgrade: h3 runs a build from before fsm.CmdSetEnvironment existed (the
// hakuriver_fsm_v7 tag). While h3 is up, the leader refuses (409, naming
// h3) to propose that command, and holds back the cluster ID (a newer
// command still) by itself, so h3 never meets an entry it cannot apply.
// Once h3 is down the command commits; h3 started again with its old binary
// stops at that entry, loudly, instead of skipping it; with the new binary
// it catches up.
func TestRollingUpgradeUnknownCommand(t *testing.T) {
	oldBin, err := harness.BuildWithTags(t.TempDir(), "hakuriver_fsm_v7")
	if err != nil {
		t.Fatal(err)
	}
	const h3 = 2
	// The old replica cannot apply account commands: nothing is bootstrapped
	// until the upgrade is done, and callers without a token act as operators.
	c := startCluster(t, harness.Options{ReplicaBin: map[int]string{h3: oldBin}, NoBootstrap: true, AnonymousRole: "operator"})

	record := func(name string) harness.Answer {
		t.Helper()
		l := c.WaitLeader(harness.LeaderTimeout)
		ctx, cancel := context.WithTimeout(context.Background(), harness.WriteTimeout)
		defer cancel()
		a, err := c.CallInternal(ctx, l, "POST", "/api/docker/internal/environments",
			map[string]string{"name": name, "replica": c.Replica(l).ID})
		if err != nil {
			t.Fatalf("record environment %s: %v", name, err)
		}
		return a
	}
	c.Poll(30*time.Second, "the leader refuses a command h3 does not know", func() (bool, string) {
		a := record("env-a")
		return a.Status == http.StatusConflict && strings.Contains(string(a.Body), "h3") &&
			strings.Contains(string(a.Body), "set_environment"), a.String()
	})
	checkRetriesWaitForUpgrade(t, c)
	c.WaitSameApplied(10*time.Second, 0, 1, h3)
	if st, err := c.Status(0); err != nil || st.ClusterID != "" {
		t.Fatalf("the cluster ID was committed with h3 unable to apply it: %q %v", st.ClusterID, err)
	}

	// h3 goes down: the leader no longer sees it and the command commits.
	c.Kill(h3)
	c.Poll(60*time.Second, "the command commits without h3", func() (bool, string) {
		a := record("env-a")
		return a.Status == http.StatusOK, a.String()
	})
	// h3 back with its old binary stops at the entry and exits non-zero.
	c.StartReplica(h3)
	if err := c.WaitExit(h3, 60*time.Second); err == nil {
		t.Fatalf("h3 with the old binary exited 0 after meeting the new command:\n%s", c.LogTail(h3, 30))
	}
	logb, _ := os.ReadFile(c.Replica(h3).LogPath())
	if !strings.Contains(string(logb), "cannot be applied") || !strings.Contains(string(logb), "unknown type") {
		t.Fatalf("h3's log does not say why it stopped:\n%s", c.LogTail(h3, 30))
	}
	// Upgraded, it catches up and the cluster takes the command again.
	c.SetBinary(h3, hostBin)
	c.Restart(h3)
	c.WaitSameApplied(30*time.Second, 0, 1, h3)
	if a := record("env-b"); a.Status != http.StatusOK {
		t.Fatalf("after the upgrade: %s", a)
	}
	c.Poll(10*time.Second, "every replica has the cluster ID", func() (bool, string) {
		var ids []string
		for i := range 3 {
			st, err := c.Status(i)
			if err != nil {
				return false, err.Error()
			}
			ids = append(ids, st.ClusterID)
		}
		return ids[0] != "" && ids[0] == ids[1] && ids[1] == ids[2], strings.Join(ids, ",")
	})
}

// checkRetriesWaitForUpgrade: a submit with retries (whose tasks the new
// replicas would retry through fsm.CmdRetryTask while h3 kept their first
// failure) is refused naming h3 and the command; one without is accepted.
func checkRetriesWaitForUpgrade(t *testing.T, c *harness.Cluster) {
	t.Helper()
	req := native("true")
	req.Retries = 1
	ctx, cancel := context.WithTimeout(context.Background(), harness.WriteTimeout)
	defer cancel()
	a, _, err := c.Submit(ctx, c.WaitLeader(harness.LeaderTimeout), req)
	if err != nil || a.Status != http.StatusConflict || !strings.Contains(string(a.Body), "h3") || !strings.Contains(string(a.Body), "retry_task") {
		t.Fatalf("submit with retries while h3 is old: %v %s, want HTTP 409 naming h3 and retry_task", err, a)
	}
	req.Retries = 0
	c.SubmitOK(c.WaitLeader(harness.LeaderTimeout), req)
}
