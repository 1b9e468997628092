//go:build integration

package integration

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/integration/harness"
)

// TestDelayRelay checks the chaos campaign's latency fault tool
// (Bridge.Delay) between two namespaces on a bridge: a connection opened
// before the fault is reset, a round trip on a connection opened after it
// takes at least twice the delay, whichever member opens it, and after
// Heal a new connection goes direct again (no rule left pointing at a
// closed relay). It tests the tool, not speed: the bound is a lower one.
func TestDelayRelay(t *testing.T) {
	br, err := harness.NewBridge(t, 2)
	if errors.Is(err, harness.ErrNetnsUnavailable) {
		skipUnlessRequired(t, netnsRequireEnv, "%v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	const delay = 150 * time.Millisecond
	ns, ips := br.Netns(), br.IPs()
	addrs := make([]string, 2)
	for i := range 2 {
		ln, err := harness.ListenIn(ns[i], net.JoinHostPort(ips[i], "0"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		addrs[i] = ln.Addr().String()
		go echoConns(ln)
	}
	dial := func(from, to int) net.Conn {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := harness.DialIn(ctx, ns[from], addrs[to])
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	old := dial(0, 1)
	if _, err := roundTrip(old); err != nil {
		t.Fatalf("round trip before the fault: %v", err)
	}
	if err := br.Delay(0, delay); err != nil {
		t.Fatal(err)
	}
	// The connection opened before the fault was reset (ss -K).
	err = harness.Eventually(10*time.Second, func() (bool, string) {
		if _, err := roundTrip(old); err != nil {
			return true, ""
		}
		return false, "the connection opened before the fault still works"
	})
	if err != nil {
		t.Error(err)
	}
	for _, p := range [][2]int{{0, 1}, {1, 0}} {
		c := dial(p[0], p[1])
		for range 3 {
			rtt, err := roundTrip(c)
			if err != nil {
				t.Fatalf("round trip %s -> %s under the fault: %v", ips[p[0]], ips[p[1]], err)
			}
			t.Logf("round trip %s -> %s: %s", ips[p[0]], ips[p[1]], rtt)
			if rtt < 2*delay {
				t.Errorf("round trip %s -> %s took %s under a delay of %s each way, want at least %s", ips[p[0]], ips[p[1]], rtt, delay, 2*delay)
			}
		}
	}
	if n := br.Relayed(); n < 2 {
		t.Errorf("the relays forwarded %d connections, want at least 2", n)
	}
	if err := br.Heal(); err != nil {
		t.Fatal(err)
	}
	if br.Relayed() != 0 {
		t.Errorf("relays still in force after Heal")
	}
	for _, p := range [][2]int{{0, 1}, {1, 0}} {
		if _, err := roundTrip(dial(p[0], p[1])); err != nil {
			t.Errorf("round trip %s -> %s after Heal: %v", ips[p[0]], ips[p[1]], err)
		}
	}
}

// echoConns echoes every connection ln accepts until ln is closed.
func echoConns(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			io.Copy(c, c) //nolint:errcheck // the client closes
		}()
	}
}

// roundTrip writes one byte on c and reads it back, within 10 s, and
// returns how long that took.
func roundTrip(c net.Conn) (time.Duration, error) {
	start := time.Now()
	if err := c.SetDeadline(start.Add(10 * time.Second)); err != nil {
		return 0, err
	}
	if _, err := c.Write([]byte{'x'}); err != nil {
		return 0, err
	}
	b := make([]byte, 1)
	if _, err := io.ReadFull(c, b); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}
