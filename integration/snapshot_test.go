//go:build integration

package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/integration/harness"
)

// snapshotInfo is the JSON of `cluster snapshot save|inspect -o json`.
type snapshotInfo struct {
	File       string `json:"file"`
	Bytes      int64  `json:"bytes"`
	SHA256     string `json:"sha256"`
	ChecksumOK bool   `json:"checksum_ok"`
	StateOK    bool   `json:"state_ok"`
	Header     struct {
		Format       int    `json:"format"`
		ClusterID    string `json:"cluster_id"`
		AppliedIndex uint64 `json:"applied_index"`
		Term         uint64 `json:"term"`
		Counts       struct {
			Tasks        map[string]int `json:"tasks"`
			TasksTotal   int            `json:"tasks_total"`
			Nodes        int            `json:"nodes"`
			Environments int            `json:"environments"`
			Tarballs     int            `json:"tarballs"`
			Users        int            `json:"users"`
			Groups       int            `json:"groups"`
			Tokens       int            `json:"tokens"`
		} `json:"counts"`
	} `json:"header"`
}

// TestSnapshotSaveRestore backs up a real three-replica cluster with tasks,
// a node, an environment and accounts through a follower, refuses the
// backup to everyone but an admin, refuses damaged files (one byte
// flipped, truncated, a newer format), checks the leader's periodic
// backups and their retention, then restores the file into a new
// one-replica cluster and checks that it serves identical tasks, nodes and
// accounts under the same cluster ID, that an old API token authenticates
// there, and that another replica joins it.
func TestSnapshotSaveRestore(t *testing.T) {
	// Every replica is told to write periodic backups into one directory,
	// as on shared storage: only the leader writes, keeping the newest 2.
	backups := t.TempDir()
	a := startCluster(t, harness.Options{HeartbeatInterval: hbInterval, HeartbeatTimeoutFactor: hbFactor,
		Args: []string{"--backup-dir", backups, "--backup-interval", "1", "--backup-keep", "2"}})
	a.StartRunner("snap-r1", twoCores)
	ctx := context.Background()

	// Accounts: a user with a token, a viewer, a group.
	a.CLIOK("group", "add", "lab")
	a.CLIOK("user", "add", "alice", "--role", "user", "--group", "lab")
	a.CLIOK("user", "add", "vic", "--role", "viewer")
	var alice, vic api.TokenResponse
	if err := a.CLIOK("-o", "json", "token", "create", "--user", "alice", "--name", "laptop").Decode(&alice); err != nil {
		t.Fatal(err)
	}
	if err := a.CLIOK("-o", "json", "token", "create", "--user", "vic", "--name", "ro").Decode(&vic); err != nil {
		t.Fatal(err)
	}
	// Tasks, all ended (a completed, a failed and a killed one).
	var ids []string
	ids = append(ids, submitOne(t, a, 0, shell("echo one")), submitOne(t, a, 1, shell("exit 3")))
	sleeper := submitOne(t, a, 2, shell("sleep 60"))
	a.WaitStatus(sleeper, "running", taskTimeout)
	a.KillTask(0, sleeper)
	ids = append(ids, sleeper)
	a.WaitAllFinal(ids, taskTimeout)
	// The kill is committed at once; the runner's report of the end, with
	// its figures, follows it: the snapshot below is to hold that too (the
	// old cluster's view is read well after it).
	a.WaitTask(sleeper, taskTimeout, "to record the end's figures", func(tk api.Task) bool { return tk.Usage != nil })
	// An environment with its tarball record, as a replica records it.
	env := map[string]any{"name": "snapenv", "replica": a.Replica(0).ID,
		"tarball": map[string]any{"version": 1700000000, "sha256": strings.Repeat("ab", 32), "size": 42}}
	if ans, err := a.CallInternal(ctx, 0, http.MethodPost, "/api/docker/internal/environments", env); err != nil || ans.Status != http.StatusOK {
		t.Fatalf("record an environment: %v %s", err, ans)
	}

	follower := a.Followers()[0]
	dir := t.TempDir()
	file := filepath.Join(dir, "backup.snap")

	t.Run("refused to non-admins", func(t *testing.T) {
		a := a.For(t)
		for name, call := range map[string]func() (harness.Answer, error){
			"user": func() (harness.Answer, error) {
				return a.CallAs(ctx, follower, "GET", api.SnapshotPath, alice.Token, nil)
			},
			"viewer": func() (harness.Answer, error) {
				return a.CallAs(ctx, follower, "GET", api.SnapshotPath, vic.Token, nil)
			},
			"cluster token": func() (harness.Answer, error) { return a.CallInternal(ctx, follower, "GET", api.SnapshotPath, nil) },
			"anonymous":     func() (harness.Answer, error) { return a.CallAs(ctx, follower, "GET", api.SnapshotPath, "", nil) },
		} {
			ans, err := call()
			if err != nil || (ans.Status != http.StatusForbidden && ans.Status != http.StatusUnauthorized) || bytes.Contains(ans.Body, []byte("HAKURIVER-SNAPSHOT")) {
				t.Errorf("snapshot as %s: %v %s, want 401/403 and no state", name, err, ans)
			}
		}
		r := harness.RunCLI(ctx, harness.CLICommand{Bin: a.Bin(), Env: []string{"HAKURIVER_TOKEN=" + alice.Token},
			Args: []string{"--host", a.HostFlag(follower), "cluster", "snapshot", "save", filepath.Join(dir, "alice.snap")}})
		if r.Code == 0 || !strings.Contains(r.Stderr, "HTTP 403") {
			t.Errorf("save as alice: %s", r)
		}
		if _, err := os.Stat(filepath.Join(dir, "alice.snap")); err == nil {
			t.Errorf("a refused save left a file")
		}
	})

	var saved snapshotInfo
	if err := a.CLIVia([]int{follower}, 2*time.Minute, "", "-o", "json", "cluster", "snapshot", "save", file).Decode(&saved); err != nil {
		t.Fatal(err)
	}
	cnt := saved.Header.Counts
	if !saved.ChecksumOK || saved.Header.Format != 1 || saved.Header.ClusterID == "" || saved.Header.AppliedIndex == 0 || saved.Header.Term == 0 ||
		cnt.TasksTotal != 3 || cnt.Tasks["completed"] != 1 || cnt.Tasks["failed"] != 1 || cnt.Tasks["killed"] != 1 ||
		cnt.Nodes != 1 || cnt.Environments != 1 || cnt.Tarballs != 1 || cnt.Users != 3 || cnt.Groups != 1 || cnt.Tokens != 3 {
		t.Fatalf("saved snapshot: %+v", saved)
	}
	r := a.CLIOK("cluster", "snapshot", "inspect", file)
	for _, want := range []string{"Checksum:", "OK", "State:", saved.Header.ClusterID, "completed 1", "failed 1", "killed 1"} {
		if !strings.Contains(r.Stdout, want) {
			t.Fatalf("inspect does not show %q: %s", want, r)
		}
	}

	t.Run("periodic backups", func(t *testing.T) {
		a := a.For(t)
		list := func() []string {
			entries, _ := os.ReadDir(backups)
			var names []string
			for _, e := range entries {
				if strings.HasSuffix(e.Name(), ".snap") && !strings.HasPrefix(e.Name(), ".") {
					names = append(names, e.Name())
				}
			}
			return names
		}
		var first []string
		a.Poll(30*time.Second, "two periodic backups", func() (bool, string) {
			first = list()
			return len(first) >= 2, strings.Join(first, " ")
		})
		// Newer files come (the state changes: a newer tarball is recorded)
		// and the oldest go: never more than 2 once pruned.
		version := 1700000000
		a.Poll(30*time.Second, "the oldest backup to be pruned", func() (bool, string) {
			version++
			env["tarball"] = map[string]any{"version": version, "sha256": strings.Repeat("cd", 32), "size": 43}
			if ans, err := a.CallInternal(ctx, 0, http.MethodPost, "/api/docker/internal/environments", env); err != nil || ans.Status != http.StatusOK {
				return false, fmt.Sprintf("record a newer tarball: %v %s", err, ans)
			}
			now := list()
			return len(now) == 2 && now[0] != first[0] && now[1] != first[0], strings.Join(now, " ")
		})
		now := list()
		var info snapshotInfo
		if err := a.CLIOK("-o", "json", "cluster", "snapshot", "inspect", filepath.Join(backups, now[len(now)-1])).Decode(&info); err != nil ||
			!info.ChecksumOK || !info.StateOK || info.Header.ClusterID != saved.Header.ClusterID || info.Header.Counts.TasksTotal != 3 {
			t.Fatalf("newest periodic backup: %+v %v", info, err)
		}
	})

	// What the old cluster serves, to compare with the restored one.
	l := a.WaitLeader(harness.LeaderTimeout)
	before := clusterView(t, a, l)
	if !strings.Contains(before["tasks"], `"task_id":"`+sleeper+`"`) || !strings.Contains(before["nodes"], "snap-r1") ||
		!strings.Contains(before["users"], "alice") || !strings.Contains(before["groups"], "lab") || !strings.Contains(before["tokens"], alice.TokenID) {
		t.Fatalf("the old cluster's view misses what the test made: %v", before)
	}

	t.Run("damaged files refused", func(t *testing.T) {
		a := a.For(t)
		good, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		flipped := append([]byte(nil), good...)
		flipped[len(flipped)/2] ^= 0x01
		newer := bytes.Replace(good, []byte(`{"format":1,`), []byte(`{"format":2,`), 1)
		for name, tc := range map[string]struct {
			data []byte
			want string
		}{
			"one byte flipped": {flipped, "checksum mismatch"},
			"truncated":        {good[:len(good)-100], "not a valid hakuriver snapshot"},
			"cut in the body":  {good[:len(good)/2], "not a valid hakuriver snapshot"},
			"newer format":     {newer, "newer format"},
			"not a snapshot":   {[]byte("{}\n"), "not a valid hakuriver snapshot"},
		} {
			bad := filepath.Join(t.TempDir(), "bad.snap")
			if err := os.WriteFile(bad, tc.data, 0o600); err != nil {
				t.Fatal(err)
			}
			r := a.CLI("cluster", "snapshot", "inspect", bad)
			if r.Code == 0 || !strings.Contains(r.Stdout+r.Stderr, tc.want) {
				t.Errorf("inspect %s: want a refusal naming %q: %s", name, tc.want, r)
			}
			if name == "one byte flipped" && !strings.Contains(r.Stdout, "BAD") {
				t.Errorf("inspect %s: no checksum BAD: %s", name, r)
			}
			data := filepath.Join(t.TempDir(), "data")
			r = a.CLI("cluster", "snapshot", "restore", bad, "--data-dir", data, "--node-id", "x1", "--bind", "127.0.0.1", "--raft-port", "18300")
			if r.Code == 0 || !strings.Contains(r.Stderr, tc.want) {
				t.Errorf("restore %s: want a refusal naming %q: %s", name, tc.want, r)
			}
			if entries, _ := os.ReadDir(data); len(entries) > 0 {
				t.Errorf("restore %s left %d entries in the data dir", name, len(entries))
			}
		}
		// A data dir in use is refused.
		r := a.CLI("cluster", "snapshot", "restore", file, "--data-dir", a.Replica(0).DataDir(), "--node-id", "x1", "--bind", "127.0.0.1", "--raft-port", "18300")
		if r.Code == 0 || !strings.Contains(r.Stderr, "not empty") {
			t.Errorf("restore into a replica's data dir: %s", r)
		}
	})

	// Disaster recovery: a new one-replica cluster from the file, with the
	// same cluster token (the same config), acting as the old admin.
	b := startCluster(t, harness.Options{Replicas: 1, RestoreFrom: file, AdminToken: a.AdminToken(), Token: a.Token(),
		HeartbeatInterval: hbInterval, HeartbeatTimeoutFactor: hbFactor})
	after := clusterView(t, b, 0)
	for _, k := range []string{"tasks", "users", "groups", "tokens", "nodes"} {
		if before[k] != after[k] {
			t.Errorf("restored %s differ:\nbefore %s\nafter  %s", k, before[k], after[k])
		}
	}
	if st, err := b.Status(0); err != nil || st.ClusterID != saved.Header.ClusterID || st.AppliedIndex < saved.Header.AppliedIndex {
		t.Errorf("restored cluster: %+v %v, want cluster %s at index >= %d", st, err, saved.Header.ClusterID, saved.Header.AppliedIndex)
	}
	// alice's token, created in the old cluster, works in the new one.
	ans, err := b.CallAs(ctx, 0, "GET", "/api/auth/whoami", alice.Token, nil)
	var who api.WhoAmI
	if err != nil || ans.Status != http.StatusOK || ans.Decode(&who) != nil || who.User != "alice" {
		t.Fatalf("alice's old token on the restored cluster: %v %s", err, ans)
	}
	// The environment came along: a snapshot of the new cluster counts it.
	var again snapshotInfo
	if err := b.CLIOK("-o", "json", "cluster", "snapshot", "save", filepath.Join(dir, "again.snap")).Decode(&again); err != nil ||
		again.Header.Counts.Environments != 1 || again.Header.Counts.Tarballs != 1 || again.Header.ClusterID != saved.Header.ClusterID {
		t.Fatalf("snapshot of the restored cluster: %+v %v", again, err)
	}
	// Another replica joins the restored cluster and serves the same state.
	j := b.AddReplica()
	b.WaitVoters(2, harness.LeaderTimeout)
	b.Poll(harness.LeaderTimeout, "the joined replica to serve the tasks", func() (bool, string) {
		v := clusterView(t, b, j)
		return v["tasks"] == after["tasks"], v["tasks"]
	})
}

// clusterView returns what replica i serves, as JSON by kind: tasks,
// users, groups, tokens (all, as an admin sees them) and nodes (the
// replicated fields but the online status, which the new leader
// judges itself).
func clusterView(t *testing.T, c *harness.Cluster, i int) map[string]string {
	t.Helper()
	out := map[string]string{}
	tasks, err := c.AllTasks(i)
	if err != nil {
		t.Fatal(err)
	}
	out["tasks"] = mustJSON(t, tasks)
	for _, k := range []string{"users", "groups", "tokens"} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		ans, err := c.Call(ctx, i, "GET", "/api/"+k, nil)
		cancel()
		if err != nil || ans.Status != http.StatusOK {
			t.Fatalf("GET /api/%s: %v %s", k, err, ans)
		}
		var v any
		if err := ans.Decode(&v); err != nil {
			t.Fatal(err)
		}
		out[k] = mustJSON(t, v)
	}
	nodes, err := c.Nodes(i)
	if err != nil {
		t.Fatal(err)
	}
	type node struct {
		Name, URL  string
		Cores      int
		Memory     int64
		Drain      bool
		Registered time.Time
	}
	var ns []node
	for _, n := range nodes {
		ns = append(ns, node{n.Hostname, n.URL, n.TotalCores, n.MemoryTotalBytes, n.Drained, n.RegisteredAt})
	}
	out["nodes"] = mustJSON(t, ns)
	return out
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
