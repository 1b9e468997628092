package sshproxy_test

import (
	"context"
	"crypto/tls"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/fsm"
	"github.com/hakuriver/hakuriver-ha/ops/certs"
	"github.com/hakuriver/hakuriver-ha/sshproxy"
	"github.com/hakuriver/hakuriver-ha/sshproxy/sshtest"
)

func tlsBundle(t *testing.T, nodes ...string) (dir string) {
	t.Helper()
	dir = t.TempDir()
	if _, err := certs.Init(dir, certs.InitOptions{Nodes: nodes}); err != nil {
		t.Fatal(err)
	}
	return dir
}

func loadBundle(t *testing.T, dir, node string) *certs.Bundle {
	t.Helper()
	b, err := certs.Load(filepath.Join(dir, certs.CertFile(node)), filepath.Join(dir, certs.KeyFile(node)), filepath.Join(dir, certs.CAFile))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestLineProtocol_TLS: with Config.TLS the tunnel request and the tunnel
// run inside TLS; a plain request is refused, and a client that does not
// trust the proxy's CA never sends its request.
func TestLineProtocol_TLS(t *testing.T) {
	user := sshtest.NewKey(t)
	vps := sshtest.NewSSHD(t, user.PublicKey())
	r := &resolver{}
	r.set(7, sshproxy.Target{Task: vpsTask(7, user.AuthorizedKey("user@test"), vps.Port()), Node: node("n1")})
	dir, foreign := tlsBundle(t, "h1"), tlsBundle(t, "h1")
	// Anonymous callers may do nothing: the request must carry the token,
	// which then travels inside TLS only.
	acc := &accounts{}
	acc.addToken("tok-alice", "alice", fsm.RoleOperator)
	p := startProxy(t, sshproxy.Config{Resolver: r, Accounts: acc, TLS: loadBundle(t, dir, "h1").Server()})
	ca, err := certs.ClientTLS(filepath.Join(dir, certs.CAFile))
	if err != nil {
		t.Fatal(err)
	}

	d := sshproxy.NewDialer([]string{p.lineAddr}, 7, "tok-alice", 5*time.Second)
	d.SetTLS(ca)
	conn, err := d.Dial(context.Background())
	if err != nil {
		t.Fatalf("tunnel over TLS: %v", err)
	}
	if _, ok := conn.(*tls.Conn); !ok {
		t.Fatalf("tunnel is a %T, want *tls.Conn", conn)
	}
	if got := sshtest.Run(t, conn, user.Signer, "hostname"); got != "fake-vps\n" {
		t.Fatalf("hostname through the TLS tunnel = %q", got)
	}
	conn.Close()

	// A plain request (the original client) is refused before its token
	// is looked at.
	_, err = sshproxy.DialTunnelAs(context.Background(), p.lineAddr, 7, "tok-alice", 5*time.Second)
	var te *sshproxy.TunnelError
	if !errors.As(err, &te) || !strings.Contains(te.Reason, "TLS required") {
		t.Fatalf("plain request: %v, want a TLS required refusal", err)
	}
	if got := exchange(t, p.lineAddr, "REQUEST_TUNNEL 7\n"); !strings.HasPrefix(got, "ERROR TLS required") {
		t.Fatalf("raw plain request answered %q", got)
	}

	// A client trusting another CA refuses the proxy.
	other, err := certs.ClientTLS(filepath.Join(foreign, certs.CAFile))
	if err != nil {
		t.Fatal(err)
	}
	_, err = sshproxy.DialTunnelTLS(context.Background(), p.lineAddr, 7, "tok-alice", 5*time.Second, other)
	var verr *tls.CertificateVerificationError
	if !errors.As(err, &verr) {
		t.Fatalf("client of another CA: %v, want a certificate verification error", err)
	}
	if s := p.srv.Stats(); s.Tunnels != 1 {
		t.Fatalf("stats = %+v, want exactly the one TLS tunnel", s)
	}
}
