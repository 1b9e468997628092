package sshproxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"time"
)

// tlsRecordHandshake is the first byte of a TLS ClientHello record.
const tlsRecordHandshake = 0x16

// reasonTLSRequired refuses a plain line-protocol request on a proxy that
// serves the line protocol over TLS only.
const reasonTLSRequired = "TLS required: this proxy serves the tunnel request over TLS only (hakuriver ssh with --ca-file)."

// startTLS turns a line-protocol connection whose first byte begins a TLS
// handshake into a TLS server connection (Config.TLS), completing the
// handshake within RequestTimeout. It returns the connection to serve and
// its buffered reader; ok is false when the connection is plain (and TLS is
// required) or the handshake failed, after answering what it could.
func (s *Server) startTLS(c net.Conn, br *bufio.Reader, remote string) (net.Conn, *bufio.Reader, bool) {
	b, err := br.Peek(1)
	if err != nil || b[0] != tlsRecordHandshake {
		s.refuseLine(c, remote, 0, refuse(ErrBadRequest, nil, reasonTLSRequired))
		return nil, nil, false
	}
	tc := tls.Server(&bufferedConn{Conn: c, r: br}, s.cfg.TLS)
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.RequestTimeout)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		s.refused.Add(1)
		s.log.Info("ssh tunnel refused", "mode", "line", "remote", remote, "reason", "tls handshake", "err", err)
		return nil, nil, false
	}
	return tc, bufio.NewReaderSize(tc, max(s.cfg.MaxRequestLine, 64)), true
}

// dialProxy connects to the proxy at addr within timeout, over TLS when
// cfg is set (the server verified against cfg's roots for addr's host).
func dialProxy(ctx context.Context, addr string, timeout time.Duration, cfg *tls.Config) (net.Conn, error) {
	nd := &net.Dialer{Timeout: timeout}
	if cfg == nil {
		return nd.DialContext(ctx, "tcp", addr)
	}
	d := tls.Dialer{NetDialer: nd, Config: cfg}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	return c, nil
}

// DialTunnelTLS is DialTunnelAs over TLS: the proxy is verified with cfg
// (nil: plain TCP, as DialTunnelAs).
func DialTunnelTLS(ctx context.Context, addr string, id int64, token string, timeout time.Duration, cfg *tls.Config) (net.Conn, error) {
	return dialTunnel(ctx, addr, id, token, timeout, cfg)
}

// SetTLS makes the Dialer speak TLS to the proxies, verifying them with
// cfg (nil: plain TCP). Call it before Dial.
func (d *Dialer) SetTLS(cfg *tls.Config) { d.tls = cfg }
