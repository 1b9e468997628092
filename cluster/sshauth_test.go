package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/crypto/ssh"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/cluster/auth"
	"github.com/hakuriver/hakuriver-ha/fsm"
	"github.com/hakuriver/hakuriver-ha/sshproxy"
	"github.com/hakuriver/hakuriver-ha/sshproxy/sshtest"
)

// callAs sends one API request with bearer ("" = none) and extra headers,
// and returns the status and body.
func callAs(t *testing.T, method, u, bearer string, body string, hdr http.Header) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// accountsCluster starts n replicas whose anonymous callers may do nothing
// (the default), with adminKey as the jump host's admin key, bootstraps
// the admin and returns the replicas, the leader and the admin's token.
func accountsCluster(t *testing.T, n int, adminKey string) ([]*Host, *Host, string) {
	t.Helper()
	hosts := startClusterWith(t, n, func(_ int, cfg *Config) {
		cfg.AnonymousRole = ""
		cfg.SSHAdminKeys = []string{adminKey}
	})
	var leader *Host
	for _, h := range hosts {
		if h.IsLeader() {
			leader = h
		}
	}
	resp, body := do(t, "POST", leader.APIURL()+"/api/auth/bootstrap", api.BootstrapRequest{})
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("bootstrap: %d %s", resp.StatusCode, body)
	}
	var tr api.TokenResponse
	if err := json.Unmarshal(body, &tr); err != nil || tr.Token == "" {
		t.Fatalf("bootstrap answer %s: %v", body, err)
	}
	return hosts, leader, tr.Token
}

// newAccount creates user name with role and keys through the API and
// returns a token of theirs (ttl "" never expires).
func newAccount(t *testing.T, h *Host, admin, name string, role fsm.Role, ttl string, keys ...string) string {
	t.Helper()
	req, _ := json.Marshal(api.UserRequest{Name: name, Role: role, SSHKeys: keys})
	if code, body := callAs(t, "POST", h.APIURL()+"/api/users", admin, string(req), nil); code != http.StatusCreated {
		t.Fatalf("create user %s: %d %s", name, code, body)
	}
	req, _ = json.Marshal(api.TokenRequest{User: name, TTL: ttl})
	code, body := callAs(t, "POST", h.APIURL()+"/api/tokens", admin, string(req), nil)
	var tr api.TokenResponse
	if code != http.StatusCreated || json.Unmarshal(body, &tr) != nil || tr.Token == "" {
		t.Fatalf("token of %s: %d %s", name, code, body)
	}
	return tr.Token
}

// openSSH runs the real OpenSSH client: "ssh -J proxy@JUMP root@<id>
// hostname" with keyFile on both hops.
func openSSH(t *testing.T, sshBin, keyFile, jump string, id int64) (string, error) {
	t.Helper()
	dir := t.TempDir()
	// ProxyJump's inner ssh does not inherit -o options, but -F is passed
	// on: the client settings go in a config file.
	cfg := filepath.Join(dir, "config")
	conf := fmt.Sprintf("Host *\n  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  BatchMode yes\n"+
		"  IdentitiesOnly yes\n  IdentityFile %s\n  LogLevel ERROR\n  ConnectTimeout 10\n", keyFile)
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, sshBin, "-F", cfg, "-i", keyFile, "-J", "proxy@"+jump, "root@"+strconv.FormatInt(id, 10), "hostname")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("%w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return string(out), nil
}

// TestSSHProxy_Accounts runs the SSH proxy of a 3-replica cluster with
// accounts and no anonymous access: alice's VPS (a fake sshd that lets in
// alice's key) is reached by alice and an operator, never by bob, through
// the line protocol (API tokens) and the jump host (registered keys, with
// the real ssh client); a key registered nowhere is refused, and removing
// alice's key (PATCH /api/users/alice) refuses her next attempt.
func TestSSHProxy_Accounts(t *testing.T) {
	sshBin, err := exec.LookPath("ssh")
	if err != nil {
		if os.Getenv("HAKURIVER_REQUIRE_SSH") == "1" {
			t.Fatal("ssh not installed and HAKURIVER_REQUIRE_SSH=1")
		}
		t.Skip("ssh not installed")
	}
	aliceKey, bobKey, stranger, adminKey := sshtest.NewKey(t), sshtest.NewKey(t), sshtest.NewKey(t), sshtest.NewKey(t)
	hosts, leader, admin := accountsCluster(t, 3, adminKey.AuthorizedKey("admin@lab"))
	alice := newAccount(t, leader, admin, "alice", fsm.RoleUser, "", aliceKey.AuthorizedKey("alice@laptop"))
	bob := newAccount(t, leader, admin, "bob", fsm.RoleUser, "", bobKey.AuthorizedKey("bob@laptop"))
	olga := newAccount(t, leader, admin, "olga", fsm.RoleOperator, "")
	shortLived := newAccount(t, leader, admin, "carol", fsm.RoleOperator, "1s")

	// Alice's VPS: its sshd lets in her key (the key she created it with).
	vps := sshtest.NewSSHD(t, aliceKey.PublicKey())
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	applyOnLeader(t, hosts, &fsm.RegisterNode{Node: &fsm.Node{Hostname: "n1", URL: "http://127.0.0.1:8001", TotalCores: 4}, At: time.Now()})
	const aliceVPS, anonVPS = 201, 202
	leader = applyOnLeader(t, hosts, &fsm.SubmitTasks{RequestID: "vps-fixture", Tasks: []*fsm.Task{
		{TaskID: aliceVPS, TaskType: fsm.TaskVPS, Status: fsm.StatusRunning, AssignedNode: "n1", SSHPort: vps.Port(),
			Command: aliceKey.AuthorizedKey(""), RequiredCores: 1, Owner: "alice"},
		{TaskID: anonVPS, TaskType: fsm.TaskVPS, Status: fsm.StatusRunning, AssignedNode: "n1", SSHPort: vps.Port(),
			Command: aliceKey.AuthorizedKey(""), RequiredCores: 1, Owner: auth.AnonymousName},
	}})
	idx := leader.machine.AppliedIndex()
	for _, h := range hosts {
		waitFor(t, 10*time.Second, func() bool { return h.machine.AppliedIndex() >= idx })
	}

	t.Run("LineProtocol", func(t *testing.T) {
		// Every replica's proxy goes by its own state: the same answers.
		for _, h := range hosts {
			tunnel := func(token string, id int64) error {
				conn, err := sshproxy.DialTunnelAs(ctx, h.SSHProxyAddr(), id, token, 5*time.Second)
				if err != nil {
					return err
				}
				out, err := sshtest.Exec(conn, aliceKey.Signer, "hostname")
				if err != nil || out != sshtest.Hostname+"\n" {
					t.Fatalf("hostname through %s = %q, %v", h.cfg.NodeID, out, err)
				}
				return nil
			}
			for who, token := range map[string]string{"alice": alice, "operator": olga} {
				if err := tunnel(token, aliceVPS); err != nil {
					t.Fatalf("%s to alice's VPS through %s: %v", who, h.cfg.NodeID, err)
				}
			}
			before := vps.Accepted()
			for _, tc := range []struct {
				who, token string
				id         int64
				kind       error
			}{
				{"bob", bob, aliceVPS, sshproxy.ErrForbidden},
				{"alice", alice, anonVPS, sshproxy.ErrForbidden},
				{"forged", auth.SecretPrefix + strings.Repeat("A", 43), aliceVPS, sshproxy.ErrUnauthenticated},
				{"cluster token", testToken, aliceVPS, sshproxy.ErrUnauthenticated},
				{"anonymous (the original request)", "", aliceVPS, sshproxy.ErrUnauthenticated},
				{"anonymous (the original request)", "", anonVPS, sshproxy.ErrUnauthenticated},
			} {
				err := tunnel(tc.token, tc.id)
				var te *sshproxy.TunnelError
				if !errors.As(err, &te) || !errors.Is(err, tc.kind) {
					t.Errorf("%s to VPS %d through %s = %v, want %v", tc.who, tc.id, h.cfg.NodeID, err, tc.kind)
				}
			}
			if n := vps.Accepted() - before; n != 0 {
				t.Fatalf("refused requests reached the VPS %d times", n)
			}
		}
		// An expired token is refused as an unknown one is.
		time.Sleep(1100 * time.Millisecond)
		_, err := sshproxy.DialTunnelAs(ctx, leader.SSHProxyAddr(), aliceVPS, shortLived, 5*time.Second)
		var te *sshproxy.TunnelError
		if !errors.As(err, &te) || te.Reason != "Authentication failed: unknown, revoked or expired API token." {
			t.Errorf("expired token = %v, want the unknown-token refusal", err)
		}
	})

	// A replica that has not applied a token yet asks the leader, which
	// answers as it answers the token's holder.
	t.Run("LeaderConfirmsToken", func(t *testing.T) {
		var follower *Host
		for _, h := range hosts {
			if !h.IsLeader() {
				follower = h
			}
		}
		c, err := follower.leaderWhoAmI(ctx, alice)
		if err != nil || c != (sshproxy.Caller{Name: "alice", Role: fsm.RoleUser}) {
			t.Fatalf("leader's answer for alice's token = %+v, %v", c, err)
		}
		for _, secret := range []string{auth.SecretPrefix + strings.Repeat("B", 43), shortLived, testToken} {
			if c, err := follower.leaderWhoAmI(ctx, secret); !errors.Is(err, errTokenRefused) {
				t.Errorf("leader's answer for a bad token = %+v, %v; want errTokenRefused", c, err)
			}
		}
	})

	t.Run("JumpHostOpenSSH", func(t *testing.T) {
		dir := t.TempDir()
		jump := leader.SSHProxyAddr()
		if out, err := openSSH(t, sshBin, aliceKey.WriteFile(t, dir), jump, aliceVPS); err != nil || out != sshtest.Hostname+"\n" {
			t.Fatalf("alice: ssh -J proxy@%s root@%d hostname = %q, %v", jump, aliceVPS, out, err)
		}
		before := vps.Accepted()
		// Bob's key is registered: the jump host lets him in and refuses
		// the channel; a key registered nowhere does not get in at all.
		for _, tc := range []struct {
			who, want string
			key       *sshtest.Key
		}{
			{"bob (registered)", "administratively prohibited", bobKey},
			{"a key registered nowhere", "Permission denied (publickey)", stranger},
		} {
			out, err := openSSH(t, sshBin, tc.key.WriteFile(t, dir), jump, aliceVPS)
			if err == nil || !strings.Contains(err.Error(), tc.want) && !strings.Contains(err.Error(), "stdio forwarding failed") {
				t.Errorf("%s to alice's VPS = %q, %v; want a refusal (%s)", tc.who, out, err, tc.want)
			}
		}
		if n := vps.Accepted() - before; n != 0 {
			t.Fatalf("refused clients reached the VPS %d times", n)
		}
		// An admin key of the configuration reaches every VPS: the jump
		// hop authenticates with it, the VPS's sshd wants alice's key.
		c, err := sshDialJump(jump, adminKey)
		if err != nil {
			t.Fatalf("admin key: %v", err)
		}
		conn, err := c.Dial("tcp", strconv.Itoa(aliceVPS)+":22")
		if err != nil {
			t.Fatalf("admin key to alice's VPS: %v", err)
		}
		if out, err := sshtest.Exec(conn, aliceKey.Signer, "hostname"); err != nil || out != sshtest.Hostname+"\n" {
			t.Fatalf("admin key: hostname = %q, %v", out, err)
		}
		c.Close()

		// Removing alice's key takes effect at commit: her next attempt
		// fails, through the replica that served the PATCH and the others.
		code, body := callAs(t, "PATCH", leader.APIURL()+"/api/users/alice", admin, `{"ssh_keys":[]}`, nil)
		if code != http.StatusOK {
			t.Fatalf("PATCH alice: %d %s", code, body)
		}
		if out, err := openSSH(t, sshBin, aliceKey.WriteFile(t, dir), jump, aliceVPS); err == nil || !strings.Contains(err.Error(), "Permission denied (publickey)") {
			t.Fatalf("alice with a removed key = %q, %v; want Permission denied (publickey)", out, err)
		}
		idx := leader.machine.AppliedIndex()
		for _, h := range hosts {
			waitFor(t, 10*time.Second, func() bool { return h.machine.AppliedIndex() >= idx })
			if out, err := openSSH(t, sshBin, aliceKey.WriteFile(t, dir), h.SSHProxyAddr(), aliceVPS); err == nil || !strings.Contains(err.Error(), "Permission denied (publickey)") {
				t.Fatalf("alice with a removed key through %s = %q, %v; want Permission denied (publickey)", h.cfg.NodeID, out, err)
			}
		}
		// Her token still works on the line protocol: only the key went.
		conn, err = sshproxy.DialTunnelAs(ctx, leader.SSHProxyAddr(), aliceVPS, alice, 5*time.Second)
		if err != nil {
			t.Fatalf("alice's token after her key was removed: %v", err)
		}
		conn.Close()
	})
}

// sshDialJump authenticates to the jump host at addr with key (any host
// key is accepted: the test reads it nowhere else).
func sshDialJump(addr string, key *sshtest.Key) (*ssh.Client, error) {
	return ssh.Dial("tcp", addr, &ssh.ClientConfig{User: "proxy", Auth: []ssh.AuthMethod{ssh.PublicKeys(key.Signer)},
		HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: 10 * time.Second})
}

// TestTerminal_CrossOriginRefused: the environment terminal's WebSocket
// upgrade checks the Origin before upgrading: another origin gets 403
// whatever its credentials, and an upgrade authenticated by the dashboard's
// session cookie must carry the page's own Origin.
func TestTerminal_CrossOriginRefused(t *testing.T) {
	_, leader, admin := accountsCluster(t, 1, sshtest.NewKey(t).AuthorizedKey(""))
	olga := newAccount(t, leader, admin, "olga", fsm.RoleOperator, "")
	code, body := callAs(t, "POST", leader.APIURL()+"/api/auth/login", "", `{"token":"`+olga+`"}`, nil)
	if code != http.StatusOK {
		t.Fatalf("login: %d %s", code, body)
	}
	base, err := url.Parse(leader.APIURL())
	if err != nil {
		t.Fatal(err)
	}
	wsURL := "ws://" + base.Host + "/api/docker/host/containers/nosuch/terminal"
	cookie := auth.SessionCookie + "=" + olga
	for _, tc := range []struct {
		name    string
		hdr     http.Header
		upgrade bool
	}{
		{"BearerCrossOrigin", http.Header{"Authorization": {"Bearer " + olga}, "Origin": {"http://evil.example"}}, false},
		{"CookieCrossOrigin", http.Header{"Cookie": {cookie}, "Origin": {"http://evil.example"}}, false},
		// Another port of the same host is another origin (the cookie's
		// SameSite does not stop it).
		{"CookieOtherPort", http.Header{"Cookie": {cookie}, "Origin": {"http://" + base.Hostname() + ":1"}}, false},
		{"CookieWithoutOrigin", http.Header{"Cookie": {cookie}}, false},
		{"CookieSameOrigin", http.Header{"Cookie": {cookie}, "Origin": {"http://" + base.Host}}, true},
		{"BearerWithoutOrigin", http.Header{"Authorization": {"Bearer " + olga}}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, resp, err := websocket.DefaultDialer.Dial(wsURL, tc.hdr)
			if tc.upgrade {
				if err != nil {
					t.Fatalf("upgrade refused: %v (%v)", err, resp)
				}
				conn.Close()
				return
			}
			if err == nil {
				conn.Close()
				t.Fatal("cross-origin upgrade accepted")
			}
			if resp == nil || resp.StatusCode != http.StatusForbidden {
				t.Fatalf("cross-origin upgrade: %v (%v), want 403", err, resp)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if !bytes.Contains(b, []byte("forbidden")) || !bytes.Contains(b, []byte("Origin")) {
				t.Errorf("403 body %s does not explain", b)
			}
		})
	}
	// The rule still comes first: a viewer gets 403 for the role, however
	// same-origin.
	viewer := newAccount(t, leader, admin, "vera", fsm.RoleViewer, "")
	code, body = callAs(t, "GET", leader.APIURL()+"/api/docker/host/containers/nosuch/terminal", viewer, "",
		http.Header{"Origin": {"http://" + base.Host}})
	if code != http.StatusForbidden || !bytes.Contains(body, []byte("needs role operator")) {
		t.Errorf("viewer: %d %s, want 403 naming the role", code, body)
	}
}
