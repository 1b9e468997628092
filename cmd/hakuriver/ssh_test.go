package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/crypto/ssh"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/fsm"
	"github.com/hakuriver/hakuriver-ha/sshproxy"
	"github.com/hakuriver/hakuriver-ha/sshproxy/sshtest"
)

// runSSHCLI runs "hakuriver ARGS" with only the ssh command wired, with
// stdin as standard input.
func runSSHCLI(tb testing.TB, stdin io.Reader, args ...string) (string, string, error) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	root := &cobra.Command{Use: "hakuriver", SilenceUsage: true, SilenceErrors: true}
	root.AddCommand(newSSHCmd(addClientFlags(root)))
	var out, errOut bytes.Buffer
	root.SetIn(stdin)
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	return out.String(), errOut.String(), err
}

func TestSSHConfig(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	out, _, err := runSSHCLI(t, nil, "--host", "http://10.0.0.1:8000, 10.0.0.2:8000", "ssh", "config", "1790263384729600000",
		"--alias", "lab-vps", "--key", "/keys/my vps key", "--user", "ubuntu", "--jump-port", "8002")
	if err != nil {
		t.Fatalf("ssh config: %v", err)
	}
	want := []string{
		"Host lab-vps",
		"    HostName 127.0.0.1",
		"    User ubuntu",
		"    ProxyCommand " + sshConfigWord(exe) + " --host http://10.0.0.1:8000,http://10.0.0.2:8000 ssh --proxy-command 1790263384729600000",
		"    StrictHostKeyChecking no",
		"    UserKnownHostsFile /dev/null",
		"    IdentityFile '/keys/my vps key'",
		"    IdentitiesOnly yes",
		"#     HostName 1790263384729600000",
		"#     ProxyCommand ssh -i '/keys/my vps key' -o IdentitiesOnly=yes -p 8002 -W %h:%p 1790263384729600000@10.0.0.1",
	}
	lines := strings.Split(out, "\n")
	for _, w := range want {
		if !contains(lines, w) {
			t.Errorf("missing line %q in:\n%s", w, out)
		}
	}
	for _, l := range lines {
		if l != "" && !strings.HasPrefix(l, "#") && !strings.HasPrefix(l, "Host ") && !strings.HasPrefix(l, "    ") {
			t.Errorf("line %q is neither a comment nor part of the Host block", l)
		}
	}

	out, _, err = runSSHCLI(t, nil, "--host", "h1.lab:8000", "ssh", "--proxy-port", "9002", "config", "42", "--jump-port", "9003")
	if err != nil {
		t.Fatalf("ssh config: %v", err)
	}
	for _, w := range []string{"Host hakuriver-42", "    User root", "--host http://h1.lab:8000 ssh --proxy-command --proxy-port 9002 42", "#     ProxyJump 42@h1.lab:9003"} {
		if !strings.Contains(out, w) {
			t.Errorf("missing %q in:\n%s", w, out)
		}
	}
	if strings.Contains(out, "IdentityFile") {
		t.Errorf("IdentityFile without --key:\n%s", out)
	}

	// Without a port flag the jump host is the first proxy the cluster
	// lists, and the ProxyCommand asks the cluster too.
	f := newFakeHost(t)
	f.handle("GET /api/cluster", http.StatusOK, api.ClusterStatus{NodeID: "h2", Replicas: []api.Replica{
		{ID: "h1", API: "http://10.0.0.1:8000", SSHProxy: "10.0.0.1:9100"},
		{ID: "h2", API: "http://0.0.0.0:8001", SSHProxy: "0.0.0.0:9101"},
	}})
	out, _, err = runSSHCLI(t, nil, "--host", f.srv.URL, "ssh", "config", "42")
	if err != nil {
		t.Fatalf("ssh config: %v", err)
	}
	for _, w := range []string{"--host " + f.srv.URL + " ssh --proxy-command 42\n", "#     ProxyJump 42@127.0.0.1:9101\n"} {
		if !strings.Contains(out, w) {
			t.Errorf("missing %q in:\n%s", w, out)
		}
	}

	for _, args := range [][]string{{"ssh", "config", "abc"}, {"ssh", "config"}, {"ssh", "config", "1", "2"}, {"ssh", "x1"}, {"ssh", "1", "extra"}} {
		if _, _, err := runSSHCLI(t, nil, args...); err == nil {
			t.Errorf("%q succeeded", args)
		}
	}
}

func TestSSHConfigWord(t *testing.T) {
	for in, want := range map[string]string{
		"/usr/bin/hakuriver": "/usr/bin/hakuriver",
		"http://h:8000,h2":   "http://h:8000,h2",
		"a b":                "'a b'",
		"it's":               `'it'\''s'`,
		"":                   "''",
	} {
		if got := sshConfigWord(in); got != want {
			t.Errorf("sshConfigWord(%q) = %q, want %q", in, got, want)
		}
	}
	if got := sshConfigCommand([]string{"x", "100%"}); got != "x '100%%'" {
		t.Errorf("sshConfigCommand = %q", got)
	}
}

func contains(lines []string, s string) bool {
	for _, l := range lines {
		if l == s {
			return true
		}
	}
	return false
}

// API tokens the test proxy knows: alice owns task 7, bob owns nothing.
const (
	aliceToken = "hkr_alice-test-token"
	bobToken   = "hkr_bob-test-token"
)

// testAccounts knows aliceToken and bobToken; anonymous callers may do
// nothing.
type testAccounts struct{}

func (testAccounts) TokenCaller(_ context.Context, secret string) (sshproxy.Caller, bool) {
	switch secret {
	case aliceToken:
		return sshproxy.Caller{Name: "alice", Role: fsm.RoleUser}, true
	case bobToken:
		return sshproxy.Caller{Name: "bob", Role: fsm.RoleUser}, true
	}
	return sshproxy.Caller{}, false
}

func (testAccounts) KeyCallers(ssh.PublicKey) []sshproxy.Caller { return nil }

func (testAccounts) Anonymous() sshproxy.Caller {
	return sshproxy.Caller{Name: "anonymous", Anonymous: true}
}

// sshTestProxy starts an SSH proxy on 127.0.0.1 for task 7 (alice's VPS
// whose sshd is at port) and returns its port.
func sshTestProxy(t *testing.T, port int, key string) int {
	t.Helper()
	srv, err := sshproxy.New(sshproxy.Config{Accounts: testAccounts{}, Resolver: sshproxy.ResolverFunc(func(_ context.Context, id int64) (sshproxy.Target, error) {
		if id != 7 {
			return sshproxy.Target{}, sshproxy.ErrTaskNotFound
		}
		return sshproxy.Target{
			Task: &fsm.Task{TaskID: 7, TaskType: fsm.TaskVPS, Status: fsm.StatusRunning, AssignedNode: "n1", SSHPort: port, Command: key, Owner: "alice"},
			Node: &fsm.Node{Hostname: "n1", URL: "http://127.0.0.1:8001", Status: fsm.NodeOnline},
		}, nil
	})})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(context.Background(), ln)
	}()
	t.Cleanup(func() {
		srv.Close()
		<-done
	})
	return ln.Addr().(*net.TCPAddr).Port
}

func TestSSH_ProxyCommandWithFailover(t *testing.T) {
	port := sshTestProxy(t, sshtest.EchoServer(t), "")
	// 127.0.0.2 has no proxy: the next replica is tried.
	hosts := "http://127.0.0.2:8000,http://127.0.0.1:8000"
	out, _, err := runSSHCLI(t, strings.NewReader("ping through the tunnel\n"),
		"--host", hosts, "--token", aliceToken, "ssh", "--proxy-port", strconv.Itoa(port), "--proxy-command", "7")
	if err != nil || out != "ping through the tunnel\n" {
		t.Fatalf("proxy-command = %q, %v", out, err)
	}
	_, _, err = runSSHCLI(t, strings.NewReader(""), "--host", hosts, "--token", aliceToken, "ssh", "--proxy-port", strconv.Itoa(port), "--proxy-command", "404")
	if !errors.Is(err, sshproxy.ErrTaskNotFound) || !strings.Contains(err.Error(), "Task 404 not found.") {
		t.Fatalf("proxy-command to an unknown task = %v", err)
	}
	_, _, err = runSSHCLI(t, strings.NewReader(""), "--host", "http://127.0.0.2:8000", "--token", aliceToken, "ssh", "--proxy-port", strconv.Itoa(port), "--proxy-command", "7")
	if err == nil || !strings.Contains(err.Error(), "no SSH proxy reachable") {
		t.Fatalf("proxy-command with no proxy = %v", err)
	}
}

// TestSSH_Session runs "hakuriver ssh 7 -- CMD" with the real ssh client
// against a fake VPS sshd behind an in-process proxy.
func TestSSH_Session(t *testing.T) {
	if _, err := exec.LookPath("ssh"); err != nil {
		if os.Getenv("HAKURIVER_REQUIRE_SSH") == "1" {
			t.Fatal("ssh not installed and HAKURIVER_REQUIRE_SSH=1")
		}
		t.Skip("ssh not installed")
	}
	user := sshtest.NewKey(t)
	keyFile := user.WriteFile(t, t.TempDir())
	vpsPort := sshtest.NewSSHD(t, user.PublicKey()).Port()
	port := sshTestProxy(t, vpsPort, string(ssh.MarshalAuthorizedKey(user.PublicKey())))
	base := []string{"--host", "127.0.0.1:8000", "--token", aliceToken, "ssh", "--proxy-port", strconv.Itoa(port), "--key", keyFile, "7", "--", "-o", "BatchMode=yes"}

	out, errOut, err := runSSHCLI(t, nil, append(base, "hostname")...)
	if err != nil || out != "fake-vps\n" {
		t.Fatalf("hakuriver ssh 7 -- hostname = %q, %v\n%s", out, err, errOut)
	}
	_, _, err = runSSHCLI(t, nil, append(base, "exit", "3")...)
	var ec *exitCodeError
	if !errors.As(err, &ec) || ec.ExitCode() != 3 {
		t.Fatalf("exit code: %v", err)
	}
	// The first tunnel opens while ssh starts; its refusal stops ssh
	// before ssh says anything.
	_, errOut, err = runSSHCLI(t, nil, "--host", "127.0.0.1:8000", "--token", aliceToken, "ssh", "--proxy-port", strconv.Itoa(port), "404")
	if err == nil || !strings.Contains(err.Error(), "Task 404 not found.") {
		t.Fatalf("ssh to an unknown task = %v", err)
	}
	if strings.Contains(errOut, "onnection closed") || strings.Contains(errOut, "kex_exchange") {
		t.Fatalf("ssh to an unknown task: ssh spoke: %q", errOut)
	}
}

// TestSSH_SendsToken: hakuriver ssh sends the account's token (--token or
// HAKURIVER_TOKEN); the proxy refuses another user's token, an unknown one
// and none, and the CLI reports the refusal without starting ssh.
func TestSSH_SendsToken(t *testing.T) {
	// No token saved by hakuriver auth login.
	t.Setenv("HOME", t.TempDir())
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	port := sshTestProxy(t, sshtest.EchoServer(t), "")
	run := func(token string, env bool) (string, error) {
		t.Setenv(tokenEnv, "")
		args := []string{"--host", "127.0.0.1:8000"}
		switch {
		case env:
			t.Setenv(tokenEnv, token)
		case token != "":
			args = append(args, "--token", token)
		}
		args = append(args, "ssh", "--proxy-port", strconv.Itoa(port), "--proxy-command", "7")
		out, _, err := runSSHCLI(t, strings.NewReader("ping\n"), args...)
		return out, err
	}
	for _, env := range []bool{false, true} {
		if out, err := run(aliceToken, env); err != nil || out != "ping\n" {
			t.Fatalf("alice's token (env %v) = %q, %v", env, out, err)
		}
	}
	for _, tc := range []struct {
		token string
		kind  error
		want  string
	}{
		{bobToken, sshproxy.ErrForbidden, "Permission denied: VPS task 7 is not yours"},
		{"hkr_unknown", sshproxy.ErrUnauthenticated, "Authentication failed: unknown, revoked or expired API token."},
		{"", sshproxy.ErrUnauthenticated, "Authentication required"},
	} {
		_, err := run(tc.token, false)
		if !errors.Is(err, tc.kind) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("token %q: %v, want %v (%q)", tc.token, err, tc.kind, tc.want)
		}
	}
}
