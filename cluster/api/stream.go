package api

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// StreamProtocol is the Upgrade token of a raw byte stream: after the
// 101 answer the connection carries the bytes of one forwarded TCP
// connection, unframed, in both directions (client → replica → runner →
// the task's port). An HTTP/1.1 Upgrade rather than a WebSocket: the
// relays then copy between plain TCP sockets (splice on Linux) with no
// framing or masking on the way.
const StreamProtocol = "hakuriver-tcp"

// streamHandshakeTimeout bounds the exchange that opens a stream, from
// the dial to the 101 answer.
const streamHandshakeTimeout = 15 * time.Second

// IsStreamRequest reports whether r asks to be upgraded to a raw stream.
func IsStreamRequest(r *http.Request) bool {
	return strings.EqualFold(r.Header.Get("Upgrade"), StreamProtocol) &&
		headerHasToken(r.Header, "Connection", "upgrade")
}

func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// StreamDialer opens raw streams (DialStream) to replicas or runners.
type StreamDialer struct {
	// TLS is used for https:// bases (nil: the system roots).
	TLS *tls.Config
	// Token is sent in TokenHeader (the cluster token; runners' streams).
	Token string
	// Bearer is sent as "Authorization: Bearer" (an account's API token).
	Bearer string
	// DialTimeout bounds the TCP connect (0: streamHandshakeTimeout).
	DialTimeout time.Duration
	// Header is sent on every request.
	Header http.Header
}

// DialStream opens a raw stream: it sends GET base+pathQuery with
// "Upgrade: StreamProtocol" and returns the connection once the answer is
// 101. Any other answer is an *APIError carrying its status and message.
// ctx bounds the handshake only; the returned connection outlives it.
func (d StreamDialer) DialStream(ctx context.Context, base, pathQuery string) (net.Conn, error) {
	u, err := url.Parse(strings.TrimRight(base, "/") + pathQuery)
	if err != nil {
		return nil, fmt.Errorf("stream URL %q: %w", base+pathQuery, err)
	}
	ctx, cancel := context.WithTimeout(ctx, streamHandshakeTimeout)
	defer cancel()
	dt := d.DialTimeout
	if dt <= 0 {
		dt = streamHandshakeTimeout
	}
	nd := &net.Dialer{Timeout: dt, KeepAlive: 30 * time.Second}
	var conn net.Conn
	switch u.Scheme {
	case "http":
		conn, err = nd.DialContext(ctx, "tcp", hostPort(u, "80"))
	case "https":
		cfg := d.TLS.Clone()
		if cfg == nil {
			cfg = &tls.Config{}
		}
		if cfg.ServerName == "" {
			cfg.ServerName = u.Hostname()
		}
		td := &tls.Dialer{NetDialer: nd, Config: cfg}
		conn, err = td.DialContext(ctx, "tcp", hostPort(u, "443"))
	default:
		return nil, fmt.Errorf("stream URL %q: scheme must be http or https", base)
	}
	if err != nil {
		return nil, fmt.Errorf("open a stream to %s: %w", u.Host, err)
	}
	// The handshake honours ctx; the stream itself has no deadline.
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) }) //nolint:errcheck // best effort
	sc, err := d.handshake(conn, u)
	if !stop() {
		// ctx ended: the deadline may have been set after the exchange.
		if err == nil {
			err = fmt.Errorf("open a stream to %s: %w", u.Host, ctx.Err())
		}
	}
	if err != nil {
		conn.Close()
		return nil, err
	}
	conn.SetDeadline(time.Time{}) //nolint:errcheck // clears the handshake's bound
	return sc, nil
}

func hostPort(u *url.URL, def string) string {
	if u.Port() != "" {
		return u.Host
	}
	return net.JoinHostPort(u.Hostname(), def)
}

// handshake sends the upgrade request on conn and reads the answer.
func (d StreamDialer) handshake(conn net.Conn, u *url.URL) (net.Conn, error) {
	req, err := http.NewRequest(http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("stream request: %w", err)
	}
	for k, vs := range d.Header {
		req.Header[k] = vs
	}
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", StreamProtocol)
	if d.Token != "" {
		req.Header.Set(TokenHeader, d.Token)
	}
	if d.Bearer != "" {
		req.Header.Set("Authorization", "Bearer "+d.Bearer)
	}
	if err := req.Write(conn); err != nil {
		return nil, fmt.Errorf("send the stream request to %s: %w", u.Host, err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		return nil, fmt.Errorf("read the stream answer of %s: %w", u.Host, err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16)) //nolint:errcheck // a partial body still has the message
		resp.Body.Close()
		return nil, &APIError{StatusCode: resp.StatusCode, Message: errorMessage(b), Host: u.Host}
	}
	return bufferedConn(conn, br), nil
}

// AcceptStream answers 101 to a stream request (IsStreamRequest) and
// returns the connection, taken over from the HTTP server. Bytes the
// client sent after its request are not lost.
func AcceptStream(w http.ResponseWriter) (net.Conn, error) {
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return nil, fmt.Errorf("take over the connection: %w", err)
	}
	conn.SetDeadline(time.Time{}) //nolint:errcheck // the server's timeouts do not apply to a stream
	_, err = io.WriteString(brw, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: "+StreamProtocol+"\r\n\r\n")
	if err == nil {
		err = brw.Flush()
	}
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("answer the stream request: %w", err)
	}
	return bufferedConn(conn, brw.Reader), nil
}

// bufferedConn returns conn itself when br holds none of its bytes (so
// that copies reach the socket's own ReadFrom/WriteTo, splice on Linux),
// else conn reading br's bytes first.
func bufferedConn(conn net.Conn, br *bufio.Reader) net.Conn {
	if br.Buffered() == 0 {
		return conn
	}
	b, _ := br.Peek(br.Buffered()) //nolint:errcheck // Buffered bytes are always there
	return &prefixConn{Conn: conn, prefix: append([]byte(nil), b...)}
}

// prefixConn is a connection whose first bytes were read ahead.
type prefixConn struct {
	net.Conn
	prefix []byte
}

func (c *prefixConn) Read(p []byte) (int, error) {
	if len(c.prefix) > 0 {
		n := copy(p, c.prefix)
		c.prefix = c.prefix[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// CloseWrite half-closes the underlying connection when it can.
func (c *prefixConn) CloseWrite() error { return closeWrite(c.Conn) }

type closeWriter interface{ CloseWrite() error }

func closeWrite(c net.Conn) error {
	if cw, ok := c.(closeWriter); ok {
		return cw.CloseWrite()
	}
	return c.Close()
}

// Pipe copies bytes both ways between a and b until both directions have
// ended, half-closing each side as its source ends, then closes both. It
// returns the bytes copied from a to b and from b to a. A direction that
// fails (a reset) ends both.
func Pipe(a, b net.Conn) (aToB, bToA int64) {
	var wg sync.WaitGroup
	var once sync.Once
	abort := func() {
		once.Do(func() {
			a.Close()
			b.Close()
		})
	}
	cp := func(dst, src net.Conn, n *int64) {
		defer wg.Done()
		var err error
		*n, err = io.Copy(dst, src)
		if err != nil && !errors.Is(err, net.ErrClosed) {
			abort()
			return
		}
		if closeWrite(dst) != nil {
			abort()
		}
	}
	wg.Add(2)
	go cp(b, a, &aToB)
	go cp(a, b, &bToA)
	wg.Wait()
	abort()
	return aToB, bToA
}

// ErrorMessage reads the message of an error answer's body (its "error"
// or "detail" field, or the text itself).
func ErrorMessage(body []byte) string { return errorMessage(body) }
