package sshproxy_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/hakuriver/hakuriver-ha/sshproxy"
	"github.com/hakuriver/hakuriver-ha/sshproxy/sshtest"
)

// jumpClient connects to the jump host at addr as user with key.
func jumpClient(tb testing.TB, addr, user string, key *sshtest.Key, hostKey ssh.PublicKey) (*ssh.Client, error) {
	tb.Helper()
	c, err := ssh.Dial("tcp", addr, &ssh.ClientConfig{
		User:            user,
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(key.Signer)},
		HostKeyCallback: ssh.FixedHostKey(hostKey),
		Timeout:         10 * time.Second,
	})
	if err == nil {
		tb.Cleanup(func() { c.Close() })
	}
	return c, err
}

// bigID is a snowflake-sized task ID, as the leader generates them.
const bigID = 7301234567890123456

// jumpSetup is a fake VPS (task 42, owner's key) behind a proxy with an
// admin key, whose anonymous callers act as operators (the original's open
// access: the VPS's own key opens it; auth_test.go tests the accounts).
type jumpSetup struct {
	owner, other, admin *sshtest.Key
	vps                 *sshtest.SSHD
	p                   *proxy
}

func newJumpSetup(t *testing.T) *jumpSetup {
	t.Helper()
	s := &jumpSetup{owner: sshtest.NewKey(t), other: sshtest.NewKey(t), admin: sshtest.NewKey(t)}
	s.vps = sshtest.NewSSHD(t, s.owner.PublicKey())
	r := &resolver{}
	r.set(42, sshproxy.Target{Task: vpsTask(42, s.owner.AuthorizedKey("user@test"), s.vps.Port()), Node: node("n1")})
	r.set(bigID, sshproxy.Target{Task: vpsTask(bigID, s.owner.AuthorizedKey("user@test"), s.vps.Port()), Node: node("n1")})
	stopped := vpsTask(43, s.owner.AuthorizedKey("user@test"), s.vps.Port())
	stopped.Status = "completed"
	r.set(43, sshproxy.Target{Task: stopped, Node: node("n1")})
	s.p = startProxy(t, sshproxy.Config{Resolver: r, AdminKeys: []string{"", s.admin.AuthorizedKey("user@test")}})
	return s
}

func TestJump_OwnerKeyReachesVPS(t *testing.T) {
	s := newJumpSetup(t)
	for name, addr := range map[string]string{"JumpPort": s.p.jumpAddr, "LinePort": s.p.lineAddr} {
		t.Run(name, func(t *testing.T) {
			c, err := jumpClient(t, addr, "proxy", s.owner, s.p.hostKey.PublicKey())
			if err != nil {
				t.Fatalf("connect to jump host: %v", err)
			}
			// OpenSSH sends a small numeric host in its IPv4 form.
			conn, err := c.Dial("tcp", "0.0.0.42:22")
			if err != nil {
				t.Fatalf("direct-tcpip to 0.0.0.42:22: %v", err)
			}
			defer conn.Close()
			if got := sshtest.Run(t, conn, s.owner.Signer, "hostname"); got != "fake-vps\n" {
				t.Fatalf("hostname = %q", got)
			}
			// Bytes flow both ways with half-close through the channel.
			conn2, err := c.Dial("tcp", "42:2222")
			if err != nil {
				t.Fatalf("direct-tcpip to 42:2222: %v", err)
			}
			defer conn2.Close()
			cc, chans, reqs, err := ssh.NewClientConn(conn2, "vps", &ssh.ClientConfig{User: "root",
				Auth: []ssh.AuthMethod{ssh.PublicKeys(s.owner.Signer)}, HostKeyCallback: ssh.InsecureIgnoreHostKey()})
			if err != nil {
				t.Fatal(err)
			}
			client := ssh.NewClient(cc, chans, reqs)
			defer client.Close()
			sess, err := client.NewSession()
			if err != nil {
				t.Fatal(err)
			}
			payload := bytes.Repeat([]byte("0123456789abcdef"), 1<<16)
			sess.Stdin = bytes.NewReader(payload)
			out, err := sess.Output("cat")
			if err != nil || !bytes.Equal(out, payload) {
				t.Fatalf("cat: %d bytes back of %d, err %v", len(out), len(payload), err)
			}
		})
	}
}

func TestJump_OtherKeyRefusedBeforeVPS(t *testing.T) {
	s := newJumpSetup(t)
	c, err := jumpClient(t, s.p.jumpAddr, "proxy", s.other, s.p.hostKey.PublicKey())
	if err != nil {
		t.Fatalf("provisional authentication failed: %v", err)
	}
	for _, target := range []string{"42:22", "43:22", "404:22", "notanid:22"} {
		_, err := c.Dial("tcp", target)
		if err == nil {
			t.Fatalf("direct-tcpip to %s with a foreign key succeeded", target)
		}
		t.Logf("%s: %v", target, err)
		if target == "42:22" && !strings.Contains(err.Error(), "administratively prohibited") {
			t.Errorf("%s: %v, want administratively prohibited", target, err)
		}
	}
	if n := s.vps.Accepted(); n != 0 {
		t.Fatalf("the VPS saw %d connections, want none", n)
	}
	// No shell on the proxy.
	if _, err := c.NewSession(); err == nil {
		t.Fatal("session channel accepted")
	}
	// With the task ID as the user name the key is checked at once.
	if _, err := jumpClient(t, s.p.jumpAddr, "42", s.other, s.p.hostKey.PublicKey()); err == nil {
		t.Fatal("authentication as user 42 with a foreign key succeeded")
	}
	if n := s.vps.Accepted(); n != 0 {
		t.Fatalf("the VPS saw %d connections, want none", n)
	}
}

// TestJump_NoKeyRefused is what "ssh -J HOST root@ID -i KEY" meets when
// the jump hop has no key of its own (OpenSSH does not pass -i on to it):
// the jump host lets no client in without a key, whatever the user name and
// whatever else it offers ("none", a password, keyboard-interactive). The
// key at the jump hop is what the jump host checks (here, with an anonymous
// role, the VPS's key); the inner hop's authentication is end-to-end with
// the VPS's sshd and cannot stand in for it.
func TestJump_NoKeyRefused(t *testing.T) {
	s := newJumpSetup(t)
	for _, user := range []string{"proxy", "42", "root", ""} {
		c, err := ssh.Dial("tcp", s.p.jumpAddr, &ssh.ClientConfig{
			User: user,
			Auth: []ssh.AuthMethod{
				ssh.Password(""),
				ssh.KeyboardInteractive(func(string, string, []string, []bool) ([]string, error) { return nil, nil }),
			},
			HostKeyCallback: ssh.FixedHostKey(s.p.hostKey.PublicKey()),
			Timeout:         10 * time.Second,
		})
		if err == nil {
			c.Close()
			t.Fatalf("user %q without a key was let in", user)
		}
		if !strings.Contains(err.Error(), "unable to authenticate") {
			t.Errorf("user %q without a key: %v, want an authentication failure", user, err)
		}
	}
	if n := s.vps.Accepted(); n != 0 {
		t.Fatalf("the VPS saw %d connections, want none", n)
	}
}

func TestJump_TaskIDUserAndAdmin(t *testing.T) {
	s := newJumpSetup(t)
	for _, tc := range []struct {
		name, user string
		key        *sshtest.Key
	}{
		{"OwnerAsTaskUser", "42", s.owner},
		{"Admin", "admin", s.admin},
		{"AdminAsTaskUser", "42", s.admin},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := jumpClient(t, s.p.jumpAddr, tc.user, tc.key, s.p.hostKey.PublicKey())
			if err != nil {
				t.Fatalf("connect: %v", err)
			}
			conn, err := c.Dial("tcp", "42:22")
			if err != nil {
				t.Fatalf("direct-tcpip: %v", err)
			}
			conn.Close()
		})
	}
	// Even an admin gets the task's state: a finished VPS is refused.
	c, err := jumpClient(t, s.p.jumpAddr, "admin", s.admin, s.p.hostKey.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Dial("tcp", "43:22"); err == nil || !strings.Contains(err.Error(), "VPS task 43 is not active (status: completed).") {
		t.Fatalf("dial finished VPS = %v", err)
	}
}

func TestLoadOrCreateHostKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", sshproxy.HostKeyFile)
	k1, err := sshproxy.LoadOrCreateHostKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if k1.PublicKey().Type() != ssh.KeyAlgoED25519 {
		t.Fatalf("key type %s", k1.PublicKey().Type())
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", fi.Mode().Perm())
	}
	k2, err := sshproxy.LoadOrCreateHostKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(k1.PublicKey().Marshal(), k2.PublicKey().Marshal()) {
		t.Fatal("the host key changed between loads")
	}
	if err := os.WriteFile(path, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := sshproxy.LoadOrCreateHostKey(path); err == nil {
		t.Fatal("a corrupt host key was accepted (or silently replaced)")
	}
}

// TestOpenSSH_Jump runs the real OpenSSH client through the jump host:
// "ssh -J proxy@HOST:PORT root@<task_id> hostname".
func TestOpenSSH_Jump(t *testing.T) {
	sshBin, err := exec.LookPath("ssh")
	if err != nil {
		if os.Getenv("HAKURIVER_REQUIRE_SSH") == "1" {
			t.Fatal("ssh not installed and HAKURIVER_REQUIRE_SSH=1")
		}
		t.Skip("ssh not installed")
	}
	s := newJumpSetup(t)
	dir := t.TempDir()
	run := func(key *sshtest.Key, jumpAddr, jumpUser string, id int64) (string, error) {
		keyFile := key.WriteFile(t, dir)
		// ProxyJump's inner ssh does not inherit -o options, but -F is
		// passed on: put the client settings in a config file.
		cfg := filepath.Join(dir, "config")
		conf := fmt.Sprintf("Host *\n  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  BatchMode yes\n"+
			"  IdentitiesOnly yes\n  IdentityFile %s\n  LogLevel ERROR\n  ConnectTimeout 10\n", keyFile)
		if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		host, port, _ := net.SplitHostPort(jumpAddr)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, sshBin, "-F", cfg,
			"-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes", "-i", keyFile,
			"-J", jumpUser+"@"+net.JoinHostPort(host, port), "root@"+strconv.FormatInt(id, 10), "hostname")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return string(out), fmt.Errorf("%w: %s", err, stderr.String())
		}
		return string(out), nil
	}
	for name, addr := range map[string]string{"JumpPort": s.p.jumpAddr, "LinePort": s.p.lineAddr} {
		t.Run(name, func(t *testing.T) {
			for _, tc := range []struct {
				user string
				id   int64
			}{{"proxy", 42}, {"42", 42}, {"proxy", bigID}, {strconv.FormatInt(bigID, 10), bigID}} {
				out, err := run(s.owner, addr, tc.user, tc.id)
				if err != nil || out != "fake-vps\n" {
					t.Fatalf("ssh -J %s@%s root@%d hostname = %q, %v", tc.user, addr, tc.id, out, err)
				}
			}
		})
	}
	before := s.vps.Accepted()
	out, err := run(s.other, s.p.jumpAddr, "proxy", 42)
	if err == nil {
		t.Fatalf("ssh with a foreign key succeeded: %q", out)
	}
	t.Logf("foreign key: %v", err)
	if n := s.vps.Accepted(); n != before {
		t.Fatalf("the VPS saw %d new connections from a foreign key, want none", n-before)
	}
}
