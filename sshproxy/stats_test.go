package sshproxy_test

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/sshproxy"
	"github.com/hakuriver/hakuriver-ha/sshproxy/sshtest"
)

// TestStats_LiveTunnelCounters: an open tunnel counts as active, and the
// bytes it relays show in the counters while it is still open (not only
// when it closes); closing it ends the active count.
func TestStats_LiveTunnelCounters(t *testing.T) {
	r := &resolver{}
	r.set(9, sshproxy.Target{Task: vpsTask(9, "", sshtest.EchoServer(t)), Node: node("n1")})
	p := startProxy(t, sshproxy.Config{Resolver: r})
	if s := p.srv.Stats(); s.ActiveTunnels != 0 || s.BytesToVPS != 0 || s.BytesFromVPS != 0 {
		t.Fatalf("stats before any tunnel = %+v", s)
	}
	conn, err := sshproxy.DialTunnel(context.Background(), p.lineAddr, 9, 5*time.Second)
	if err != nil {
		t.Fatalf("DialTunnel: %v", err)
	}
	defer conn.Close()
	msg := strings.Repeat("x", 5000)
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, msg); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(conn, make([]byte, len(msg))); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		s := p.srv.Stats()
		return s.ActiveTunnels == 1 && s.BytesToVPS == int64(len(msg)) && s.BytesFromVPS == int64(len(msg))
	})
	conn.Close()
	waitFor(t, func() bool { return p.srv.Stats().ActiveTunnels == 0 })
	if s := p.srv.Stats(); s.Tunnels != 1 || s.BytesToVPS != int64(len(msg)) {
		t.Fatalf("stats after the tunnel closed = %+v", s)
	}
}
