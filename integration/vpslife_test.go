//go:build integration

package integration

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/fsm"
	"github.com/hakuriver/hakuriver-ha/integration/harness"
)

// vpsLife is the cluster of TestVPSLifecycle: alice owns the VPS, bob is
// another user.
type vpsLife struct {
	c          *harness.Cluster
	node       string // the runner every VPS here runs on
	env        string
	alice, bob sshAccount
}

// as runs the CLI as account a through every replica.
func (v *vpsLife) as(t *testing.T, a sshAccount, timeout time.Duration, args ...string) harness.CLIResult {
	t.Helper()
	return cliAs(t, v.c, a, nil, timeout, args...)
}

// create makes a VPS of alice's on v.node holding every core of it (2),
// from v.env unless from (flags) says otherwise, and returns its ID.
func (v *vpsLife) create(t *testing.T, name string, from ...string) string {
	t.Helper()
	if len(from) == 0 {
		from = []string{"--container", v.env}
	}
	args := append([]string{"-o", "json", "vps", "create", "--wait", "--poll-interval", "200ms",
		"--cores", "2", "--target", v.node, "--name", name, "--public-key-file", v.alice.key + ".pub"}, from...)
	r := v.as(t, v.alice, vpsStartTimeout, args...)
	var created vpsCreated
	if r.Code != 0 || r.Decode(&created) != nil || created.Task == nil || created.Task.SSHPort <= 0 {
		t.Fatalf("alice's vps create: %s", r)
	}
	id := created.TaskID
	t.Cleanup(func() {
		v.c.CLI("vps", "kill", id)
		harness.RemoveContainers(t, "hakuriver-vps-"+id)
	})
	return id
}

// ssh runs script in VPS ref (ID or name) as alice through a follower's
// SSH proxy.
func (v *vpsLife) ssh(t *testing.T, ref, script string) harness.CLIResult {
	t.Helper()
	i := v.c.Followers()[0]
	return cliAs(t, v.c, v.alice, []int{i}, sshTimeout, "ssh", "--proxy-port", proxyPort(t, v.c.SSHProxy(i)), "--key", v.alice.key, ref, "--",
		"-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "ConnectTimeout=10", script)
}

// nodeCores returns the cores in use on v.node as the leader accounts them.
func (v *vpsLife) nodeCores(t *testing.T) int {
	t.Helper()
	var nodes []api.NodeView
	if err := v.c.CLIOK("-o", "json", "node", "list").Decode(&nodes); err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		if n.Hostname == v.node {
			return n.CoresInUse
		}
	}
	t.Fatalf("node %s not in node list", v.node)
	return 0
}

// wantFail checks that r failed with an error containing want.
func wantFail(t *testing.T, what string, r harness.CLIResult, want string) {
	t.Helper()
	if r.Code == 0 || !strings.Contains(r.Stderr, want) {
		t.Errorf("%s: want a failure saying %q, got %s", what, want, r)
	}
}

// TestVPSLifecycle: alice's VPS, holding all the cores of its node, is
// stopped and started by name: a file written over ssh before the stop is
// there after the start (through the SSH proxy again, on its new port); the
// stop frees the cores at once (a task that waited for them runs, node list
// shows them free); a start while that task holds them is refused for want
// of room; bob can neither stop nor start nor snapshot it. Stopped with
// --snapshot, it is listed and restores into a new VPS that has the file;
// Bob may not start a VPS or a task from alice's snapshot (her disk);
// alice may not snapshot into the default environment (not yet made);
// the snapshot is deleted (bob may not) and cannot be used any more.
// The stopped VPS outlives the loss of the leader: the next leader starts
// it. Killing a stopped VPS removes its kept container; a start after the
// container was removed behind the cluster's back says so and leaves it
// stopped.
func TestVPSLifecycle(t *testing.T) {
	requireDocker(t, sshdImage)
	requireSSH(t)
	// The default environment of tasks that name none, not created (yet).
	dflt := envName("hkt-vldefault")
	c, names := startDockerClusterWith(t, "vl", harness.Options{Args: []string{"--default-container-name", dflt}})
	v := &vpsLife{c: c, node: names[0], env: envName("hkt-vpslife")}
	createEnvironment(t, c, sshdImage, v.env)
	createTar(t, c, v.env)
	dir := t.TempDir()
	leader := c.WaitLeader(30 * time.Second)
	v.alice = newSSHAccount(t, c, leader, dir, "alice")
	v.bob = newSSHAccount(t, c, leader, dir, "bob")

	name := "box-" + uniqueSuffix()
	id := v.create(t, name)
	marker := "kept-" + uniqueSuffix()
	if r := v.ssh(t, name, "echo "+marker+" > /root/keep.txt && sync && cat /root/keep.txt"); r.Code != 0 || strings.TrimSpace(r.Stdout) != marker {
		t.Fatalf("write the file over ssh: %s", r)
	}

	// A task needing the node's 2 cores waits while the VPS holds them.
	waiter := submitOne(t, c, leader, onTarget(withCores(shell("sleep 300"), 2), v.node))
	t.Cleanup(func() { c.CLI("task", "kill", waiter) })
	if task, err := c.Task(leader, waiter); err != nil || task.Status != "pending" {
		t.Fatalf("the task needing the VPS's cores: %s, %v (want pending)", describe(task), err)
	}
	if n := v.nodeCores(t); n != 2 {
		t.Errorf("node list: %d cores in use on %s with the VPS running, want 2", n, v.node)
	}

	wantFail(t, "bob stops alice's VPS", v.as(t, v.bob, 0, "vps", "stop", id), "forbidden")
	if r := v.as(t, v.alice, time.Minute, "vps", "stop", name); r.Code != 0 || !strings.Contains(r.Stdout, "stopped") {
		t.Fatalf("alice's vps stop: %s", r)
	}
	task := c.WaitStatus(id, "stopped", 30*time.Second)
	if task.AssignedNode != v.node || task.SSHPort != 0 {
		t.Errorf("stopped VPS: node %q, ssh port %d (want %s, 0)", task.AssignedNode, task.SSHPort, v.node)
	}
	if st, err := harness.DockerState("hakuriver-vps-" + id); err != nil || st != "exited" {
		t.Errorf("stopped VPS's container: %q, %v (want kept, exited)", st, err)
	}
	// The cores are free at once: the waiting task runs on the node.
	c.WaitStatus(waiter, "running", 60*time.Second)
	if r := v.ssh(t, id, "true"); r.Code == 0 {
		t.Errorf("ssh to a stopped VPS succeeded: %s", r)
	}

	wantFail(t, "bob starts alice's VPS", v.as(t, v.bob, 0, "vps", "start", name), "forbidden")
	wantFail(t, "start with no room", v.as(t, v.alice, 0, "vps", "start", id), "no room on its node")
	if task, err := c.Task(leader, id); err != nil || task.Status != "stopped" {
		t.Fatalf("after the refused starts: %s, %v", describe(task), err)
	}
	c.CLIOK("task", "kill", waiter)
	c.WaitFinal(waiter, 30*time.Second)

	r := v.as(t, v.alice, vpsStartTimeout, "-o", "json", "vps", "start", name, "--wait", "--poll-interval", "200ms")
	var started api.Task
	if r.Code != 0 || r.Decode(&started) != nil || started.Status != "running" || started.SSHPort <= 0 || started.AssignedNode != v.node {
		t.Fatalf("alice's vps start --wait: %s", r)
	}
	if r := v.ssh(t, name, "cat /root/keep.txt"); r.Code != 0 || strings.TrimSpace(r.Stdout) != marker {
		t.Errorf("the file written before the stop, after the start: %s", r)
	}
	if n := v.nodeCores(t); n != 2 {
		t.Errorf("node list: %d cores in use on %s after the start, want 2", n, v.node)
	}

	// Stopped with a snapshot, which restores into a new VPS with the file.
	snap := "snap-" + uniqueSuffix()
	if r := v.as(t, v.alice, 5*time.Minute, "vps", "stop", name, "--snapshot", "--snapshot-name", snap); r.Code != 0 || !strings.Contains(r.Stdout, "Snapshot "+snap) {
		t.Fatalf("vps stop --snapshot: %s", r)
	}
	t.Cleanup(func() { harness.RemoveImages(t, envImage(snap)) })
	c.WaitStatus(id, "stopped", 30*time.Second)
	wantFail(t, "bob snapshots alice's VPS", v.as(t, v.bob, 0, "vps", "snapshot", id, "--name", "bobs-"+uniqueSuffix()), "forbidden")
	var snaps []fsm.VPSSnapshot
	if err := v.as(t, v.bob, 0, "-o", "json", "vps", "snapshots").Decode(&snaps); err != nil {
		t.Fatal(err)
	}
	if len(snaps) != 1 || snaps[0].Name != snap || fmt.Sprint(snaps[0].TaskID) != id || snaps[0].Owner != "alice" || snaps[0].Version <= 0 {
		t.Fatalf("vps snapshots: %+v", snaps)
	}
	// The snapshot is alice's disk: bob may start neither a VPS nor a
	// command task from it (nothing is submitted).
	wantFail(t, "bob creates a VPS from alice's snapshot", v.as(t, v.bob, 0, "vps", "create", "--from-snapshot", snap, "--public-key-file", v.bob.key+".pub"), "forbidden: container_name")
	wantFail(t, "bob runs a task in alice's snapshot", v.as(t, v.bob, 0, "task", "submit", "--container", snap, "--target", v.node, "--", "cat", "/root/keep.txt"), "forbidden: container_name")
	var bobs []api.Task
	if err := v.as(t, v.bob, 0, "-o", "json", "task", "list", "--mine").Decode(&bobs); err != nil || len(bobs) != 0 {
		t.Errorf("bob's tasks after the refused submits: %+v, %v (want none)", bobs, err)
	}
	// The default environment, not made yet, is not alice's to fill:
	// every task naming no environment would run in her image.
	t.Cleanup(func() { harness.RemoveImages(t, envImage(dflt)) })
	wantFail(t, "alice snapshots into the default environment", v.as(t, v.alice, 5*time.Minute, "vps", "snapshot", id, "--name", dflt), "forbidden: name")
	restored := v.create(t, "restored-"+uniqueSuffix(), "--from-snapshot", snap)
	if r := v.ssh(t, restored, "cat /root/keep.txt; hostname"); r.Code != 0 || strings.Join(strings.Fields(r.Stdout), " ") != marker+" hakuriver-vps-"+restored {
		t.Errorf("the snapshot's file in the VPS restored from it: %s", r)
	}
	c.CLIOK("vps", "kill", restored)
	c.WaitStatus(restored, "killed", 30*time.Second)
	wantFail(t, "bob deletes alice's snapshot", v.as(t, v.bob, 0, "vps", "snapshots", "delete", snap), "forbidden")
	if r := v.as(t, v.alice, 0, "vps", "snapshots", "delete", snap); r.Code != 0 {
		t.Fatalf("vps snapshots delete: %s", r)
	}
	if err := v.as(t, v.alice, 0, "-o", "json", "vps", "snapshots").Decode(&snaps); err != nil || len(snaps) != 0 {
		t.Errorf("vps snapshots after the delete: %+v, %v", snaps, err)
	}
	if tbs, _ := filepath.Glob(filepath.Join(c.SharedDir(), tarballDir, snap+"-*.tar")); len(tbs) != 0 {
		t.Errorf("tarballs of the deleted snapshot remain: %v", tbs)
	}
	wantFail(t, "create from a deleted snapshot", v.as(t, v.alice, 0, "vps", "create", "--from-snapshot", snap, "--public-key-file", v.alice.key+".pub"), "no VPS snapshot is named")

	// The stopped VPS outlives its leader: the next one starts it, and the
	// file and the SSH path are as before.
	c.Kill(leader)
	leader = c.WaitNewLeader(leader, harness.LeaderTimeout)
	r = v.as(t, v.alice, vpsStartTimeout, "-o", "json", "vps", "start", name, "--wait", "--poll-interval", "200ms")
	if r.Code != 0 || r.Decode(&started) != nil || started.Status != "running" || started.AssignedNode != v.node {
		t.Fatalf("vps start --wait under the new leader: %s", r)
	}
	if r := v.ssh(t, name, "cat /root/keep.txt"); r.Code != 0 || strings.TrimSpace(r.Stdout) != marker {
		t.Errorf("the file after a start by the new leader: %s", r)
	}
	if r := v.as(t, v.alice, time.Minute, "vps", "stop", id); r.Code != 0 {
		t.Fatalf("vps stop under the new leader: %s", r)
	}
	c.WaitStatus(id, "stopped", 30*time.Second)

	// Killing a stopped VPS removes its kept container.
	if r := v.as(t, v.alice, 0, "vps", "kill", name); r.Code != 0 {
		t.Fatalf("vps kill of a stopped VPS: %s", r)
	}
	c.WaitStatus(id, "killed", 30*time.Second)
	c.Poll(30*time.Second, "the killed stopped VPS's container to be removed", func() (bool, string) {
		st, err := harness.DockerState("hakuriver-vps-" + id)
		return err != nil, st
	})

	// A container removed behind the cluster's back: a clear refusal.
	gone := v.create(t, "gone-"+uniqueSuffix())
	v.as(t, v.alice, time.Minute, "vps", "stop", gone)
	c.WaitStatus(gone, "stopped", 30*time.Second)
	harness.RemoveContainers(t, "hakuriver-vps-"+gone)
	wantFail(t, "start after the container was removed", v.as(t, v.alice, 0, "vps", "start", gone), "no longer exists")
	if task, err := c.Task(leader, gone); err != nil || task.Status != "stopped" {
		t.Errorf("after the refused start: %s, %v (want stopped)", describe(task), err)
	}
	if got := fmt.Sprint(v.nodeCores(t)); got != "0" {
		t.Errorf("node list: %s cores in use with both VPS stopped or ended, want 0", got)
	}
}

// withCores returns req asking for n cores.
func withCores(req api.SubmitRequest, n int) api.SubmitRequest {
	req.RequiredCores = &n
	return req
}

// TestVPSIdleStop: with vps.idle_stop set, the leader stops (and keeps) a
// VPS nobody has an SSH session to, while a VPS with a session open
// through a follower's proxy keeps running past several idle periods; once
// that session ends, it is stopped too.
func TestVPSIdleStop(t *testing.T) {
	requireDocker(t, sshdImage)
	requireSSH(t)
	const idle = 10 * time.Second
	c, _ := startDockerClusterWith(t, "vi", harness.Options{AnonymousRole: "operator", Args: []string{"--idle-stop", fmt.Sprint(int(idle / time.Second))}})
	env := envName("hkt-vpsidle")
	createEnvironment(t, c, sshdImage, env)
	createTar(t, c, env)
	dir := t.TempDir()
	busy := vpsCreate(t, c, "--container", env, "--cores", "1", "--gen-ssh-key", "--key-out", filepath.Join(dir, "busy"))
	i := c.Followers()[0]
	session := c.StartCLIVia([]int{i}, 5*time.Minute, "ssh", "--proxy-port", proxyPort(t, c.SSHProxy(i)), "--key", busy.PrivateKeyFile, busy.TaskID, "--",
		"-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "echo ready; while [ ! -e /tmp/done ]; do sleep 0.2; done")
	c.Poll(sshTimeout, "the session to the busy VPS to start", func() (bool, string) {
		if r, done := session.Done(); done {
			t.Fatalf("the session ended early: %s", r)
		}
		return strings.Contains(session.Stdout(), "ready"), session.Stdout()
	})
	quiet := vpsCreate(t, c, "--container", env, "--cores", "1", "--gen-ssh-key", "--key-out", filepath.Join(dir, "quiet"))

	task := c.WaitTask(quiet.TaskID, 3*idle+harness.LeaderTimeout, "to be stopped for idleness", func(t api.Task) bool { return t.Status == "stopped" })
	if !strings.Contains(task.ErrorMessage, "no SSH session") {
		t.Errorf("idle-stopped VPS: message %q", task.ErrorMessage)
	}
	// The stop is committed before the runner's docker stop ends.
	c.Poll(30*time.Second, "the idle-stopped VPS's container to be stopped and kept", func() (bool, string) {
		st, err := harness.DockerState("hakuriver-vps-" + quiet.TaskID)
		if err != nil {
			t.Fatalf("idle-stopped VPS's container: %v (want it kept)", err)
		}
		return st == "exited", st
	})
	// The busy VPS runs on while its session is open, for 3 idle periods
	// past its start.
	started := time.Now()
	if busy.Task.StartedAt != nil {
		started = *busy.Task.StartedAt
	}
	c.Poll(6*idle, "the busy VPS to stay running for 3 idle periods", func() (bool, string) {
		bt := c.WaitTask(busy.TaskID, harness.LeaderTimeout, "to be known", func(api.Task) bool { return true })
		if bt.Status != "running" {
			t.Fatalf("the VPS with an open session was stopped: %s", describe(bt))
		}
		return time.Since(started) > 3*idle, describe(bt)
	})
	// End the session from inside the VPS.
	if out, err := exec.Command("docker", "exec", "hakuriver-vps-"+busy.TaskID, "touch", "/tmp/done").CombinedOutput(); err != nil {
		t.Fatalf("docker exec touch /tmp/done: %v: %s", err, out)
	}
	if r, done := session.Wait(sshTimeout); !done || r.Code != 0 {
		t.Fatalf("the session did not end cleanly: %v %s", done, r)
	}
	c.WaitTask(busy.TaskID, 3*idle+harness.LeaderTimeout, "to be stopped once its session ended", func(t api.Task) bool { return t.Status == "stopped" })
}
