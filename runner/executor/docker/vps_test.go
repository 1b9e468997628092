package docker

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"
	"github.com/docker/go-connections/nat"
	"golang.org/x/crypto/ssh"

	"github.com/hakuriver/hakuriver-ha/ops/environment"
	"github.com/hakuriver/hakuriver-ha/runner/executor"
	"github.com/hakuriver/hakuriver-ha/runner/resources"
	"github.com/hakuriver/hakuriver-ha/sshproxy/sshtest"
)

// sshdImage is built by .ci/test-images.sh sshd (make test-images).
const sshdImage = "hakuriver-test/sshd:latest"

// requireSSHDImage is requireDocker plus the sshd test image. A missing
// image is built with HAKURIVER_REQUIRE_DOCKER=1 (and the test fails when
// that fails); otherwise the test is skipped.
func requireSSHDImage(t testing.TB) *client.Client {
	t.Helper()
	cli := requireDocker(t)
	ctx := context.Background()
	if _, err := cli.ImageInspect(ctx, sshdImage); err == nil {
		return cli
	}
	if os.Getenv("HAKURIVER_REQUIRE_DOCKER") != "1" {
		t.Skipf("skipping: test image %s is missing; build it with `make test-images` "+
			"(or set HAKURIVER_REQUIRE_DOCKER=1 to build it here and make its absence a failure)", sshdImage)
	}
	script, _ := filepath.Abs("../../.ci/test-images.sh")
	out, err := exec.Command("bash", script, "sshd").CombinedOutput()
	if err != nil {
		t.Fatalf("test image %s missing and `%s sshd` failed: %v\n%s", sshdImage, script, err, out)
	}
	if _, err := cli.ImageInspect(ctx, sshdImage); err != nil {
		t.Fatalf("test image %s still missing after %s: %v\n%s", sshdImage, script, err, out)
	}
	return cli
}

// sshRun runs cmd as root in the VPS at 127.0.0.1:port with key and
// returns its combined output, trimmed.
func sshRun(port int, key ssh.Signer, cmd string) (string, error) {
	out, err := sshtest.Dial(net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), key, cmd)
	return strings.TrimSpace(out), err
}

func vpsSpec(id int64, pub string) executor.Spec {
	return executor.Spec{TaskID: id, TaskType: executor.TaskVPS, PublicKey: pub, Image: sshdImage}
}

// TestVPS runs a VPS from the sshd test image: its key gets in (and
// another does not), nproc shows its cores, a restarted runner finds it
// with its port, pause and resume change its state, and kill ends it as
// killed while keeping the container until Forget.
func TestVPS(t *testing.T) {
	cli := requireSSHDImage(t)
	cfg := testConfig(t)
	ctx := context.Background()
	k := sshtest.NewKey(t)
	key, pub := k.Signer, k.AuthorizedKey("test@hakuriver")
	other := sshtest.NewKey(t).Signer
	id := testTaskID()
	spec := vpsSpec(id, pub)
	spec.Cores = 1
	spec.MemoryBytes = 256 << 20

	e1, err := NewExecutor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e2 := newTestExecutor(t, cfg) // the same runner after a restart; cleans up
	if err := e1.Start(ctx, spec); err != nil {
		e1.Close()
		t.Fatal(err)
	}
	if err := e1.Start(ctx, spec); err != nil {
		t.Errorf("second Start (idempotent): %v", err)
	}
	st, ok := stateOf(t, e1, id)
	if !ok || !st.Running || st.Paused || st.SSHPort <= 0 || st.Exit != nil {
		e1.Close()
		t.Fatalf("state after Start: %+v %v", st, ok)
	}
	port := st.SSHPort

	ins, err := cli.ContainerInspect(ctx, VPSContainerName(id))
	if err != nil {
		e1.Close()
		t.Fatal(err)
	}
	hc := ins.HostConfig
	cpus, _ := resources.ParseCPUList(hc.CpusetCpus)
	if hc.NanoCPUs != 1e9 || hc.Memory != 256<<20 || len(cpus) != 1 || hc.RestartPolicy.Name != container.RestartPolicyUnlessStopped || hc.AutoRemove {
		t.Errorf("host config: nano_cpus %d memory %d cpuset %q restart %q auto-remove %v",
			hc.NanoCPUs, hc.Memory, hc.CpusetCpus, hc.RestartPolicy.Name, hc.AutoRemove)
	}
	if ins.Config.Labels[LabelTaskType] != executor.TaskVPS || ins.Config.Labels[LabelRunner] != cfg.RunnerName {
		t.Errorf("labels %v", ins.Config.Labels)
	}

	out, err := sshRun(port, key, "hostname; nproc; stat -c '%a %U' /root/.ssh /root/.ssh/authorized_keys; ls /etc/ssh/ssh_host_ed25519_key")
	if err != nil {
		e1.Close()
		t.Fatalf("ssh with the VPS key: %v (%s)", err, out)
	}
	want := VPSContainerName(id) + "\n1\n700 root\n600 root\n/etc/ssh/ssh_host_ed25519_key"
	if out != want {
		t.Errorf("hostname; nproc; modes in the VPS:\n%s\nwant:\n%s", out, want)
	}
	if out, err := sshRun(port, other, "true"); err == nil || !strings.Contains(err.Error(), "unable to authenticate") {
		t.Errorf("ssh with another key: err %v, output %q; want it refused", err, out)
	}

	// The runner restarts: the new executor finds the VPS by label.
	if err := e1.Close(); err != nil {
		t.Fatal(err)
	}
	if st, ok := stateOf(t, e2, id); !ok || !st.Running || st.SSHPort != port {
		t.Fatalf("restarted runner sees %+v %v; want it running on port %d", st, ok, port)
	}

	if err := e2.Pause(ctx, id); err != nil {
		t.Fatal(err)
	}
	if st, _ := stateOf(t, e2, id); !st.Paused || !st.Running || st.SSHPort != port {
		t.Fatalf("state after Pause: %+v", st)
	}
	if err := e2.Resume(ctx, id); err != nil {
		t.Fatal(err)
	}
	if st, _ := stateOf(t, e2, id); st.Paused || !st.Running {
		t.Fatalf("state after Resume: %+v", st)
	}
	if out, err := sshRun(port, key, "echo back"); err != nil || out != "back" {
		t.Fatalf("ssh after Resume: %q %v", out, err)
	}

	if err := e2.Kill(ctx, id); err != nil {
		t.Fatal(err)
	}
	ex := waitExit(t, e2, id, 30*time.Second)
	if !ex.Killed || ex.OOM {
		t.Fatalf("exit after Kill: %+v", ex)
	}
	// Docker decides on a restart while it handles the container's exit,
	// before a wait for the exit returns: a container it will restart is
	// "restarting" by now, one it leaves alone "exited". No sleep needed.
	ins, err = cli.ContainerInspect(ctx, VPSContainerName(id))
	if err != nil || ins.State.Running || ins.State.Restarting || ins.State.Status != "exited" || ins.RestartCount != 0 {
		t.Fatalf("after Kill the container must stay, stopped, until Forget: %v %+v", err, ins.State)
	}
	if err := e2.Forget(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.ContainerInspect(ctx, VPSContainerName(id)); err == nil {
		t.Fatal("container not removed by Forget")
	}
	if _, ok := stateOf(t, e2, id); ok {
		t.Fatal("VPS listed after Forget")
	}
}

// TestVPSCPUSpread checks that two one-core VPS tasks of a runner are
// pinned to different CPUs when there are two.
func TestVPSCPUSpread(t *testing.T) {
	if len(hostCPUs()) < 2 {
		t.Skip("skipping: needs at least 2 CPUs")
	}
	cli := requireSSHDImage(t)
	e := newTestExecutor(t, testConfig(t))
	ctx := context.Background()
	pub := sshtest.NewKey(t).AuthorizedKey("test@hakuriver")
	seen := map[string]bool{}
	for range 2 {
		spec := vpsSpec(testTaskID(), pub)
		spec.Cores = 1
		if err := e.Start(ctx, spec); err != nil {
			t.Fatal(err)
		}
		ins, err := cli.ContainerInspect(ctx, VPSContainerName(spec.TaskID))
		if err != nil {
			t.Fatal(err)
		}
		seen[ins.HostConfig.CpusetCpus] = true
	}
	if len(seen) != 2 {
		t.Fatalf("two 1-core VPS tasks share a CPU: %v", seen)
	}
}

func TestVPSStartFailures(t *testing.T) {
	cli := requireSSHDImage(t)
	cfg := testConfig(t)
	badDir := t.TempDir()
	cfg.AllowedMountSources = []string{badDir}
	e := newTestExecutor(t, cfg)
	// Generous: key generation is slow on a loaded machine, and a VPS whose
	// sshd exits fails at once anyway.
	e.sshdWait = 30 * time.Second
	ctx := context.Background()
	pub := sshtest.NewKey(t).AuthorizedKey("test@hakuriver")
	badConfig := filepath.Join(badDir, "sshd_config")
	if err := os.WriteFile(badConfig, []byte("NoSuchOption yes\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		edit func(*executor.Spec)
		want string
	}{
		{"no sshd in the image", func(s *executor.Spec) { s.Image = testImage }, "has no /usr/sbin/sshd"},
		{"bad public key", func(s *executor.Spec) { s.PublicKey = "ssh-ed25519 not-base64" }, "not an OpenSSH public key"},
		{"no public key", func(s *executor.Spec) { s.PublicKey = " \n" }, "public key: empty"},
		{"privileged not allowed", func(s *executor.Spec) { s.Privileged = true }, "privileged"},
		{"sshd does not start", func(s *executor.Spec) { s.Mounts = []string{badConfig + ":/etc/ssh/sshd_config:ro"} }, "NoSuchOption"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			spec := vpsSpec(testTaskID(), pub)
			tc.edit(&spec)
			err := e.Start(ctx, spec)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Start: %v, want an error naming %q", err, tc.want)
			}
			t.Logf("Start: %v", err)
			if _, err := cli.ContainerInspect(ctx, VPSContainerName(spec.TaskID)); err == nil {
				t.Fatal("container left behind")
			}
			if _, ok := stateOf(t, e, spec.TaskID); ok {
				t.Fatal("failed VPS listed")
			}
		})
	}
}

// TestVPSConfig checks the container a VPS spec maps onto, without Docker.
func TestVPSConfig(t *testing.T) {
	cfg := DefaultConfig()
	cfg.SharedDir = t.TempDir()
	cfg.LocalTempDir = t.TempDir()
	cfg.StateDir = t.TempDir()
	cfg.RunnerName = "r1"
	e, err := NewExecutor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	spec := vpsSpec(42, "k")
	spec.Stdout, spec.Stderr = "/x.out", "/x.err"
	c, hc, err := e.vpsConfig(spec)
	if err != nil {
		t.Fatal(err)
	}
	if c.Entrypoint[0] != "/bin/sh" || !strings.Contains(c.Entrypoint[2], "/usr/sbin/sshd -D -e") || !strings.Contains(c.Entrypoint[2], "ssh-keygen -A") ||
		c.Cmd != nil || c.User != "0:0" || c.Hostname != "hakuriver-vps-42" {
		t.Errorf("config %+v", c)
	}
	if _, ok := c.ExposedPorts[vpsPort]; !ok {
		t.Errorf("22/tcp not exposed: %v", c.ExposedPorts)
	}
	if c.Labels[LabelTaskType] != "vps" || c.Labels[LabelStdout] != "" || c.Labels[LabelStderr] != "" || c.Labels[LabelTaskID] != "42" {
		t.Errorf("labels %v", c.Labels)
	}
	b := hc.PortBindings[vpsPort]
	if len(b) != 1 || b[0].HostIP != "0.0.0.0" || b[0].HostPort != "" || hc.NetworkMode != "bridge" ||
		hc.RestartPolicy.Name != container.RestartPolicyUnlessStopped {
		t.Errorf("host config: bindings %v network %s restart %v", b, hc.NetworkMode, hc.RestartPolicy)
	}
	if nameOf(42, c.Labels) != "hakuriver-vps-42" || nameOf(42, map[string]string{}) != "hakuriver-task-42" {
		t.Error("nameOf")
	}
}

func TestAuthorizedKeys(t *testing.T) {
	k1 := sshtest.NewKey(t).AuthorizedKey("test@hakuriver")
	k2 := sshtest.NewKey(t).AuthorizedKey("test@hakuriver")
	got, err := authorizedKeys("\n  " + k1 + "  \n# comment\n\n" + k2)
	if err != nil || string(got) != k1+"\n"+k2+"\n" {
		t.Fatalf("authorizedKeys = %q, %v", got, err)
	}
	for _, bad := range []string{"", "  \n ", "hello", k1 + "\nssh-rsa AAAA"} {
		if _, err := authorizedKeys(bad); !errors.Is(err, environment.ErrInvalid) {
			t.Errorf("authorizedKeys(%q) = %v, want environment.ErrInvalid", bad, err)
		}
	}
}

func TestPublishedPort(t *testing.T) {
	ins := container.InspectResponse{NetworkSettings: &container.NetworkSettings{}}
	if publishedPort(ins) != 0 {
		t.Fatal("port without bindings")
	}
	ins.NetworkSettings.Ports = map[nat.Port][]nat.PortBinding{
		vpsPort: {{HostIP: "::", HostPort: "40001"}, {HostIP: "0.0.0.0", HostPort: "40000"}},
	}
	if p := publishedPort(ins); p != 40000 {
		t.Fatalf("publishedPort = %d, want the IPv4 binding's 40000", p)
	}
	c := container.Summary{Ports: []container.Port{
		{PrivatePort: 80, PublicPort: 1, Type: "tcp"},
		{IP: "::", PrivatePort: 22, PublicPort: 40001, Type: "tcp"},
		{IP: "0.0.0.0", PrivatePort: 22, PublicPort: 40000, Type: "tcp"},
	}}
	if p := listedPort(c); p != 40000 {
		t.Fatalf("listedPort = %d", p)
	}
}
