package gossip

import (
	"context"
	"errors"
	"net"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

// cuttable drops everything a member sends while cut, like an iptables
// DROP rule on its link.
type cuttable struct {
	memberlist.Transport
	cut atomic.Bool
}

func (c *cuttable) WriteTo(b []byte, addr string) (time.Time, error) {
	if c.cut.Load() {
		return time.Now(), nil
	}
	return c.Transport.WriteTo(b, addr)
}

func (c *cuttable) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	if c.cut.Load() {
		return nil, errors.New("link cut")
	}
	return c.Transport.DialTimeout(addr, timeout)
}

// freePort returns a TCP port free on 127.0.0.1 now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// newCuttable starts a pool with no seeds (so Run's join-when-alone never
// fires) whose links can be cut, that stops gossiping to the dead after
// deadGossip.
func newCuttable(t *testing.T, name string, deadGossip time.Duration) (*Pool, *cuttable) {
	t.Helper()
	tr := &cuttable{}
	var p *Pool
	var err error
	for range 5 { // the free port may be taken meanwhile
		p, err = New(Config{Name: name, BindAddr: "127.0.0.1", BindPort: freePort(t), Fast: true,
			Meta: Meta{Role: RoleHost, ID: name, API: "http://" + name}, deadGossip: deadGossip,
			transport: func(nt memberlist.Transport) memberlist.Transport { tr.Transport = nt; return tr }})
		if err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("new pool %s: %v", name, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); p.Run(ctx) }() //nolint:errcheck // Run returns nil
	t.Cleanup(func() { cancel(); <-done; p.Close() })
	return p, tr
}

func alive(name string) func([]Member) bool {
	return func(ms []Member) bool {
		return slices.ContainsFunc(ms, func(m Member) bool { return m.Name == name && m.Alive })
	}
}

// TestPoolRejoinsAfterLongPartition: two members cut from each other
// longer than memberlist gossips to the dead find each other again once the
// link is back. memberlist alone never merges them (it pushes/pulls only
// with the alive); before Pool's reconnect loop the two sides of a
// partition longer than 30 s stayed apart for good (found by the chaos
// tests: a former minority replica never forwarded a write again).
func TestPoolRejoinsAfterLongPartition(t *testing.T) {
	const deadGossip = 300 * time.Millisecond
	a, ta := newCuttable(t, "a", deadGossip)
	b, tb := newCuttable(t, "b", deadGossip)
	if err := b.join([]string{a.Addr()}); err != nil {
		t.Fatalf("join: %v", err)
	}
	waitMembers(t, a, alive("b"))
	waitMembers(t, b, alive("a"))

	ta.cut.Store(true)
	tb.cut.Store(true)
	notAlive := func(name string) func([]Member) bool {
		return func(ms []Member) bool { return !alive(name)(ms) }
	}
	waitMembers(t, a, notAlive("b"))
	waitMembers(t, b, notAlive("a"))
	// Stay cut well past the window in which memberlist still gossips to
	// the dead (the condition is time passing, not an event).
	time.Sleep(5 * deadGossip)

	ta.cut.Store(false)
	tb.cut.Store(false)
	waitMembers(t, a, alive("b"))
	waitMembers(t, b, alive("a"))
}
