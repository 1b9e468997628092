package sshproxy_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/fsm"
	"github.com/hakuriver/hakuriver-ha/sshproxy"
	"github.com/hakuriver/hakuriver-ha/sshproxy/sshtest"
)

// API tokens of the fake accounts.
const (
	aliceToken = "hkr_alice"
	bobToken   = "hkr_bob"
	olgaToken  = "hkr_olga" // an operator
)

// authSetup is a proxy with accounts (alice and bob are users, olga an
// operator) in front of fake VPSes: 1 is alice's, 3 anonymous work, 4 was
// submitted before accounts existed (no owner). Every VPS's sshd lets in
// vpsKey, which is also the key the VPSes were created with.
type authSetup struct {
	acct   *accounts
	vpsKey *sshtest.Key
	vps    *sshtest.SSHD
	p      *proxy
}

func newAuthSetup(t *testing.T, adminKeys ...string) *authSetup {
	t.Helper()
	s := &authSetup{acct: &accounts{}, vpsKey: sshtest.NewKey(t)}
	s.vps = sshtest.NewSSHD(t, s.vpsKey.PublicKey())
	s.acct.addToken(aliceToken, "alice", fsm.RoleUser)
	s.acct.addToken(bobToken, "bob", fsm.RoleUser)
	s.acct.addToken(olgaToken, "olga", fsm.RoleOperator)
	r := &resolver{}
	for id, owner := range map[int64]string{1: "alice", 3: "anonymous", 4: ""} {
		task := vpsTask(id, s.vpsKey.AuthorizedKey("vps@test"), s.vps.Port())
		task.Owner = owner
		r.set(id, sshproxy.Target{Task: task, Node: node("n1")})
	}
	s.p = startProxy(t, sshproxy.Config{Resolver: r, Accounts: s.acct, AdminKeys: adminKeys})
	return s
}

// setAnonymous changes the anonymous role.
func (s *authSetup) setAnonymous(role fsm.Role) {
	s.acct.mu.Lock()
	defer s.acct.mu.Unlock()
	s.acct.anon = role
}

// tunnel opens a line-protocol tunnel to id with token and runs hostname
// on the VPS through it.
func (s *authSetup) tunnel(t *testing.T, id int64, token string) error {
	t.Helper()
	conn, err := sshproxy.DialTunnelAs(context.Background(), s.p.lineAddr, id, token, 5*time.Second)
	if err != nil {
		return err
	}
	if out := sshtest.Run(t, conn, s.vpsKey.Signer, "hostname"); out != sshtest.Hostname+"\n" {
		t.Fatalf("hostname through the tunnel to %d = %q", id, out)
	}
	return nil
}

// TestLineProtocol_TokenOwnership: a token decides the user; a user reaches
// their own VPS only, an operator every VPS; refusals happen before the
// VPS is dialled.
func TestLineProtocol_TokenOwnership(t *testing.T) {
	s := newAuthSetup(t)
	for _, tc := range []struct {
		token string
		id    int64
	}{{aliceToken, 1}, {olgaToken, 1}, {olgaToken, 3}, {olgaToken, 4}} {
		if err := s.tunnel(t, tc.id, tc.token); err != nil {
			t.Fatalf("%s to VPS %d: %v", tc.token, tc.id, err)
		}
	}
	before := s.vps.Accepted()
	for _, tc := range []struct {
		token  string
		id     int64
		kind   error
		reason string
	}{
		// Bob's token is valid, the VPS is not his.
		{bobToken, 1, sshproxy.ErrForbidden, "Permission denied: VPS task 1 is not yours (only its owner or an operator may reach it)."},
		// Accounts do not own anonymous work.
		{aliceToken, 3, sshproxy.ErrForbidden, "Permission denied: VPS task 3 is not yours (only its owner or an operator may reach it)."},
		{aliceToken, 4, sshproxy.ErrForbidden, "Permission denied: VPS task 4 is not yours (only its owner or an operator may reach it)."},
		// An unknown token learns nothing, not even whether the task exists.
		{"hkr_forged", 1, sshproxy.ErrUnauthenticated, "Authentication failed: unknown, revoked or expired API token."},
		{"hkr_forged", 404, sshproxy.ErrUnauthenticated, "Authentication failed: unknown, revoked or expired API token."},
		// The original's request without a token: no anonymous role here.
		{"", 1, sshproxy.ErrUnauthenticated, "Authentication required: send an API token (hakuriver ssh sends the one of --token, HAKURIVER_TOKEN or hakuriver auth login)."},
		{"", 404, sshproxy.ErrUnauthenticated, "Authentication required: send an API token (hakuriver ssh sends the one of --token, HAKURIVER_TOKEN or hakuriver auth login)."},
	} {
		err := s.tunnel(t, tc.id, tc.token)
		var te *sshproxy.TunnelError
		if !errors.As(err, &te) || !errors.Is(err, tc.kind) || te.Reason != tc.reason {
			t.Errorf("token %q to VPS %d = %v, want %v: %q", tc.token, tc.id, err, tc.kind, tc.reason)
		}
	}
	if n := s.vps.Accepted() - before; n != 0 {
		t.Fatalf("refused requests reached the VPS %d times", n)
	}
	// The raw answers are the original's "ERROR <reason>" lines.
	if got := exchange(t, s.p.lineAddr, "REQUEST_TUNNEL 1 "+bobToken+"\n"); !strings.HasPrefix(got, "ERROR Permission denied: VPS task 1") {
		t.Errorf("bob's raw request answered %q", got)
	}
	if got := exchange(t, s.p.lineAddr, "REQUEST_TUNNEL 1\n"); !strings.HasPrefix(got, "ERROR Authentication required") {
		t.Errorf("raw request without a token answered %q", got)
	}
	// Malformed tokens are malformed requests.
	for _, raw := range []string{
		"REQUEST_TUNNEL 1 two words\n",
		"REQUEST_TUNNEL 1 tok\x01en\n",
		"REQUEST_TUNNEL 1 " + strings.Repeat("x", 257) + "\n",
		"REQUEST_TUNNEL 1 tök\n",
	} {
		if got := exchange(t, s.p.lineAddr, raw); got != "ERROR Invalid request format.\n" {
			t.Errorf("%.40q answered %q", raw, got)
		}
	}
	if st := s.p.srv.Stats(); st.Tunnels != 4 {
		t.Errorf("stats = %+v, want 4 tunnels", st)
	}
}

// TestLineProtocol_AnonymousRole: the original's request without a token
// works only as far as the anonymous role allows: "user" reaches anonymous
// (and owner-less) VPSes, "operator" every VPS, "viewer" none.
func TestLineProtocol_AnonymousRole(t *testing.T) {
	s := newAuthSetup(t)
	s.setAnonymous(fsm.RoleUser)
	for _, id := range []int64{3, 4} {
		if err := s.tunnel(t, id, ""); err != nil {
			t.Fatalf("anonymous user to anonymous VPS %d: %v", id, err)
		}
	}
	if err := s.tunnel(t, 1, ""); !errors.Is(err, sshproxy.ErrForbidden) {
		t.Fatalf("anonymous user to alice's VPS = %v, want ErrForbidden", err)
	}
	// A token is still checked when anonymous callers may do things.
	if err := s.tunnel(t, 3, "hkr_forged"); !errors.Is(err, sshproxy.ErrUnauthenticated) {
		t.Fatalf("forged token with an anonymous role = %v, want ErrUnauthenticated", err)
	}
	s.setAnonymous(fsm.RoleOperator)
	if err := s.tunnel(t, 1, ""); err != nil {
		t.Fatalf("anonymous operator to alice's VPS: %v", err)
	}
	s.setAnonymous(fsm.RoleViewer)
	if err := s.tunnel(t, 3, ""); !errors.Is(err, sshproxy.ErrUnauthenticated) {
		t.Fatalf("anonymous viewer = %v, want ErrUnauthenticated", err)
	}
}

// TestDialer_TokenRefusalTriesNextReplica: a replica that has not applied
// a new token yet refuses it; the Dialer then tries the next one, and
// reports the refusal itself when every replica refused.
func TestDialer_TokenRefusalTriesNextReplica(t *testing.T) {
	lagging := newLineProxy(t, "ERROR Authentication failed: unknown, revoked or expired API token.")
	good := newLineProxy(t, "SUCCESS")
	c, err := sshproxy.NewDialer([]string{lagging.addr, good.addr}, 7, aliceToken, 2*time.Second).Dial(t.Context())
	if err != nil {
		t.Fatalf("dial past a lagging replica: %v", err)
	}
	c.Close()
	_, err = sshproxy.NewDialer([]string{lagging.addr, deadAddr(t)}, 7, aliceToken, 2*time.Second).Dial(t.Context())
	var te *sshproxy.TunnelError
	if !errors.As(err, &te) || !errors.Is(err, sshproxy.ErrUnauthenticated) || !strings.Contains(err.Error(), lagging.addr) {
		t.Fatalf("every replica refused = %v, want the refusal", err)
	}
	if _, err := sshproxy.DialTunnelAs(t.Context(), good.addr, 7, "two words", time.Second); err == nil {
		t.Fatal("a token with a space was sent")
	}
}

// TestJump_AccountKeys: the jump host knows a client by its key: a key
// registered on an account acts as that account (owner or operator), an
// admin key reaches everything, an unregistered key is refused at
// authentication; removing a key ends its access on the next channel, even
// on a connection authenticated before.
func TestJump_AccountKeys(t *testing.T) {
	alice, bob, olga, stranger, admin := sshtest.NewKey(t), sshtest.NewKey(t), sshtest.NewKey(t), sshtest.NewKey(t), sshtest.NewKey(t)
	s := newAuthSetup(t, admin.AuthorizedKey("admin@test"))
	s.acct.addKey(alice.PublicKey(), "alice", fsm.RoleUser)
	s.acct.addKey(bob.PublicKey(), "bob", fsm.RoleUser)
	s.acct.addKey(olga.PublicKey(), "olga", fsm.RoleOperator)
	hostKey := s.p.hostKey.PublicKey()
	reach := func(key *sshtest.Key, user string, id string) error {
		c, err := jumpClient(t, s.p.jumpAddr, user, key, hostKey)
		if err != nil {
			return err
		}
		defer c.Close()
		conn, err := c.Dial("tcp", id+":22")
		if err != nil {
			return err
		}
		if out := sshtest.Run(t, conn, s.vpsKey.Signer, "hostname"); out != sshtest.Hostname+"\n" {
			t.Fatalf("hostname = %q", out)
		}
		return nil
	}
	for _, tc := range []struct {
		name, user, id string
		key            *sshtest.Key
	}{
		{"AliceOwnVPS", "proxy", "1", alice},
		{"AliceAsTaskUser", "1", "1", alice},
		{"OperatorAnyVPS", "proxy", "1", olga},
		{"OperatorAnonymousVPS", "proxy", "3", olga},
		{"AdminKey", "proxy", "4", admin},
	} {
		if err := reach(tc.key, tc.user, tc.id); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
	}
	before := s.vps.Accepted()
	// Bob's key authenticates (it is registered) but opens nothing of
	// alice's, nor anonymous work.
	for _, id := range []string{"1", "3", "4"} {
		if err := reach(bob, "proxy", id); err == nil || !strings.Contains(err.Error(), "administratively prohibited") {
			t.Errorf("bob to VPS %s = %v, want prohibited", id, err)
		}
	}
	// With the task ID as the user name, bob is refused at authentication.
	if err := reach(bob, "1", "1"); err == nil || !strings.Contains(err.Error(), "unable to authenticate") {
		t.Errorf("bob as user 1 = %v, want an authentication failure", err)
	}
	// A key registered nowhere is refused outright, even the VPS's own
	// key while anonymous callers may do nothing.
	for _, k := range []*sshtest.Key{stranger, s.vpsKey} {
		if err := reach(k, "proxy", "1"); err == nil || !strings.Contains(err.Error(), "unable to authenticate") {
			t.Errorf("unregistered key = %v, want an authentication failure", err)
		}
	}
	if n := s.vps.Accepted() - before; n != 0 {
		t.Fatalf("refused clients reached the VPS %d times", n)
	}

	// Removing alice's key: her open connection opens no new channel, and
	// she can no longer authenticate.
	c, err := jumpClient(t, s.p.jumpAddr, "proxy", alice, hostKey)
	if err != nil {
		t.Fatal(err)
	}
	s.acct.removeKeys(alice.PublicKey())
	if _, err := c.Dial("tcp", "1:22"); err == nil || !strings.Contains(err.Error(), "administratively prohibited") {
		t.Errorf("channel after the key was removed = %v, want prohibited", err)
	}
	if err := reach(alice, "proxy", "1"); err == nil || !strings.Contains(err.Error(), "unable to authenticate") {
		t.Errorf("alice after her key was removed = %v, want an authentication failure", err)
	}
}

// TestJump_AnonymousVPSKey: with an anonymous role, an unregistered key is
// an anonymous caller's, let through only with the VPS's own key and only
// to what the role allows ("user": anonymous work).
func TestJump_AnonymousVPSKey(t *testing.T) {
	s := newAuthSetup(t)
	stranger := sshtest.NewKey(t)
	s.setAnonymous(fsm.RoleUser)
	hostKey := s.p.hostKey.PublicKey()
	c, err := jumpClient(t, s.p.jumpAddr, "proxy", s.vpsKey, hostKey)
	if err != nil {
		t.Fatalf("anonymous with the VPS key: %v", err)
	}
	conn, err := c.Dial("tcp", "3:22")
	if err != nil {
		t.Fatalf("anonymous user to anonymous VPS: %v", err)
	}
	conn.Close()
	if _, err := c.Dial("tcp", "1:22"); err == nil || !strings.Contains(err.Error(), "administratively prohibited") {
		t.Fatalf("anonymous user to alice's VPS = %v, want prohibited", err)
	}
	c2, err := jumpClient(t, s.p.jumpAddr, "proxy", stranger, hostKey)
	if err != nil {
		t.Fatalf("provisional authentication: %v", err)
	}
	if _, err := c2.Dial("tcp", "3:22"); err == nil || !strings.Contains(err.Error(), "administratively prohibited") {
		t.Fatalf("anonymous with a key that is not the VPS's = %v, want prohibited", err)
	}
}
