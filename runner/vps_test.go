package runner_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
	"golang.org/x/crypto/ssh"

	"github.com/hakuriver/hakuriver-ha/cluster"
	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/fsm"
	"github.com/hakuriver/hakuriver-ha/ops/environment"
	"github.com/hakuriver/hakuriver-ha/runner"
	"github.com/hakuriver/hakuriver-ha/runner/executor/docker"
	"github.com/hakuriver/hakuriver-ha/runner/executor/native"
	"github.com/hakuriver/hakuriver-ha/sshproxy"
	"github.com/hakuriver/hakuriver-ha/sshproxy/sshtest"
)

const sshdImage = "hakuriver-test/sshd:latest"

// requireSSHD returns an engine client when Docker and the sshd test image
// are there. Otherwise the test is skipped, or with HAKURIVER_REQUIRE_DOCKER=1
// the image is built and the test fails when that is impossible.
func requireSSHD(t *testing.T) *client.Client {
	t.Helper()
	required := os.Getenv("HAKURIVER_REQUIRE_DOCKER") == "1"
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err = cli.Ping(ctx)
		cancel()
	}
	if err != nil {
		if required {
			t.Fatalf("Docker engine required (HAKURIVER_REQUIRE_DOCKER=1) but unreachable: %v", err)
		}
		t.Skipf("skipping: Docker engine unreachable (%v); set HAKURIVER_REQUIRE_DOCKER=1 to make this a failure", err)
	}
	t.Cleanup(func() { cli.Close() })
	if _, err := cli.ImageInspect(context.Background(), sshdImage); err != nil {
		if !required {
			t.Skipf("skipping: test image %s is missing; build it with `make test-images` "+
				"(or set HAKURIVER_REQUIRE_DOCKER=1 to build it here and make its absence a failure)", sshdImage)
		}
		if out, err := exec.Command("bash", "../.ci/test-images.sh", "sshd").CombinedOutput(); err != nil {
			t.Fatalf("test image %s missing and .ci/test-images.sh sshd failed: %v\n%s", sshdImage, err, out)
		}
	}
	return cli
}

// TestVPSThroughAgent runs a VPS end to end on a real host replica and a
// real runner with the Docker executor: submitted without a target it is
// placed, runs with its port in the task, /api/vps/status and the SSH
// proxy; the key gets in with nproc matching its cores; pause and resume
// reach the container; kill ends it as killed and its container is removed.
func TestVPSThroughAgent(t *testing.T) {
	cli := requireSSHD(t)
	ctx := context.Background()
	suffix := make([]byte, 4)
	rand.Read(suffix) //nolint:errcheck // crypto/rand.Read never fails
	env := "hrtest-vps-" + hex.EncodeToString(suffix)
	// The environment's image without a tarball: the runner uses it as is.
	if err := cli.ImageTag(ctx, sshdImage, environment.ImageName(env)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// The tag and the cluster-scoped one the runner gave it, by name:
		// the test image itself stays.
		list, _ := cli.ImageList(context.Background(), image.ListOptions{Filters: filters.NewArgs(filters.Arg("reference", "hakuriver/"+env))}) //nolint:errcheck // cleanup
		for _, im := range list {
			for _, tag := range im.RepoTags {
				if strings.HasPrefix(tag, "hakuriver/"+env+":") {
					cli.ImageRemove(context.Background(), tag, image.RemoveOptions{}) //nolint:errcheck // cleanup
				}
			}
		}
	})

	shared := t.TempDir()
	hc := cluster.DefaultConfig()
	hc.NodeID, hc.DataDir, hc.SharedDir = "h1", t.TempDir(), shared
	hc.APIPort, hc.RaftPort, hc.GossipPort = 0, 0, 0
	hc.FastGossip, hc.ClusterToken = true, "secret-token"
	// Callers without a token act as operators: these tests are about the
	// runner, not the accounts.
	hc.AnonymousRole = fsm.RoleOperator
	hc.HeartbeatInterval = 500 * time.Millisecond
	hc.DefaultContainer = env
	// Callers without a token act as operators: this test is about the
	// VPS, not the accounts (the SSH proxy's line protocol included).
	hc.AnonymousRole = fsm.RoleOperator
	hc.Logger = logger(t)
	h, err := cluster.StartHost(ctx, hc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close(context.Background()) })

	tmp, state := t.TempDir(), t.TempDir()
	name := "vps-runner-" + hex.EncodeToString(suffix)
	dc := docker.DefaultConfig()
	dc.SharedDir, dc.RunnerName, dc.LocalTempDir, dc.Logger = shared, name, tmp, logger(t)
	dc.StateDir = filepath.Join(state, "docker-tasks")
	dex, err := docker.NewExecutor(dc)
	if err != nil {
		t.Fatal(err)
	}
	nc := native.DefaultConfig()
	nc.StateDir = filepath.Join(state, "tasks")
	nc.ShimCommand = []string{"/bin/false"}
	nex, err := native.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	rc := runner.DefaultConfig()
	rc.Name, rc.BindAddr, rc.AdvertiseAddr, rc.Port, rc.GossipPort = name, "127.0.0.1", "127.0.0.1", 0, 0
	rc.Join, rc.Token, rc.SharedDir, rc.LocalTempDir = []string{h.GossipAddr()}, "secret-token", shared, tmp
	rc.StateDir = state
	rc.HeartbeatInterval, rc.FastGossip, rc.Native, rc.Docker = 500*time.Millisecond, true, nex, dex
	rc.Logger = logger(t)
	a, err := runner.Start(ctx, rc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		a.Close(context.Background())
		dex.Close()
	})

	cc := api.DefaultClientConfig()
	cc.Hosts = []string{h.APIURL()}
	c, err := api.NewClient(cc)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for !a.Registered() && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	wait := func(id string, ok func(api.Task) bool, what string) api.Task {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for time.Now().Before(deadline) {
			if tk, err := c.Status(ctx, id); err == nil && ok(tk) {
				return tk
			}
			time.Sleep(50 * time.Millisecond)
		}
		tk, _ := c.Status(ctx, id)
		t.Fatalf("task %s never %s: %+v", id, what, tk)
		return tk
	}

	key := sshtest.NewKey(t).Signer
	cores := 1
	sr, err := c.Submit(ctx, api.SubmitRequest{TaskType: "vps", Command: string(ssh.MarshalAuthorizedKey(key.PublicKey())), RequiredCores: &cores})
	if err != nil {
		t.Fatal(err)
	}
	id := sr.TaskIDs[0]
	t.Cleanup(func() { c.Kill(context.Background(), id) }) //nolint:errcheck // cleanup when the test failed midway
	tk := wait(id, func(tk api.Task) bool { return tk.Status == fsm.StatusRunning && tk.SSHPort > 0 }, "running with an SSH port")
	if tk.AssignedNode != name {
		t.Fatalf("placed on %q", tk.AssignedNode)
	}
	var active []api.Task
	if _, err := c.Do(ctx, "GET", "/api/vps/status", nil, &active); err != nil || len(active) != 1 || active[0].SSHPort != tk.SSHPort {
		t.Fatalf("/api/vps/status = %+v, %v", active, err)
	}

	// Through the host's SSH proxy (line protocol), as `hakuriver ssh` goes.
	n, _ := strconv.ParseInt(id, 10, 64)
	run := func(cmd string) (string, error) {
		conn, err := sshproxy.DialTunnel(ctx, h.SSHProxyAddr(), n, 5*time.Second)
		if err != nil {
			return "", err
		}
		out, err := sshtest.Exec(conn, key, cmd)
		return strings.TrimSpace(out), err
	}
	out, err := run("hostname; nproc")
	if want := fmt.Sprintf("%s\n%d", docker.VPSContainerName(n), cores); err != nil || out != want {
		t.Fatalf("hostname; nproc through the proxy = %q, %v; want %q", out, err, want)
	}
	if _, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(tk.SSHPort)), 5*time.Second); err != nil {
		t.Fatalf("published port: %v", err)
	}

	if _, err := c.Pause(ctx, id); err != nil {
		t.Fatal(err)
	}
	wait(id, func(tk api.Task) bool { return tk.Status == fsm.StatusPaused }, "paused")
	if ins, err := cli.ContainerInspect(ctx, docker.VPSContainerName(n)); err != nil || !ins.State.Paused {
		t.Fatalf("container after pause: %v %+v", err, ins.State)
	}
	if _, err := c.Resume(ctx, id); err != nil {
		t.Fatal(err)
	}
	wait(id, func(tk api.Task) bool { return tk.Status == fsm.StatusRunning }, "running again")
	if out, err := run("echo back"); err != nil || out != "back" {
		t.Fatalf("ssh after resume = %q, %v", out, err)
	}

	if _, err := c.Kill(ctx, id); err != nil {
		t.Fatal(err)
	}
	wait(id, func(tk api.Task) bool { return tk.Status == fsm.StatusKilled }, "killed")
	deadline = time.Now().Add(30 * time.Second)
	for {
		if _, err := cli.ContainerInspect(ctx, docker.VPSContainerName(n)); client.IsErrNotFound(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the killed VPS's container was not removed")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, err := c.Do(ctx, "GET", "/api/vps/status", nil, &active); err != nil || len(active) != 0 {
		t.Fatalf("/api/vps/status after kill = %+v, %v", active, err)
	}
}
