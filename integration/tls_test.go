//go:build integration

package integration

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/integration/harness"
	"github.com/hakuriver/hakuriver-ha/ops/doctor"
)

// TestTLSClusterRunsTasks starts three replicas and a runner with TLS
// (certificates made by `hakuriver tls init`): the CLI submits through a
// follower over HTTPS verifying the CA (HAKURIVER_CA_FILE), the leader
// dispatches to the runner's HTTPS API, the runner reports back over HTTPS,
// and the task completes. A CLI without the CA and a plain HTTP client get
// nowhere.
func TestTLSClusterRunsTasks(t *testing.T) {
	c := startCluster(t, harness.Options{TLS: true, HeartbeatInterval: hbInterval, HeartbeatTimeoutFactor: hbFactor})
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
	t.Run("Doctor", func(t *testing.T) {
		// Every member probes the others over https against the CA and
		// checks its own certificate.
		_, rep := runDoctor(t, c, c.Token())
		for _, want := range []struct{ node, name string }{
			{"h1", "probe runner api r1"}, {"r1", "probe host api h2"}, {"client", "probe host api h3"},
			{"h1", "tls certificate"}, {"r1", "tls certificate"},
		} {
			found := rep.find(want.node, want.name)
			if len(found) == 0 {
				t.Errorf("report lacks %q on %s", want.name, want.node)
			}
			for _, ch := range found {
				if ch.Status != doctor.StatusOK {
					t.Errorf("%s / %s is %s: %s (%s)", want.node, ch.Name, ch.Status, ch.Measured, ch.Cause)
				}
			}
		}
		for _, ch := range rep.checks() {
			if ch.Status == doctor.StatusFail && strings.Contains(ch.Measured, "certificate") {
				t.Errorf("%s / %s: %s", ch.Node, ch.Name, ch.Measured)
			}
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

// TestVPSSSHOverTLS creates a VPS on a TLS cluster and reaches it with real
// OpenSSH through a replica's SSH proxy, whose tunnel request runs inside
// TLS verified against the CA: with hakuriver ssh, and with the
// ProxyCommand block `hakuriver ssh config` prints (which carries
// --ca-file). A plain line-protocol request is refused.
func TestVPSSSHOverTLS(t *testing.T) {
	requireDocker(t, sshdImage)
	requireSSH(t)
	c := startCluster(t, harness.Options{TLS: true, HeartbeatInterval: hbInterval, HeartbeatTimeoutFactor: hbFactor})
	name := "tls1-" + uniqueSuffix()
	t.Cleanup(func() { harness.RemoveRunnerContainers(t, name) })
	c.StartRunner(name, dockerRunner)
	f := &vpsFixture{c: c, dir: t.TempDir()}
	env := envName("hkt-tls")
	createEnvironment(t, c, sshdImage, env)
	createTar(t, c, env)
	created := vpsCreate(t, c, "--container", env, "--cores", "1", "--gen-ssh-key", "--key-out", filepath.Join(f.dir, "vps_ed25519"))
	f.id, f.key, f.connect = created.TaskID, created.PrivateKeyFile, created.Connect

	t.Run("SSHThroughFollower", func(t *testing.T) {
		c := c.For(t)
		i := f.follower(t)
		wantHostnameNproc(t, f.hakuriverSSH(t, i, f.id, f.key, "hostname; nproc"), f.id)
		// OpenSSH with the block `hakuriver ssh config` prints: its
		// ProxyCommand must carry --ca-file, since ssh runs it without
		// HAKURIVER_CA_FILE (the caller's API token comes from the
		// environment, as after hakuriver auth login).
		cfg := c.CLIVia([]int{i}, 0, "", "ssh", "config", "--proxy-port", proxyPort(t, c.SSHProxy(i)),
			"--key", f.key, "--alias", "hkt-vps", f.id)
		if cfg.Code != 0 || !strings.Contains(cfg.Stdout, "--ca-file") {
			t.Fatalf("ssh config: %s", cfg)
		}
		path := filepath.Join(t.TempDir(), "ssh_config")
		if err := os.WriteFile(path, []byte(cfg.Stdout+"    BatchMode yes\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		wantHostnameNproc(t, harness.RunCLI(t.Context(), harness.CLICommand{Bin: "ssh", Args: []string{"-F", path, "hkt-vps", "hostname; nproc"},
			Timeout: sshTimeout, Env: []string{"HAKURIVER_TOKEN=" + c.AdminToken()}}), f.id)
	})
	t.Run("PlainLineRequestRefused", func(t *testing.T) {
		conn, err := net.DialTimeout("tcp", c.SSHProxy(0), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second)) //nolint:errcheck // test bound
		if _, err := conn.Write([]byte("REQUEST_TUNNEL " + f.id + "\n")); err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(conn)
		if !strings.HasPrefix(string(b), "ERROR TLS required") {
			t.Fatalf("plain request answered %q", b)
		}
	})
}
