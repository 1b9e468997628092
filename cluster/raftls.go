package cluster

import (
	"crypto/tls"
	"fmt"
	"net"
	"time"

	"github.com/hashicorp/raft"
)

// tlsStreamLayer is a raft.StreamLayer over mutually authenticated TLS:
// both ends present a certificate signed by the cluster CA and verify the
// other's. A peer without one cannot send or receive a single Raft RPC.
type tlsStreamLayer struct {
	ln  net.Listener
	adv net.Addr
	cfg *tls.Config
}

var _ raft.StreamLayer = (*tlsStreamLayer)(nil)

// newTLSStreamLayer listens on bind with cfg (a certs.Bundle's Mutual
// config) and advertises adv.
func newTLSStreamLayer(bind string, adv net.Addr, cfg *tls.Config) (*tlsStreamLayer, error) {
	ln, err := tls.Listen("tcp", bind, cfg)
	if err != nil {
		return nil, fmt.Errorf("listen for raft over tls on %s: %w", bind, err)
	}
	if adv == nil {
		adv = ln.Addr()
	}
	return &tlsStreamLayer{ln: ln, adv: adv, cfg: cfg}, nil
}

// Accept returns the next connection; its handshake (and the check of the
// peer's certificate) completes on first use, so a slow or foreign peer
// never holds up the accept loop.
func (s *tlsStreamLayer) Accept() (net.Conn, error) { return s.ln.Accept() }

// Close stops the listener.
func (s *tlsStreamLayer) Close() error { return s.ln.Close() }

// Addr is the advertised address.
func (s *tlsStreamLayer) Addr() net.Addr { return s.adv }

// Dial connects to a peer and completes the handshake within timeout,
// verifying the peer's certificate against the CA for its address.
func (s *tlsStreamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: timeout}, Config: s.cfg}
	c, err := d.Dial("tcp", string(address))
	if err != nil {
		return nil, fmt.Errorf("raft tls dial %s: %w", address, err)
	}
	return c, nil
}
