//go:build integration

package integration

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/fsm"
	"github.com/hakuriver/hakuriver-ha/integration/harness"
)

// sshAccount is a user of TestVPSSSHAccounts: their API token and the
// private key file registered on their account.
type sshAccount struct {
	name, token, key string
}

// keygen makes an ed25519 key pair with ssh-keygen in dir and returns the
// private key file (the public key is file.pub).
func keygen(t *testing.T, dir, name string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if r := harness.RunCLI(t.Context(), harness.CLICommand{Bin: "ssh-keygen", Timeout: sshTimeout,
		Args: []string{"-q", "-t", "ed25519", "-N", "", "-C", name, "-f", path}}); r.Code != 0 {
		t.Fatalf("ssh-keygen: %s", r)
	}
	return path
}

// publicKey reads the public key line of private key file key.
func publicKey(t *testing.T, key string) string {
	t.Helper()
	b, err := os.ReadFile(key + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// newSSHAccount creates user name (role user) with a fresh key registered
// on the account, and a token of theirs, through replica i as the admin.
func newSSHAccount(t *testing.T, c *harness.Cluster, i int, dir, name string) sshAccount {
	t.Helper()
	a := sshAccount{name: name, key: keygen(t, dir, name)}
	ans, err := c.CallAs(t.Context(), i, "POST", "/api/users", c.AdminToken(),
		api.UserRequest{Name: name, Role: fsm.RoleUser, SSHKeys: []string{publicKey(t, a.key)}})
	if err != nil || ans.Status != 201 {
		t.Fatalf("create user %s: %v %s", name, err, ans.Body)
	}
	ans, err = c.CallAs(t.Context(), i, "POST", "/api/tokens", c.AdminToken(), api.TokenRequest{User: name})
	var tr api.TokenResponse
	if err != nil || ans.Status != 201 || ans.Decode(&tr) != nil || tr.Token == "" {
		t.Fatalf("token of %s: %v %s", name, err, ans.Body)
	}
	a.token = tr.Token
	return a
}

// cliAs runs `hakuriver --host <replicas idxs> args...` as account a.
func cliAs(t *testing.T, c *harness.Cluster, a sshAccount, idxs []int, timeout time.Duration, args ...string) harness.CLIResult {
	t.Helper()
	return harness.RunCLI(t.Context(), harness.CLICommand{Bin: c.Bin(), Timeout: timeout,
		Args: append([]string{"--host", c.HostFlag(idxs...)}, args...),
		Env:  []string{"HAKURIVER_TOKEN=" + a.token, "HAKURIVER_CREDENTIALS=" + filepath.Join(t.TempDir(), "tokens.json")}})
}

// TestVPSSSHAccounts: with accounts and no anonymous access, alice creates
// a VPS with her token; `hakuriver ssh` (line protocol, her token) and the
// jump host (real OpenSSH, her registered key) reach it; bob's token and
// bob's registered key do not, nor a key registered nowhere, nor the
// original's request without a token; and once the admin removes alice's
// key (PATCH /api/users/alice) her next jump-host attempt fails through
// every replica.
func TestVPSSSHAccounts(t *testing.T) {
	requireDocker(t, sshdImage)
	requireSSH(t)
	c, _ := startDockerCluster(t, "va")
	env := envName("hkt-vpsacct")
	createEnvironment(t, c, sshdImage, env)
	createTar(t, c, env)
	dir := t.TempDir()
	leader := c.WaitLeader(30 * time.Second)
	alice := newSSHAccount(t, c, leader, dir, "alice")
	bob := newSSHAccount(t, c, leader, dir, "bob")
	stranger := keygen(t, dir, "stranger")

	// Alice's VPS, created with her token and her key.
	r := cliAs(t, c, alice, nil, vpsStartTimeout, "-o", "json", "vps", "create", "--wait", "--poll-interval", "200ms",
		"--container", env, "--cores", "1", "--public-key-file", alice.key+".pub")
	var created vpsCreated
	if r.Code != 0 || r.Decode(&created) != nil || created.Task == nil || created.Task.SSHPort <= 0 {
		t.Fatalf("alice's vps create: %s", r)
	}
	id := created.TaskID
	t.Cleanup(func() {
		c.CLI("vps", "kill", id)
		harness.RemoveContainers(t, "hakuriver-vps-"+id)
	})
	if created.Task.Owner != "alice" {
		t.Fatalf("alice's VPS is owned by %q", created.Task.Owner)
	}
	i := c.Followers()[0]
	port := proxyPort(t, c.SSHProxy(i))
	hakuriverSSH := func(a sshAccount) harness.CLIResult {
		return cliAs(t, c, a, []int{i}, sshTimeout, "ssh", "--proxy-port", port, "--key", a.key, id, "--",
			"-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "ConnectTimeout=10", "hostname; nproc")
	}

	t.Run("LineProtocol", func(t *testing.T) {
		wantHostnameNproc(t, hakuriverSSH(alice), id)
		before := vpsLogLines(t, id)
		// Bob's token is valid; alice's VPS is not his. He uses alice's
		// key file too, as if he had stolen it: the proxy still refuses.
		bobWithAliceKey := bob
		bobWithAliceKey.key = alice.key
		if r := hakuriverSSH(bobWithAliceKey); r.Code == 0 || !strings.Contains(r.Stderr, "Permission denied: VPS task "+id+" is not yours") {
			t.Errorf("bob's hakuriver ssh to alice's VPS: want a refusal, got %s", r)
		}
		forged := bob
		forged.token = "hkr_" + strings.Repeat("A", 43)
		if r := hakuriverSSH(forged); r.Code == 0 || !strings.Contains(r.Stderr, "Authentication failed: unknown, revoked or expired API token.") {
			t.Errorf("a forged token: want a refusal, got %s", r)
		}
		// The original's request carries no token: no anonymous role here.
		if ans, _ := lineRequest(t, c.SSHProxy(i), "REQUEST_TUNNEL "+id+"\n"); !strings.HasPrefix(ans, "ERROR Authentication required") {
			t.Errorf("request without a token: got %q", ans)
		}
		if n := vpsLogLines(t, id); n != before {
			t.Errorf("the VPS's sshd logged %d new lines during the refused requests: a connection reached it", n-before)
		}
		// The raw request with alice's token, as any client may send it.
		if ans, _ := lineRequest(t, c.SSHProxy(i), "REQUEST_TUNNEL "+id+" "+alice.token+"\n"); !strings.HasPrefix(ans, "SUCCESS\nSSH-2.0-OpenSSH") {
			t.Errorf("raw request with alice's token: got %q", ans)
		}
	})

	// Alice has no unix_user and no policy: she is root inside her VPS
	// (its sshd needs it), and that root is confined to an unprivileged
	// container (no capability added but SYS_NICE, for NUMA placement)
	// with only the two standard mounts.
	t.Run("RootConfinedToItsContainer", func(t *testing.T) {
		r := cliAs(t, c, alice, []int{i}, sshTimeout, "ssh", "--proxy-port", port, "--key", alice.key, id, "--",
			"-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "ConnectTimeout=10", "id -u")
		if r.Code != 0 || strings.TrimSpace(r.Stdout) != "0" {
			t.Errorf("id -u in alice's VPS: %s, want 0", r)
		}
		out, err := harness.Docker("container", "inspect", "--format",
			"{{.HostConfig.Privileged}} caps:{{join .HostConfig.CapAdd \",\"}} {{len .HostConfig.Binds}}{{range .Mounts}} {{.Destination}}{{end}}", "hakuriver-vps-"+id)
		f := strings.Fields(strings.Replace(out, "caps:CAP_", "caps:", 1)) // engines differ
		if err != nil || len(f) < 3 || strings.Join(f[:3], " ") != "false caps:SYS_NICE 0" {
			t.Errorf("alice's VPS container (privileged, capabilities added, binds): %q (%v), want false caps:SYS_NICE 0", out, err)
		}
		if len(f) > 3 {
			slices.Sort(f[3:])
			if got := strings.Join(f[3:], " "); got != "/local_temp /shared" {
				t.Errorf("alice's VPS container mounts %q, want /local_temp /shared", got)
			}
		}
	})

	t.Run("JumpHost", func(t *testing.T) {
		// "ssh -J proxy@HOST:PORT root@<id>" with key on both hops.
		jump := func(key string, via int) harness.CLIResult {
			cfg := filepath.Join(t.TempDir(), "ssh_config")
			conf := "Host *\n    IdentityFile " + key + "\n    IdentitiesOnly yes\n    BatchMode yes\n    ConnectTimeout 10\n" +
				"    StrictHostKeyChecking no\n    UserKnownHostsFile /dev/null\n    LogLevel ERROR\n"
			if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
				t.Fatal(err)
			}
			return runSSH(t, "-F", cfg, "-J", "proxy@"+c.SSHProxy(via), "root@"+id, "hostname; nproc")
		}
		wantHostnameNproc(t, jump(alice.key, i), id)
		before := vpsLogLines(t, id)
		// Bob's key is registered: he gets in, and the channel to alice's
		// VPS is refused.
		if r := jump(bob.key, i); r.Code == 0 || strings.Contains(r.Stdout, "hakuriver-vps-") {
			t.Errorf("bob's key to alice's VPS: want a refusal, got %s", r)
		}
		if r := jump(stranger, i); r.Code == 0 || !strings.Contains(r.Stderr, "Permission denied (publickey)") {
			t.Errorf("a key registered nowhere: want Permission denied (publickey), got %s", r)
		}
		if n := vpsLogLines(t, id); n != before {
			t.Errorf("the VPS's sshd logged %d new lines during the refused attempts: a connection reached it", n-before)
		}
		// The admin removes alice's key: once applied on a replica, its
		// jump host refuses her.
		ans, err := c.CallAs(t.Context(), i, "PATCH", "/api/users/alice", c.AdminToken(), map[string]any{"ssh_keys": []string{}})
		if err != nil || ans.Status != 200 {
			t.Fatalf("PATCH alice: %v %s", err, ans.Body)
		}
		for _, via := range c.Running() {
			c.Poll(10*time.Second, "replica "+c.Replica(via).ID+" to refuse alice's removed key", func() (bool, string) {
				r := jump(alice.key, via)
				return r.Code != 0 && strings.Contains(r.Stderr, "Permission denied (publickey)"), r.String()
			})
		}
		// Her token still works: only the key went.
		wantHostnameNproc(t, hakuriverSSH(alice), id)
	})
}
