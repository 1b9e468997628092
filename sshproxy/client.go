package sshproxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// maxResponseLine bounds the proxy's answer line read by DialTunnel.
const maxResponseLine = 4096

// DialTunnel opens a tunnel to VPS task id through the line-protocol proxy
// at addr ("host:port"). On success the returned connection carries the raw
// bytes of the VPS's sshd; nothing after the proxy's "SUCCESS" line has been
// read from it. The dial and the proxy's answer are each bounded by timeout
// (0 means DefaultRequestTimeout) and by ctx. The request carries no API
// token: the proxy serves it as far as its anonymous role allows. When the proxy answers
// "ERROR <reason>" the error is a *TunnelError with that Reason and a Kind
// guessed from it; any other error means the proxy could not be reached or
// spoke something else, and another replica may do better.
func DialTunnel(ctx context.Context, addr string, id int64, timeout time.Duration) (net.Conn, error) {
	return DialTunnelAs(ctx, addr, id, "", timeout)
}

// DialTunnelAs is DialTunnel for the holder of API token ("" sends the
// original's request, without a token: an anonymous caller's).
func DialTunnelAs(ctx context.Context, addr string, id int64, token string, timeout time.Duration) (net.Conn, error) {
	if !validToken(token) {
		return nil, errors.New("ssh proxy: the API token must be one word of printable ASCII, at most 256 bytes")
	}
	if timeout <= 0 {
		timeout = DefaultRequestTimeout
	}
	d := net.Dialer{Timeout: timeout}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("connect to ssh proxy %s: %w", addr, err)
	}
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) }) //nolint:errcheck // best effort
	defer stop()
	c.SetDeadline(time.Now().Add(timeout)) //nolint:errcheck // a failed deadline shows up as an I/O error
	line, err := requestTunnel(c, id, token)
	if err != nil {
		c.Close()
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return nil, fmt.Errorf("ssh proxy %s: %w", addr, err)
	}
	switch {
	case line == "SUCCESS":
	case strings.HasPrefix(line, "ERROR "):
		c.Close()
		reason := strings.TrimPrefix(line, "ERROR ")
		return nil, &TunnelError{Kind: kindOfReason(reason), Reason: reason}
	default:
		c.Close()
		return nil, fmt.Errorf("ssh proxy %s: unexpected response %q", addr, line)
	}
	if !stop() {
		c.Close()
		return nil, fmt.Errorf("ssh proxy %s: %w", addr, ctx.Err())
	}
	c.SetDeadline(time.Time{}) //nolint:errcheck // see above
	return c, nil
}

// requestTunnel sends the request and reads the answer line one byte at a
// time, so that no byte of the tunnel itself is consumed.
func requestTunnel(c net.Conn, id int64, token string) (string, error) {
	req := requestPrefix + strconv.FormatInt(id, 10)
	if token != "" {
		req += " " + token
	}
	if _, err := c.Write([]byte(req + "\n")); err != nil {
		return "", fmt.Errorf("send request: %w", err)
	}
	var line []byte
	b := make([]byte, 1)
	for len(line) < maxResponseLine {
		n, err := c.Read(b)
		if n == 1 {
			if b[0] == '\n' {
				return strings.TrimSuffix(string(line), "\r"), nil
			}
			line = append(line, b[0])
			continue
		}
		if err != nil {
			return "", fmt.Errorf("read answer: %w", err)
		}
	}
	return "", fmt.Errorf("answer longer than %d bytes", maxResponseLine)
}
