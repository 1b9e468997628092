package sshproxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"
)

// Dialer opens tunnels to one VPS task through the first of several
// line-protocol proxies (one per host replica) that answers, starting with
// the one that answered last. It is safe for concurrent use.
type Dialer struct {
	addrs   []string
	id      int64
	token   string
	timeout time.Duration

	mu   sync.Mutex
	last int
}

// NewDialer returns a Dialer to VPS task id through the proxies at addrs
// ("host:port", tried in order) for the holder of API token ("" for an
// anonymous caller); timeout bounds each attempt as in DialTunnel.
func NewDialer(addrs []string, id int64, token string, timeout time.Duration) *Dialer {
	return &Dialer{addrs: append([]string(nil), addrs...), id: id, token: token, timeout: timeout}
}

// TaskID returns the VPS task the Dialer reaches.
func (d *Dialer) TaskID() int64 { return d.id }

// Dial returns a tunnel to the VPS. A proxy's ERROR answer is final (the
// VPS is not reachable through any replica) and comes back as a
// *TunnelError, except a lookup failure (ErrLookup), which another replica
// may not have, and a refused token (ErrUnauthenticated): a replica that
// has not applied a token just created yet refuses it, the others may not;
// when every proxy that answered refused the token, that refusal is the
// error. An unreachable proxy moves on to the next. When none answers, the
// error names every proxy tried.
func (d *Dialer) Dial(ctx context.Context) (net.Conn, error) {
	if len(d.addrs) == 0 {
		return nil, fmt.Errorf("no SSH proxy to try for task %d", d.id)
	}
	d.mu.Lock()
	start := d.last
	d.mu.Unlock()
	var errs []error
	var authErr error
	for i := range d.addrs {
		k := (start + i) % len(d.addrs)
		c, err := DialTunnelAs(ctx, d.addrs[k], d.id, d.token, d.timeout)
		if err == nil {
			d.mu.Lock()
			d.last = k
			d.mu.Unlock()
			return c, nil
		}
		var te *TunnelError
		if errors.As(err, &te) && !errors.Is(err, ErrLookup) && !errors.Is(err, ErrUnauthenticated) {
			return nil, fmt.Errorf("ssh proxy %s: %w", d.addrs[k], err)
		}
		if ctx.Err() != nil {
			return nil, err
		}
		if errors.Is(err, ErrUnauthenticated) {
			authErr = fmt.Errorf("ssh proxy %s: %w", d.addrs[k], err)
		}
		errs = append(errs, err)
	}
	if authErr != nil {
		return nil, authErr
	}
	return nil, fmt.Errorf("no SSH proxy reachable for task %d (tried %s): %w", d.id, strings.Join(d.addrs, ", "), errors.Join(errs...))
}
