//go:build integration

package integration

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/fsm"
	"github.com/hakuriver/hakuriver-ha/integration/harness"
)

// TestDiskFullLeaderHandsOver is the regression test of a chaos finding:
// a leader whose data dir is almost full refuses every write (507), and
// since a refused write never touches its disk nothing made it step down,
// so the whole cluster refused writes although two healthy replicas could
// take them. Now the leader hands leadership over: with its data dir (a
// 64 MiB tmpfs) filled below min_free_disk, a write through a follower is
// acknowledged by a new leader; after the space is freed the old leader
// takes writes again as a follower.
func TestDiskFullLeaderHandsOver(t *testing.T) {
	c := startCluster(t, harness.Options{Args: []string{"--min-free-disk", "24Mi"},
		BeforeStart: func(r *harness.Replica) error {
			if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64m,mode=0750", "tmpfs", r.DataDir()).CombinedOutput(); err != nil {
				return fmt.Errorf("mount a tmpfs on the data dir (needs root): %v %s", err, out)
			}
			// Lazily: the replica holds files there until it is killed.
			t.Cleanup(func() { exec.Command("umount", "-l", r.DataDir()).Run() }) //nolint:errcheck // best effort
			return nil
		}})
	leader := c.WaitLeader(harness.LeaderTimeout)
	follower := c.Followers()[0]
	addUser := func(i int, name string) harness.Answer {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		a, err := c.Call(ctx, i, http.MethodPost, "/api/users", api.UserRequest{Name: name, Role: fsm.RoleViewer})
		if err != nil {
			return harness.Answer{Status: 0, Body: []byte(err.Error())}
		}
		return a
	}

	// Fill the leader's data dir to 16 MiB free: below the minimum.
	var st syscall.Statfs_t
	dir := c.Replica(leader).DataDir()
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	filler := filepath.Join(dir, "filler")
	if err := os.WriteFile(filler, make([]byte, int64(st.Bavail*uint64(st.Bsize))-16<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	// The replica reads the free space at most once a second: writes may
	// pass right after the fill. Wait for a refusal, then for a write
	// acknowledged by another leader.
	attempt, refused := 0, 0
	var last harness.Answer
	now := leader
	err := harness.Eventually(harness.LeaderTimeout, func() (bool, string) {
		attempt++
		last = addUser(follower, fmt.Sprintf("during%d", attempt))
		if last.Status == http.StatusInsufficientStorage {
			refused++
		}
		l, _, ok := c.Leader()
		if ok {
			now = l
		}
		return refused > 0 && last.Status == http.StatusCreated && ok && now != leader,
			fmt.Sprintf("%d refusals, leader %s, last %s", refused, c.Replica(now).ID, last)
	})
	if err != nil {
		t.Fatalf("no write acknowledged by another leader with %s's data dir almost full: %v", c.Replica(leader).ID, err)
	}
	t.Logf("%s handed leadership to %s; a write through %s was acknowledged after %d attempts", c.Replica(leader).ID, c.Replica(now).ID, c.Replica(follower).ID, attempt)

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	err = harness.Eventually(harness.LeaderTimeout, func() (bool, string) {
		last = addUser(leader, "after")
		return last.Status == http.StatusCreated || last.Status == http.StatusConflict, last.String()
	})
	if err != nil {
		t.Fatalf("write through the old leader after freeing space: %v", err)
	}
}
