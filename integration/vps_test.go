//go:build integration

package integration

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/integration/harness"
)

// Bounds of the VPS tests.
const (
	// vpsStartTimeout bounds `vps create --wait`: placement, container,
	// host keys, sshd.
	vpsStartTimeout = 90 * time.Second
	// sshTimeout bounds one ssh session that runs one short command.
	sshTimeout = 30 * time.Second
)

// requireSSH skips (or, with HAKURIVER_REQUIRE_DOCKER=1, fails) the test
// when the OpenSSH client is missing.
func requireSSH(t *testing.T) {
	t.Helper()
	for _, bin := range []string{"ssh", "ssh-keygen"} {
		if _, err := exec.LookPath(bin); err != nil {
			if os.Getenv("HAKURIVER_REQUIRE_DOCKER") == "1" {
				t.Fatalf("HAKURIVER_REQUIRE_DOCKER=1 but the OpenSSH client is missing: %v", err)
			}
			t.Skipf("skipping: the OpenSSH client is missing: %v", err)
		}
	}
}

// vpsFixture is the cluster of TestVPSSSH and its VPS tasks.
type vpsFixture struct {
	c   *harness.Cluster
	dir string
	// id is the VPS reached in every subtest, created with --gen-ssh-key
	// and --cores 1; key is its private key file; connect is the command
	// line `vps create` printed for it.
	id, key, connect string
	// other is a second VPS, created with the public key of otherKey.
	other, otherKey string
}

// vpsCreate runs `vps create --wait` with flags through a follower (which
// may not have applied the submit when the CLI first asks it) and returns
// its JSON output.
func vpsCreate(t *testing.T, c *harness.Cluster, flags ...string) vpsCreated {
	t.Helper()
	args := append([]string{"-o", "json", "vps", "create", "--wait", "--poll-interval", "200ms"}, flags...)
	r := c.CLIVia(c.Followers()[:1], vpsStartTimeout, "", args...)
	if r.Code != 0 {
		t.Fatalf("vps create: %s", r)
	}
	var out vpsCreated
	if err := r.Decode(&out); err != nil {
		t.Fatal(err)
	}
	if out.Task == nil || out.Task.Status != "running" || out.Task.SSHPort <= 0 {
		t.Fatalf("vps create --wait: want a running VPS with an SSH port, got %s", r.Stdout)
	}
	t.Cleanup(func() {
		c.CLI("vps", "kill", out.TaskID)
		harness.RemoveContainers(t, "hakuriver-vps-"+out.TaskID)
	})
	return out
}

// vpsCreated is the JSON output of `vps create --wait`.
type vpsCreated struct {
	TaskID         string    `json:"task_id"`
	PrivateKeyFile string    `json:"private_key_file"`
	Connect        string    `json:"connect"`
	Task           *api.Task `json:"task"`
}

// TestVPSSSH creates VPS tasks through the CLI and reaches them with real
// OpenSSH through the replicas' SSH proxies (hakuriver ssh, ProxyCommand,
// jump host), refuses a foreign key at the jump host, survives the loss of
// the replica a session went through and of the leader, and answers bad
// line-protocol requests with ERROR lines.
func TestVPSSSH(t *testing.T) {
	requireDocker(t, sshdImage)
	requireSSH(t)
	// Anonymous callers act as operators here: this test is the original
	// HakuRiver's open SSH access (the VPS's own key at the jump host,
	// requests without a token); TestVPSSSHAccounts is the accounts'.
	c, _ := startDockerClusterWith(t, "vp", harness.Options{AnonymousRole: "operator"})
	f := &vpsFixture{c: c, dir: t.TempDir()}
	env := envName("hkt-vps")
	createEnvironment(t, c, sshdImage, env)
	createTar(t, c, env)

	// The second VPS's key pair comes from ssh-keygen: its public key goes
	// in with --public-key-file, and it must not open the first VPS.
	f.otherKey = filepath.Join(f.dir, "other_ed25519")
	if r := harness.RunCLI(t.Context(), harness.CLICommand{Bin: "ssh-keygen", Timeout: sshTimeout,
		Args: []string{"-q", "-t", "ed25519", "-N", "", "-C", "other", "-f", f.otherKey}}); r.Code != 0 {
		t.Fatalf("ssh-keygen: %s", r)
	}
	first := vpsCreate(t, c, "--container", env, "--cores", "1", "--gen-ssh-key", "--key-out", filepath.Join(f.dir, "vps_ed25519"))
	f.id, f.key, f.connect = first.TaskID, first.PrivateKeyFile, first.Connect
	if fi, err := os.Stat(f.key); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("generated private key %s: %v, %v (want mode 0600)", f.key, fi, err)
	}
	f.other = vpsCreate(t, c, "--container", env, "--cores", "1", "--public-key-file", f.otherKey+".pub").TaskID
	t.Logf("VPS %s on %s port %d; VPS %s", f.id, first.Task.AssignedNode, first.Task.SSHPort, f.other)

	t.Run("StatusAndList", f.testStatusAndList)
	t.Run("SSHThroughFollower", f.testSSHThroughFollower)
	t.Run("CreatedLineFindsProxy", f.testCreatedLineFindsProxy)
	t.Run("JumpHost", f.testJumpHost)
	t.Run("JumpHostWithKeyFile", f.testJumpHostWithKeyFile)
	t.Run("ForeignKeyRefused", f.testForeignKeyRefused)
	t.Run("LineProtocolBadInput", f.testLineProtocolBadInput)
	t.Run("KillSessionReplica", f.testKillSessionReplica)
	t.Run("KillLeader", f.testKillLeader)
}

func (f *vpsFixture) testStatusAndList(t *testing.T) {
	c := f.c.For(t)
	var task api.Task
	if err := c.CLIOK("-o", "json", "vps", "status", f.id).Decode(&task); err != nil {
		t.Fatal(err)
	}
	if task.Status != "running" || task.SSHPort <= 0 || task.RequiredCores != 1 {
		t.Errorf("vps status: %s, ssh_port %d, cores %d", describe(task), task.SSHPort, task.RequiredCores)
	}
	var list []api.Task
	if err := c.CLIOK("-o", "json", "vps", "list").Decode(&list); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, l := range list {
		seen[fmt.Sprint(l.TaskID)] = l.SSHPort > 0
	}
	if !seen[f.id] || !seen[f.other] {
		t.Errorf("vps list: want %s and %s with SSH ports, got %v", f.id, f.other, seen)
	}
}

// follower returns a follower's index.
func (f *vpsFixture) follower(t *testing.T) int {
	t.Helper()
	return f.c.For(t).Followers()[0]
}

// hakuriverSSH runs `hakuriver ssh` to VPS id through replica i only, with
// key, running command.
func (f *vpsFixture) hakuriverSSH(t *testing.T, i int, id, key string, command ...string) harness.CLIResult {
	t.Helper()
	c := f.c.For(t)
	port := proxyPort(t, c.SSHProxy(i))
	args := []string{"ssh", "--proxy-port", port, "--key", key, id, "--",
		"-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "ConnectTimeout=10"}
	return c.CLIVia([]int{i}, sshTimeout, "", append(args, command...)...)
}

// proxyPort returns the port of a host:port address.
func proxyPort(t *testing.T, addr string) string {
	t.Helper()
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("SSH proxy address %q: %v", addr, err)
	}
	return port
}

// wantHostnameNproc checks the output of `hostname; nproc` in VPS id.
func wantHostnameNproc(t *testing.T, r harness.CLIResult, id string) {
	t.Helper()
	if r.Code != 0 {
		t.Fatalf("ssh: %s", r)
	}
	if got, want := strings.Fields(r.Stdout), []string{"hakuriver-vps-" + id, "1"}; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("hostname; nproc: got %q, want %q (nproc must equal --cores 1)", r.Stdout, want)
	}
}

func (f *vpsFixture) testSSHThroughFollower(t *testing.T) {
	c := f.c.For(t)
	i := f.follower(t)
	wantHostnameNproc(t, f.hakuriverSSH(t, i, f.id, f.key, "hostname; nproc"), f.id)

	// The same through OpenSSH's ProxyCommand, with the block that
	// `hakuriver ssh config` prints.
	cfg := c.CLIVia([]int{i}, 0, "", "ssh", "config", "--proxy-port", proxyPort(t, c.SSHProxy(i)),
		"--key", f.key, "--alias", "hkt-vps", f.id)
	if cfg.Code != 0 {
		t.Fatalf("ssh config: %s", cfg)
	}
	path := filepath.Join(t.TempDir(), "ssh_config")
	if err := os.WriteFile(path, []byte(cfg.Stdout+"    BatchMode yes\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	wantHostnameNproc(t, runSSH(t, "-F", path, "hkt-vps", "hostname; nproc"), f.id)
}

// runSSH runs the system ssh client with args.
func runSSH(t *testing.T, args ...string) harness.CLIResult {
	t.Helper()
	return harness.RunCLI(t.Context(), harness.CLICommand{Bin: "ssh", Args: args, Timeout: sshTimeout})
}

// jumpConfig writes an ssh_config for the jump-host mode of replica i's
// proxy: the jump host authenticates the task ID as user with key, and
// Host <task id> is the VPS itself.
func (f *vpsFixture) jumpConfig(t *testing.T, i int, id, key string) string {
	t.Helper()
	host, port, err := net.SplitHostPort(f.c.For(t).SSHProxy(i))
	if err != nil {
		t.Fatal(err)
	}
	common := fmt.Sprintf("    IdentityFile %s\n    IdentitiesOnly yes\n    BatchMode yes\n    ConnectTimeout 10\n"+
		"    StrictHostKeyChecking no\n    UserKnownHostsFile /dev/null\n    LogLevel ERROR\n", key)
	cfg := fmt.Sprintf("Host hkt-jump\n    HostName %s\n    Port %s\n    User %s\n%s\nHost %s\n    User root\n%s",
		host, port, id, common, id, common)
	path := filepath.Join(t.TempDir(), "jump_config")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func (f *vpsFixture) testJumpHost(t *testing.T) {
	i := f.follower(t)
	cfg := f.jumpConfig(t, i, f.id, f.key)
	wantHostnameNproc(t, runSSH(t, "-F", cfg, "-J", "hkt-jump", "root@"+f.id, "hostname; nproc"), f.id)
	// The second VPS through the same jump host with its own key.
	r := runSSH(t, "-F", f.jumpConfig(t, i, f.other, f.otherKey), "-J", "hkt-jump", "root@"+f.other, "hostname")
	if r.Code != 0 || strings.TrimSpace(r.Stdout) != "hakuriver-vps-"+f.other {
		t.Errorf("jump to the second VPS: %s", r)
	}
}

// vpsLogLines counts the lines of VPS id's container log (sshd -e logs
// every connection it sees).
func vpsLogLines(t *testing.T, id string) int {
	t.Helper()
	out, err := harness.DockerLogs("hakuriver-vps-" + id)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(out, "\n")
}

func (f *vpsFixture) testForeignKeyRefused(t *testing.T) {
	i := f.follower(t)
	before := vpsLogLines(t, f.id)
	// The other VPS's key, valid in this cluster but not for this VPS.
	r := runSSH(t, "-F", f.jumpConfig(t, i, f.id, f.otherKey), "-J", "hkt-jump", "root@"+f.id, "hostname")
	if r.Code == 0 || !strings.Contains(r.Stderr, "Permission denied") {
		t.Errorf("foreign key through the jump host: want permission denied, got %s", r)
	}
	if strings.Contains(r.Stdout, "hakuriver-vps-") {
		t.Errorf("foreign key reached the VPS: %s", r)
	}
	// Authenticated as a plain jump user, the foreign key is refused at
	// the channel, still before any byte reaches the VPS.
	cfg := f.jumpConfig(t, i, "proxy", f.otherKey)
	r = runSSH(t, "-F", cfg, "-J", "hkt-jump", "root@"+f.id, "hostname")
	if r.Code == 0 || strings.Contains(r.Stdout, "hakuriver-vps-") {
		t.Errorf("foreign key as jump user proxy: want a refusal, got %s", r)
	}
	after := vpsLogLines(t, f.id)
	if after != before {
		t.Errorf("the VPS's sshd logged %d new lines during the refused attempts: a connection reached it", after-before)
	}
	// The measure sees a connection that does reach the VPS.
	wantHostnameNproc(t, runSSH(t, "-F", f.jumpConfig(t, i, f.id, f.key), "-J", "hkt-jump", "root@"+f.id, "hostname; nproc"), f.id)
	if err := harness.Eventually(5*time.Second, func() (bool, string) {
		n := vpsLogLines(t, f.id)
		return n > after, fmt.Sprintf("%d lines", n)
	}); err != nil {
		t.Errorf("the VPS's sshd log does not grow with an accepted session either, so the check above proves nothing: %v", err)
	}
}

// lineRequest sends one raw line-protocol request to addr and returns what
// the proxy answered before it closed the connection (at most 4 KiB, within
// 10 s); for a SUCCESS it returns the answer and the first line that
// followed.
func lineRequest(t *testing.T, addr, line string) (answer string, closed bool) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial the SSH proxy %s: %v", addr, err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second)) //nolint:errcheck // a failed deadline shows as a read error
	if _, err := conn.Write([]byte(line)); err != nil {
		t.Fatalf("write to the SSH proxy: %v", err)
	}
	rd := bufio.NewReader(conn)
	first, err := rd.ReadString('\n')
	if err != nil {
		t.Fatalf("read the answer to %q: %q, %v", line, first, err)
	}
	if first == "SUCCESS\n" {
		banner, err := rd.ReadString('\n')
		if err != nil {
			t.Fatalf("read the VPS banner after SUCCESS: %q, %v", banner, err)
		}
		return first + banner, false
	}
	rest := make([]byte, 1)
	_, err = rd.Read(rest)
	return first, err != nil && !isTimeout(err)
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

func (f *vpsFixture) testLineProtocolBadInput(t *testing.T) {
	c := f.c.For(t)
	i := f.follower(t)
	addr := c.SSHProxy(i)
	// A command task's ID.
	cmdID := submitOne(t, c, i, shell("true"))
	c.WaitFinal(cmdID, taskTimeout)
	good := func() {
		t.Helper()
		if ans, _ := lineRequest(t, addr, "REQUEST_TUNNEL "+f.id+"\n"); !strings.HasPrefix(ans, "SUCCESS\nSSH-2.0-OpenSSH") {
			t.Errorf("good request after bad ones: got %q", ans)
		}
	}
	cases := []struct{ name, line, want string }{
		{"non-numeric ID", "REQUEST_TUNNEL abc\n", "ERROR Invalid task ID format."},
		{"unknown ID", "REQUEST_TUNNEL 4242424242\n", "ERROR Task 4242424242 not found."},
		{"command task", "REQUEST_TUNNEL " + cmdID + "\n", "ERROR Task " + cmdID + " is not a VPS task."},
		{"garbage", "HELLO\n", "ERROR Invalid request format."},
	}
	for _, tc := range cases {
		ans, closed := lineRequest(t, addr, tc.line)
		if strings.TrimRight(ans, "\n") != tc.want || !closed {
			t.Errorf("%s: got %q (closed %v), want %q and a closed connection", tc.name, ans, closed, tc.want)
		}
		good()
	}
	// A killed VPS.
	c.CLIOK("vps", "kill", f.other)
	c.Poll(30*time.Second, "replica "+c.Replica(i).ID+" to see VPS "+f.other+" killed", func() (bool, string) {
		task, err := c.Task(i, f.other)
		if err != nil {
			return false, err.Error()
		}
		return task.Status == "killed", describe(task)
	})
	c.Poll(30*time.Second, "the killed VPS's container to be removed", func() (bool, string) {
		st, err := harness.DockerState("hakuriver-vps-" + f.other)
		return err != nil, st
	})
	ans, closed := lineRequest(t, addr, "REQUEST_TUNNEL "+f.other+"\n")
	if want := "ERROR VPS task " + f.other + " is not active (status: killed)."; strings.TrimRight(ans, "\n") != want || !closed {
		t.Errorf("stopped VPS: got %q (closed %v), want %q and a closed connection", ans, closed, want)
	}
	good()
}

func (f *vpsFixture) testKillSessionReplica(t *testing.T) {
	c := f.c.For(t)
	i := f.follower(t)
	port := proxyPort(t, c.SSHProxy(i))
	session := c.StartCLIVia([]int{i}, 2*time.Minute, "ssh", "--proxy-port", port, "--key", f.key, f.id, "--",
		"-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "echo ready; sleep 100")
	c.Poll(sshTimeout, "the session through "+c.Replica(i).ID+" to start", func() (bool, string) {
		if r, done := session.Done(); done {
			t.Fatalf("the session ended early: %s", r)
		}
		return strings.Contains(session.Stdout(), "ready"), session.Stdout()
	})
	c.Kill(i)
	if r, done := session.Wait(15 * time.Second); !done {
		t.Errorf("the session through killed replica %s is still open", c.Replica(i).ID)
	} else if r.Code == 0 {
		t.Errorf("the session through killed replica %s ended with exit 0: %s", c.Replica(i).ID, r)
	}
	// At once, through another replica: no waiting, one attempt.
	other := -1
	for _, j := range c.Running() {
		if j != i {
			other = j
			break
		}
	}
	wantHostnameNproc(t, f.hakuriverSSH(t, other, f.id, f.key, "hostname; nproc"), f.id)
	c.Restart(i)
	c.WaitVoters(c.N(), harness.LeaderTimeout)
}

func (f *vpsFixture) testKillLeader(t *testing.T) {
	c := f.c.For(t)
	leader := c.WaitLeader(harness.LeaderTimeout)
	c.Kill(leader)
	// Reachable right away through a surviving replica, before or during
	// the election.
	var other int
	for _, j := range c.Running() {
		other = j
		break
	}
	wantHostnameNproc(t, f.hakuriverSSH(t, other, f.id, f.key, "hostname; nproc"), f.id)
	c.WaitNewLeader(leader, harness.LeaderTimeout)
	// The VPS keeps running under the new leader: its runner keeps
	// reporting it and it is never declared lost.
	since := time.Now()
	c.Poll(3*hbTimeout+harness.LeaderTimeout, "VPS "+f.id+" to stay running for "+(3*hbTimeout).String(), func() (bool, string) {
		task := c.WaitTask(f.id, harness.LeaderTimeout, "to be known", func(api.Task) bool { return true })
		if task.Status != "running" {
			t.Fatalf("after the leader's loss: %s", describe(task))
		}
		return time.Since(since) >= 3*hbTimeout, describe(task)
	})
	if st, err := harness.DockerState("hakuriver-vps-" + f.id); err != nil || st != "running" {
		t.Errorf("VPS container: %q, %v", st, err)
	}
	for _, j := range c.Running() {
		wantHostnameNproc(t, f.hakuriverSSH(t, j, f.id, f.key, "hostname; nproc"), f.id)
	}
}
