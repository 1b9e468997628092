package gossip

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

func newPool(t *testing.T, name string, key []byte, join ...string) *Pool {
	t.Helper()
	return newPoolOn(t, name, 0, key, join...)
}

// newPoolOn is newPool on gossip port port (0: any).
func newPoolOn(t *testing.T, name string, port int, key []byte, join ...string) *Pool {
	t.Helper()
	p, err := New(Config{Name: name, BindAddr: "127.0.0.1", BindPort: port, Key: key, Join: join, Fast: true,
		Meta: Meta{Role: RoleHost, ID: name, API: "http://" + name}})
	if err != nil {
		t.Fatalf("new pool %s: %v", name, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); p.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done; p.Close() })
	return p
}

func waitMembers(t *testing.T, p *Pool, want func([]Member) bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if want(p.Members()) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("members of %s never matched: %+v", p.cfg.Name, p.Members())
}

func TestPoolJoinMetaAndLeave(t *testing.T) {
	key := []byte("0123456789abcdef")
	a := newPool(t, "a", key)
	b := newPool(t, "b", key, a.Addr(), "127.0.0.1:1") // a dead seed is tolerated
	waitMembers(t, a, func(ms []Member) bool { return len(ms) == 2 })
	m, ok := a.Member("b")
	if !ok || m.Meta.API != "http://b" || m.Meta.Role != RoleHost {
		t.Fatalf("a sees b as %+v, %v", m, ok)
	}
	if err := b.UpdateMeta(Meta{Role: RoleHost, ID: "b", API: "http://b2", Bootstrapped: true}); err != nil {
		t.Fatal(err)
	}
	waitMembers(t, a, func([]Member) bool { m, _ := a.Member("b"); return m.Meta.Bootstrapped && m.Meta.API == "http://b2" })
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	waitMembers(t, a, func(ms []Member) bool { return len(ms) == 1 })
	if left := a.Left(); len(left) != 1 || left[0].Name != "b" || left[0].Meta.API != "http://b2" {
		t.Fatalf("a: b left on purpose, but Left() = %+v", left)
	}
}

// TestPoolLeftOnlyOnPurpose: a member that stops without saying goodbye
// (a crash) is not among Left, and one that left and joins again is no
// longer there.
func TestPoolLeftOnlyOnPurpose(t *testing.T) {
	a := newPool(t, "a", nil)
	b := newPool(t, "b", nil, a.Addr())
	c := newPool(t, "c", nil, a.Addr())
	waitMembers(t, a, func(ms []Member) bool { return len(ms) == 3 })
	// c crashes: memberlist stops without a leave message.
	c.closed.Store(true)
	if err := c.ml.Shutdown(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	// A crash is noticed only after memberlist's suspicion timeout.
	for deadline := time.Now().Add(60 * time.Second); len(a.Members()) != 1; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("a still sees %+v", a.Members())
		}
	}
	if left := a.Left(); len(left) != 1 || left[0].Name != "b" {
		t.Fatalf("a: only b left on purpose, but Left() = %+v", left)
	}
	// Restarted as a restarted process is: same name, same address.
	_, port, err := net.SplitHostPort(b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	bport, _ := strconv.Atoi(port) //nolint:errcheck // memberlist's own address
	b2 := newPoolOn(t, "b", bport, nil, a.Addr())
	waitMembers(t, a, func([]Member) bool { _, ok := a.Member("b"); return ok })
	if left := a.Left(); len(left) != 0 {
		t.Fatalf("a: b is back, but Left() = %+v", left)
	}
	if ds := a.Departures(); len(ds) != 1 || ds[0].Name != "b" || ds[0].BackAt.IsZero() || ds[0].BackAt.Before(ds[0].LeftAt) {
		t.Fatalf("a: b left and came back, but Departures() = %+v", ds)
	}
	_ = b2
}

// TestPoolWrongKeyCannotJoin: a pool with another key never joins, while
// one with the right key, started after it against the same seed, does (the
// positive control that proves joining works and that the seed has handled
// the attempts by the time absence is checked).
func TestPoolWrongKeyCannotJoin(t *testing.T) {
	key := []byte("0123456789abcdef")
	a := newPool(t, "a", key)
	c := newPool(t, "c", []byte("fedcba9876543210"), a.Addr())
	d := newPool(t, "d", key, a.Addr())
	waitMembers(t, a, func([]Member) bool { _, ok := a.Member("d"); return ok })
	waitMembers(t, d, func([]Member) bool { _, ok := d.Member("a"); return ok })
	if _, ok := a.Member("c"); ok {
		t.Fatalf("a pool with another key joined: %+v", a.Members())
	}
	if _, ok := c.Member("a"); ok {
		t.Fatal("c sees a despite the key mismatch")
	}
	if _, ok := c.Member("d"); ok {
		t.Fatal("c sees d despite the key mismatch")
	}
}

func TestMetaSizeLimit(t *testing.T) {
	_, err := Meta{Role: RoleRunner, ID: strings.Repeat("x", 600)}.Encode()
	if err == nil || !strings.Contains(err.Error(), "exceeds") {
		t.Fatalf("oversized meta accepted: %v", err)
	}
	b, err := Meta{Role: RoleRunner, ID: "r1", API: "http://127.0.0.1:8001"}.Encode()
	if err != nil {
		t.Fatal(err)
	}
	m, err := DecodeMeta(b)
	if err != nil || m.ID != "r1" || m.Role != RoleRunner {
		t.Fatalf("round trip: %+v %v", m, err)
	}
}

// TestPoolJoinPastAHungSeed: a seed that accepts connections and never
// answers (a frozen machine) does not hold back the join through the other
// seeds: b sees a while the hung seed still holds b's connection open
// (memberlist gives up on it only after its TCP timeout).
func TestPoolJoinPastAHungSeed(t *testing.T) {
	hung, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer hung.Close()
	conns := make(chan net.Conn, 8)
	go func() {
		for {
			c, err := hung.Accept()
			if err != nil {
				return
			}
			conns <- c
		}
	}()
	a := newPool(t, "a", nil)
	b := newPool(t, "b", nil, hung.Addr().String(), a.Addr())
	var held net.Conn
	select {
	case held = <-conns:
		defer held.Close()
	case <-time.After(30 * time.Second):
		t.Fatal("b never tried the hung seed")
	}
	waitMembers(t, b, func(ms []Member) bool { return len(ms) == 2 })
	// Still open: the attempt through the hung seed has not ended (what b
	// sent is read; then the read times out instead of meeting EOF).
	held.SetReadDeadline(time.Now().Add(50 * time.Millisecond)) //nolint:errcheck // a test conn
	_, err = io.Copy(io.Discard, held)
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("b joined a only after giving up on the hung seed (its connection: %v)", err)
	}
}
