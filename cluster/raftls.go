package cluster

import (
	"crypto/tls"
	"fmt"
	"net"
	"sync"
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
	// handshakeTimeout bounds an accepted connection's handshake (0:
	// raftHandshakeTimeout).
	handshakeTimeout time.Duration
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

// raftHandshakeTimeout bounds the TLS handshake of an accepted Raft
// connection: a peer that connects and never completes it is dropped.
const raftHandshakeTimeout = 10 * time.Second

// Accept returns the next connection. Its handshake (and the check of the
// peer's certificate) runs on first use, bounded by the stream layer's
// handshake timeout, so a slow or foreign peer neither holds up the accept
// loop nor a connection for long.
func (s *tlsStreamLayer) Accept() (net.Conn, error) {
	c, err := s.ln.Accept()
	if err != nil {
		return nil, err
	}
	timeout := s.handshakeTimeout
	if timeout <= 0 {
		timeout = raftHandshakeTimeout
	}
	return &handshakeConn{Conn: c.(*tls.Conn), timeout: timeout}, nil
}

// handshakeConn is an accepted TLS connection that completes its handshake
// within timeout on the first Read or Write, then clears the deadline (Raft
// sets none on the accepting side).
type handshakeConn struct {
	*tls.Conn
	timeout time.Duration
	once    sync.Once
	err     error
}

func (c *handshakeConn) handshake() error {
	c.once.Do(func() {
		c.Conn.SetDeadline(time.Now().Add(c.timeout)) //nolint:errcheck // a failed deadline shows up as a handshake error
		if c.err = c.Conn.Handshake(); c.err == nil {
			c.err = c.Conn.SetDeadline(time.Time{})
		}
	})
	return c.err
}

// Read completes the handshake first.
func (c *handshakeConn) Read(b []byte) (int, error) {
	if err := c.handshake(); err != nil {
		return 0, err
	}
	return c.Conn.Read(b)
}

// Write completes the handshake first.
func (c *handshakeConn) Write(b []byte) (int, error) {
	if err := c.handshake(); err != nil {
		return 0, err
	}
	return c.Conn.Write(b)
}

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
