package sshproxy_test

import (
	"context"
	"io"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/sshproxy"
)

// sink accepts connections and discards what they send, answering one byte
// at EOF.
func sink(tb testing.TB) int {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 1<<20)
				for {
					if _, err := c.Read(buf); err != nil {
						break
					}
				}
				c.Write([]byte{1})
			}()
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port
}

// BenchmarkTunnel compares a transfer and a connection setup through the
// line-protocol proxy with the same directly to the target.
func BenchmarkTunnel(b *testing.B) {
	port := sink(b)
	r := &resolver{}
	r.set(1, sshproxy.Target{Task: vpsTask(1, "", port), Node: node("n1")})
	p := startProxy(b, sshproxy.Config{Resolver: r, Logger: nil})
	direct := func() (net.Conn, error) { return net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port))) }
	proxied := func() (net.Conn, error) {
		return sshproxy.DialTunnel(context.Background(), p.lineAddr, 1, 5*time.Second)
	}
	const size = 256 << 20
	buf := make([]byte, 1<<20)
	for _, m := range []struct {
		name string
		dial func() (net.Conn, error)
	}{{"Direct", direct}, {"Proxy", proxied}} {
		b.Run("Throughput/"+m.name, func(b *testing.B) {
			b.SetBytes(size)
			for b.Loop() {
				c, err := m.dial()
				if err != nil {
					b.Fatal(err)
				}
				for n := 0; n < size; n += len(buf) {
					if _, err := c.Write(buf); err != nil {
						b.Fatal(err)
					}
				}
				c.(*net.TCPConn).CloseWrite()
				io.ReadAll(c)
				c.Close()
			}
		})
		b.Run("Setup/"+m.name, func(b *testing.B) {
			for b.Loop() {
				c, err := m.dial()
				if err != nil {
					b.Fatal(err)
				}
				c.Close()
			}
		})
	}
}
