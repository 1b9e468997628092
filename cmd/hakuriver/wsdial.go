package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/gorilla/websocket"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
)

// dialWebSocket opens a WebSocket to the first of urls (one per replica)
// that accepts it, with the client's credentials: an HTTP answer other
// than 503 is final (an *api.APIError), unreachable replicas are skipped.
// what names the session in the error when none answers.
func dialWebSocket(ctx context.Context, c *api.Client, urls []string, what string, timeout time.Duration) (*websocket.Conn, error) {
	d := websocket.Dialer{HandshakeTimeout: timeout, Proxy: http.ProxyFromEnvironment, TLSClientConfig: c.TLS(),
		ReadBufferSize: 32 << 10, WriteBufferSize: 32 << 10}
	hdr := http.Header{}
	if tok := c.Token(); tok != "" {
		hdr.Set(api.TokenHeader, tok)
	}
	if b := c.Bearer(); b != "" {
		hdr.Set("Authorization", "Bearer "+b)
	}
	var errs []error
	for _, u := range urls {
		conn, resp, err := d.DialContext(ctx, u, hdr)
		if err == nil {
			return conn, nil
		}
		if resp != nil && resp.StatusCode != http.StatusServiceUnavailable {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10)) //nolint:errcheck // the status alone still explains
			resp.Body.Close()
			return nil, &api.APIError{StatusCode: resp.StatusCode, Message: strings.TrimSpace(api.ErrorMessage(body)), Host: u}
		}
		errs = append(errs, fmt.Errorf("%s: %w", u, err))
	}
	return nil, fmt.Errorf("open %s: %w: %w", what, api.ErrNoReplica, errors.Join(errs...))
}
