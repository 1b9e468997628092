// Package taskstream finds the runner of a task in a replica's local state
// and opens an authenticated WebSocket to it (the cluster token, TLS when
// the cluster has it), then relays a client's WebSocket to it frame by
// frame. Exec sessions use it; so can anything else that streams into a
// task through any replica (port forwarding, file copy). Nothing here asks
// the leader: a stream keeps working while leadership changes.
package taskstream

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/fsm"
)

// Errors of Locate; each wraps a sentinel the API maps to an HTTP status.
var (
	// ErrNotFound: no such task in the local state (404).
	ErrNotFound = fsm.ErrNotFound
	// ErrNotRunning: the task is not running, or its runner is unknown
	// or offline (409).
	ErrNotRunning = fsm.ErrConflict
)

// Tasks and Nodes are the read-only state Locate uses (*fsm.Machine is
// both).
type Tasks interface {
	Task(id int64) (*fsm.Task, bool)
}

// Nodes gives the committed runner nodes.
type Nodes interface {
	Node(hostname string) (*fsm.Node, bool)
}

// Target is a running task and its runner's API base URL.
type Target struct {
	Task      *fsm.Task
	RunnerURL string
}

// Locate finds running task id and its runner in the local state.
func Locate(tasks Tasks, nodes Nodes, id int64) (Target, error) {
	t, ok := tasks.Task(id)
	if !ok {
		return Target{}, fmt.Errorf("%w: task %d", ErrNotFound, id)
	}
	if t.Status != fsm.StatusRunning {
		return Target{Task: t}, fmt.Errorf("%w: task %d is %s, not running", ErrNotRunning, id, t.Status)
	}
	n, ok := nodes.Node(t.AssignedNode)
	if !ok || n.URL == "" {
		return Target{Task: t}, fmt.Errorf("%w: task %d: its runner %q is unknown", ErrNotRunning, id, t.AssignedNode)
	}
	if n.Status != fsm.NodeOnline {
		return Target{Task: t}, fmt.Errorf("%w: task %d: its runner %s is %s", ErrNotRunning, id, n.Hostname, n.Status)
	}
	return Target{Task: t, RunnerURL: n.URL}, nil
}

// Dialer opens WebSockets to runners with the cluster token.
type Dialer struct {
	// Token is the cluster token.
	Token string
	// TLS verifies https runners (nil: plain http, or the system roots).
	TLS *tls.Config
	// HandshakeTimeout bounds the upgrade (default 10 s).
	HandshakeTimeout time.Duration
}

// RunnerError is a runner's refusal of an upgrade: its HTTP status and
// message.
type RunnerError struct {
	Status  int
	Message string
}

func (e *RunnerError) Error() string {
	return fmt.Sprintf("runner answered HTTP %d: %s", e.Status, e.Message)
}

// Dial opens the WebSocket at path (with query q) on the runner at base.
// A refusal is a *RunnerError.
func (d Dialer) Dial(ctx context.Context, base, path string, q url.Values) (*websocket.Conn, error) {
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
	to := d.HandshakeTimeout
	if to <= 0 {
		to = 10 * time.Second
	}
	wd := websocket.Dialer{HandshakeTimeout: to, TLSClientConfig: d.TLS, ReadBufferSize: 32 << 10, WriteBufferSize: 32 << 10}
	hdr := http.Header{}
	if d.Token != "" {
		hdr.Set(api.TokenHeader, d.Token)
	}
	conn, resp, err := wd.DialContext(ctx, u.String(), hdr)
	if err != nil {
		if resp != nil {
			defer resp.Body.Close()
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10)) //nolint:errcheck // the status explains
			return nil, &RunnerError{Status: resp.StatusCode, Message: api.ErrorText(body)}
		}
		return nil, fmt.Errorf("connect to runner %s: %w", u.Host, err)
	}
	return conn, nil
}

// DefaultPingEvery is how often Relay pings both sides; a side silent
// (no message, no pong) for three intervals is taken as gone.
const DefaultPingEvery = 30 * time.Second

// Relay copies messages both ways between a (the client) and b (the
// runner) until one side closes or goes silent; then it closes the other,
// passing a normal close on. It returns how the first side ended. Both
// sides are pinged every DefaultPingEvery, so that a client that vanished
// without closing (a laptop off the network) ends the session and its
// command instead of leaving them open.
func Relay(a, b *websocket.Conn) error { return RelayPinging(a, b, DefaultPingEvery) }

// RelayPinging is Relay with pings every ping.
func RelayPinging(a, b *websocket.Conn, ping time.Duration) error {
	idle := 3 * ping
	errc := make(chan error, 2)
	var wmuA, wmuB sync.Mutex
	for _, c := range []*websocket.Conn{a, b} {
		c.SetReadDeadline(time.Now().Add(idle)) //nolint:errcheck // the read reports it
		c.SetPongHandler(func(string) error { return c.SetReadDeadline(time.Now().Add(idle)) })
	}
	pump := func(dst *websocket.Conn, dmu *sync.Mutex, src *websocket.Conn) {
		for {
			mt, data, err := src.ReadMessage()
			if err != nil {
				code := websocket.CloseNormalClosure
				var ce *websocket.CloseError
				if errors.As(err, &ce) {
					code = ce.Code
					if code == websocket.CloseNoStatusReceived {
						code = websocket.CloseNormalClosure
					}
				} else {
					code = websocket.CloseGoingAway
				}
				dmu.Lock()
				dst.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, ""), time.Now().Add(time.Second)) //nolint:errcheck // best effort
				dmu.Unlock()
				errc <- err
				return
			}
			src.SetReadDeadline(time.Now().Add(idle)) //nolint:errcheck // the next read reports it
			dmu.Lock()
			dst.SetWriteDeadline(time.Now().Add(30 * time.Second)) //nolint:errcheck // the write reports it
			err = dst.WriteMessage(mt, data)
			dmu.Unlock()
			if err != nil {
				errc <- err
				return
			}
		}
	}
	go pump(b, &wmuB, a)
	go pump(a, &wmuA, b)
	stop := make(chan struct{})
	go func() {
		t := time.NewTicker(ping)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				for _, p := range []struct {
					c  *websocket.Conn
					mu *sync.Mutex
				}{{a, &wmuA}, {b, &wmuB}} {
					p.mu.Lock()
					p.c.WriteControl(websocket.PingMessage, nil, time.Now().Add(ping)) //nolint:errcheck // a dead side ends its read
					p.mu.Unlock()
				}
			}
		}
	}()
	first := <-errc
	close(stop)
	// Give the close a moment to reach the other side, then end both.
	select {
	case <-errc:
	case <-time.After(2 * time.Second):
	}
	a.Close()
	b.Close()
	return first
}
