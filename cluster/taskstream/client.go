package taskstream

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gorilla/websocket"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
)

// Client reaches runners' task endpoints as the cluster: every request
// carries the cluster token, and https runners are verified with TLS. It
// is the one place a replica builds such a request, whatever the
// transport: a WebSocket (Dial: exec's framed stdin, stdout, stderr and
// control), a raw byte stream (DialStream: a forwarded TCP connection) or
// a plain request (Do: a copy's tar stream). A refusal is an
// *api.APIError carrying the runner's status and message.
type Client struct {
	// Token is the cluster token.
	Token string
	// TLS verifies https runners (nil: plain http, or the system roots).
	TLS *tls.Config
	// HandshakeTimeout bounds a WebSocket upgrade (default 10 s).
	HandshakeTimeout time.Duration
	// HTTP sends Do's requests (nil: http.DefaultClient); its transport
	// carries TLS.
	HTTP *http.Client
}

// Dial opens the WebSocket at path (with query q) on the runner at base.
func (c Client) Dial(ctx context.Context, base, path string, q url.Values) (*websocket.Conn, error) {
	u, err := url.Parse(base)
	if err != nil {
		return nil, fmt.Errorf("runner URL %q: %w", base, err)
	}
	switch u.Scheme {
	case "https":
		u.Scheme = "wss"
	default:
		u.Scheme = "ws"
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + path
	u.RawQuery = q.Encode()
	to := c.HandshakeTimeout
	if to <= 0 {
		to = 10 * time.Second
	}
	wd := websocket.Dialer{HandshakeTimeout: to, TLSClientConfig: c.TLS, ReadBufferSize: 32 << 10, WriteBufferSize: 32 << 10}
	conn, resp, err := wd.DialContext(ctx, u.String(), c.header())
	if err != nil {
		if resp != nil {
			return nil, refusal(resp, u.Host)
		}
		return nil, fmt.Errorf("connect to runner %s: %w", u.Host, err)
	}
	return conn, nil
}

// DialStream opens a raw byte stream (api.StreamProtocol) at pathQuery on
// the runner at base. ctx bounds the handshake only.
func (c Client) DialStream(ctx context.Context, base, pathQuery string) (net.Conn, error) {
	return api.StreamDialer{Token: c.Token, TLS: c.TLS}.DialStream(ctx, base, pathQuery)
}

// Do sends method pathQuery (with body, streamed, of contentType) to the
// runner at base and returns its 2xx answer, whose body the caller reads
// and closes; there is no overall deadline, only ctx.
func (c Client) Do(ctx context.Context, method, base, pathQuery string, body io.Reader, contentType string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(base, "/")+pathQuery, body)
	if err != nil {
		return nil, fmt.Errorf("runner request: %w", err)
	}
	req.Header = c.header()
	if body != nil && contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("runner %s: %w", req.URL.Host, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, refusal(resp, req.URL.Host)
	}
	return resp, nil
}

// header is the cluster's credentials.
func (c Client) header() http.Header {
	h := http.Header{}
	if c.Token != "" {
		h.Set(api.TokenHeader, c.Token)
	}
	return h
}

// refusal reads a runner's refusal (and closes its body).
func refusal(resp *http.Response, host string) error {
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10)) //nolint:errcheck // a partial body still has the message
	return &api.APIError{StatusCode: resp.StatusCode, Message: api.ErrorMessage(b), Host: host}
}
