//go:build integration

package integration

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/fsm"
	"github.com/hakuriver/hakuriver-ha/integration/harness"
)

// TestDataDirHygiene runs a replica whose data dir is a 64 MiB tmpfs with
// min_free_disk 24Mi. Filling the filesystem makes writes fail with 507
// naming the reason while reads still work, and doctor fails the raft
// store check; freeing it lets writes through again. Then the replica's
// store is compacted: refused while the replica runs, done after it is
// killed, and the restarted replica has every account it had.
func TestDataDirHygiene(t *testing.T) {
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Fatalf("mount a tmpfs for the data dir (needs root): %v %s", err, out)
	}
	// Registered before the cluster's cleanup, so it runs after it.
	t.Cleanup(func() { exec.Command("umount", mnt).Run() }) //nolint:errcheck // best effort
	data := filepath.Join(mnt, "data")
	c := startCluster(t, harness.Options{Replicas: 1, Args: []string{"--data-dir", data, "--min-free-disk", "24Mi"}})

	addUser := func(name string) harness.Answer {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		a, err := c.Call(ctx, 0, http.MethodPost, "/api/users", api.UserRequest{Name: name, Role: fsm.RoleViewer})
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	if a := addUser("before"); a.Status != http.StatusCreated {
		t.Fatalf("add a user: %s", a)
	}

	// Fill the tmpfs to 16 MiB free: below the minimum.
	var st syscall.Statfs_t
	if err := syscall.Statfs(mnt, &st); err != nil {
		t.Fatal(err)
	}
	filler := filepath.Join(mnt, "filler")
	fill := int64(st.Bavail*uint64(st.Bsize)) - 16<<20
	if err := os.WriteFile(filler, make([]byte, fill), 0o600); err != nil {
		t.Fatal(err)
	}
	// The replica reads the free space at most once a second: a write may
	// still pass right after the fill.
	var refused harness.Answer
	attempt := 0
	err := harness.Eventually(10*time.Second, func() (bool, string) {
		attempt++
		refused = addUser(fmt.Sprintf("during%d", attempt))
		return refused.Status == http.StatusInsufficientStorage, refused.String()
	})
	if err != nil {
		t.Fatalf("write with the data dir almost full: want 507: %v", err)
	}
	if msg := string(refused.Body); !strings.Contains(msg, "min_free_disk") || !strings.Contains(msg, data) {
		t.Errorf("507 does not name the reason: %s", msg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	read, err := c.Call(ctx, 0, http.MethodGet, "/api/users/before", nil)
	cancel()
	if err != nil || read.Status != http.StatusOK {
		t.Errorf("read with the data dir almost full: %v %s", err, read)
	}
	if r := c.CLI("user", "add", "cli", "--role", "viewer"); r.Code == 0 || !strings.Contains(r.Stderr, "min_free_disk") {
		t.Errorf("CLI write with the data dir almost full: %s", r)
	}
	_, rep := runDoctor(t, c, c.Token())
	if !hasFailure(rep, "h1", "raft store", "min_free_disk") {
		t.Errorf("doctor does not fail the raft store check:%s", rep.failures())
	}

	if b, _ := os.ReadFile(c.Replica(0).LogPath()); !strings.Contains(string(b), `level=ERROR msg="data dir almost full`) {
		t.Errorf("the replica does not log the refusal")
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	err = harness.Eventually(10*time.Second, func() (bool, string) {
		a := addUser("after")
		return a.Status == http.StatusCreated || a.Status == http.StatusConflict, a.String()
	})
	if err != nil {
		t.Fatalf("write after freeing space: %v", err)
	}

	if b, _ := os.ReadFile(c.Replica(0).LogPath()); !strings.Contains(string(b), `msg="data dir has space again`) {
		t.Errorf("the replica does not log that writes resume")
	}

	// Compaction: refused while the replica holds the store.
	compact := func() harness.CLIResult {
		return harness.RunCLI(context.Background(), harness.CLICommand{Bin: c.Bin(), Args: []string{"host", "compact", "--data-dir", data}})
	}
	if r := compact(); r.Code == 0 || !strings.Contains(r.Stderr, "stop it first") || !strings.Contains(r.Stderr, fmt.Sprintf("(pid %d)", c.Replica(0).PID())) {
		t.Errorf("compact of a running replica's store: %s", r)
	}
	c.Kill(0)
	r := compact()
	if r.Code != 0 || !strings.Contains(r.Stdout, "compacted "+filepath.Join(data, "raft.db")) {
		t.Fatalf("compact: %s", r)
	}
	t.Logf("%s", strings.TrimSpace(r.Stdout))
	c.Restart(0)
	c.WaitStableLeader(harness.LeaderTimeout, harness.SettleTime)
	for _, name := range []string{"before", "after"} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		a, err := c.Call(ctx, 0, http.MethodGet, "/api/users/"+name, nil)
		cancel()
		if err != nil || a.Status != http.StatusOK {
			t.Errorf("user %s after compact and restart: %v %s", name, err, a)
		}
	}
}
