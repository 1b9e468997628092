//go:build integration

package integration

import (
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/hakuriver/hakuriver-ha/integration/harness"
	"github.com/hakuriver/hakuriver-ha/sshproxy/sshtest"
)

// sshClientOpts are the ssh options of a non-interactive test session.
var sshClientOpts = []string{"-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "ConnectTimeout=10"}

// testCreatedLineFindsProxy runs the command line `vps create` printed,
// unchanged (no --proxy-port), against the cluster's replicas, whose SSH
// proxies listen on random ports: neither the old default 8002 nor the API
// port + 2. hakuriver ssh must find the proxy from GET /api/cluster.
func (f *vpsFixture) testCreatedLineFindsProxy(t *testing.T) {
	c := f.c.For(t)
	words := strings.Fields(f.connect)
	if len(words) < 3 || words[0] != "hakuriver" || words[1] != "ssh" || words[len(words)-1] != f.id {
		t.Fatalf("vps create printed %q, want \"hakuriver ssh [--key FILE] %s\"", f.connect, f.id)
	}
	for _, w := range words {
		if strings.HasPrefix(w, "--proxy-port") {
			t.Fatalf("vps create printed %q: the line must not need --proxy-port", f.connect)
		}
	}
	for i := range c.N() {
		api, err := url.Parse(c.Replica(i).API)
		if err != nil {
			t.Fatal(err)
		}
		apiPort, err := strconv.Atoi(api.Port())
		if err != nil {
			t.Fatal(err)
		}
		if p := proxyPort(t, c.SSHProxy(i)); p == "8002" || p == strconv.Itoa(apiPort+2) {
			t.Fatalf("replica %d's SSH proxy is on port %s: the test needs a port no old guess could find", i, p)
		}
	}
	args := append(append(words[1:], "--"), sshClientOpts...)
	args = append(args, "hostname; nproc")

	// As a `hakuriver dev` user runs it: HAKURIVER_HOST names every replica.
	r := harness.RunCLI(t.Context(), harness.CLICommand{Bin: c.Bin(), Args: args, Timeout: sshTimeout,
		Env: []string{"HAKURIVER_HOST=" + c.HostFlag()}})
	wantHostnameNproc(t, r, f.id)

	// Through one follower only: its own proxy.
	i := f.follower(t)
	wantHostnameNproc(t, c.CLIVia([]int{i}, sshTimeout, "", args...), f.id)

	// The first --host replica is unreachable: the next one answers.
	dead := "http://127.0.0.1:" + strconv.Itoa(sshtest.ClosedPort(t))
	r = harness.RunCLI(t.Context(), harness.CLICommand{Bin: c.Bin(), Args: append([]string{"--host", dead + "," + c.HostFlag(i)}, args...),
		Timeout: sshTimeout})
	wantHostnameNproc(t, r, f.id)
}

// testJumpHostWithKeyFile reaches the VPS through a replica's jump host with
// stock OpenSSH and only a key file (-i, no ssh config, no agent): the
// ProxyCommand the README documents and the jump-host alternative
// `hakuriver ssh config --key` prints both hand the key to the jump hop too.
func (f *vpsFixture) testJumpHostWithKeyFile(t *testing.T) {
	c := f.c.For(t)
	i := f.follower(t)
	host, port, err := net.SplitHostPort(c.SSHProxy(i))
	if err != nil {
		t.Fatal(err)
	}
	// The jump host's key is new to this machine, the VPS's too.
	noHostKeys := []string{"-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR"}
	jumpHop := append([]string{"ssh", "-i", f.key}, append(noHostKeys, sshClientOpts...)...)
	jumpHop = append(jumpHop, "-p", port, "-W", "%h:%p", f.id+"@"+host)
	args := append([]string{"-F", "/dev/null", "-i", f.key}, append(noHostKeys, sshClientOpts...)...)
	args = append(args, "-o", "ProxyCommand="+strings.Join(jumpHop, " "), "root@"+f.id, "hostname; nproc")
	wantHostnameNproc(t, runSSH(t, args...), f.id)

	// The block `hakuriver ssh config --key` prints, with its commented
	// jump-host lines in place of HostName and ProxyCommand.
	cfg := c.CLIVia([]int{i}, 0, "", "ssh", "config", "--key", f.key, "--alias", "hkt-jump-vps", f.id)
	if cfg.Code != 0 {
		t.Fatalf("ssh config: %s", cfg)
	}
	var out []string
	var jumpHost, jumpCmd string
	for _, l := range strings.Split(cfg.Stdout, "\n") {
		switch {
		case strings.HasPrefix(l, "#     HostName "):
			jumpHost = "    " + strings.TrimPrefix(l, "#     ")
		case strings.HasPrefix(l, "#     ProxyCommand ssh "):
			// Non-interactive, and the jump host's key unknown here.
			jumpCmd = "    ProxyCommand ssh " + strings.Join(append(noHostKeys, "-o", "BatchMode=yes"), " ") + " " +
				strings.TrimPrefix(l, "#     ProxyCommand ssh ")
		case strings.HasPrefix(l, "    HostName "), strings.HasPrefix(l, "    ProxyCommand "):
		default:
			out = append(out, l)
		}
	}
	if jumpHost == "" || jumpCmd == "" || !strings.Contains(jumpCmd, " "+f.id+"@"+host) || !strings.Contains(jumpCmd, "-p "+port+" ") {
		t.Fatalf("ssh config: no jump-host lines for %s@%s:%s in:\n%s", f.id, host, port, cfg.Stdout)
	}
	path := filepath.Join(t.TempDir(), "ssh_config")
	body := strings.Join(append(out, jumpHost, jumpCmd, "    BatchMode yes", "    LogLevel ERROR"), "\n") + "\n"
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	wantHostnameNproc(t, runSSH(t, "-F", path, "hkt-jump-vps", "hostname; nproc"), f.id)
}
