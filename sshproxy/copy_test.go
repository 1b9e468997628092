package sshproxy_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"io"
	"math/rand/v2"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/ops/certs"
	"github.com/hakuriver/hakuriver-ha/sshproxy"
	"github.com/hakuriver/hakuriver-ha/sshproxy/sshtest"
)

// TestTunnel_LargeCopyIntact: pseudo-random bytes sent through a tunnel to
// an echo server come back byte-identical (SHA-256 of what was sent and of
// what came back), and once the tunnel has closed the byte counters hold
// exactly the size each way. Plain TCP (64 MiB, relayed in the kernel)
// with the first bytes pipelined behind the request line, before the
// proxy's answer (so they sit in the proxy's request buffer and must be
// relayed from there first); and TLS (16 MiB, copied in user space).
func TestTunnel_LargeCopyIntact(t *testing.T) {
	for _, tc := range []struct {
		name string
		size int64
		tls  bool
	}{{"plain pipelined", 64 << 20, false}, {"tls", 16 << 20, true}} {
		t.Run(tc.name, func(t *testing.T) {
			r := &resolver{}
			r.set(9, sshproxy.Target{Task: vpsTask(9, "", sshtest.EchoServer(t)), Node: node("n1")})
			cfg := sshproxy.Config{Resolver: r}
			var clientTLS *tls.Config
			if tc.tls {
				dir := tlsBundle(t, "h1")
				cfg.TLS = loadBundle(t, dir, "h1").Server()
				ca, err := certs.ClientTLS(filepath.Join(dir, certs.CAFile))
				if err != nil {
					t.Fatal(err)
				}
				clientTLS = ca
			}
			p := startProxy(t, cfg)

			var conn net.Conn
			// The first bytes of the stream go out with the request
			// (plain) or right after the answer (TLS, through DialTunnelTLS).
			src := newStream(tc.size)
			if tc.tls {
				c, err := sshproxy.DialTunnelTLS(context.Background(), p.lineAddr, 9, "", 10*time.Second, clientTLS)
				if err != nil {
					t.Fatalf("DialTunnelTLS: %v", err)
				}
				conn = c
			} else {
				c, err := net.Dial("tcp", p.lineAddr)
				if err != nil {
					t.Fatal(err)
				}
				first := make([]byte, 700)
				if _, err := io.ReadFull(src, first); err != nil {
					t.Fatal(err)
				}
				if _, err := c.Write(append([]byte("REQUEST_TUNNEL 9\n"), first...)); err != nil {
					t.Fatal(err)
				}
				conn = c
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(2 * time.Minute))

			sent := make(chan error, 1)
			go func() {
				_, err := io.Copy(conn, src)
				if err == nil {
					err = conn.(interface{ CloseWrite() error }).CloseWrite()
				}
				sent <- err
			}()
			if !tc.tls {
				answer := make([]byte, len("SUCCESS\n"))
				if _, err := io.ReadFull(conn, answer); err != nil || string(answer) != "SUCCESS\n" {
					t.Fatalf("answer %q, %v", answer, err)
				}
			}
			back := sha256.New()
			n, err := io.Copy(back, conn)
			if err != nil {
				t.Fatalf("read the echo after %d bytes: %v", n, err)
			}
			if err := <-sent; err != nil {
				t.Fatalf("send: %v", err)
			}
			if n != tc.size || !bytes.Equal(back.Sum(nil), src.sum()) {
				t.Fatalf("echo: %d bytes, sha256 %x; sent %d bytes, sha256 %x", n, back.Sum(nil), tc.size, src.sum())
			}
			conn.Close()
			waitFor(t, func() bool { return p.srv.Stats().ActiveTunnels == 0 })
			if s := p.srv.Stats(); s.Tunnels != 1 || s.BytesToVPS != tc.size || s.BytesFromVPS != tc.size {
				t.Fatalf("stats = %+v, want 1 tunnel and %d bytes each way", s, tc.size)
			}
		})
	}
}

// stream is size pseudo-random bytes (a fixed seed), hashed as they are
// read.
type stream struct {
	rng  *rand.ChaCha8
	left int64
	h    interface {
		io.Writer
		Sum([]byte) []byte
	}
}

func newStream(size int64) *stream {
	return &stream{rng: rand.NewChaCha8([32]byte{'h', 'a', 'k', 'u'}), left: size, h: sha256.New()}
}

func (s *stream) Read(p []byte) (int, error) {
	if s.left == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > s.left {
		p = p[:s.left]
	}
	s.rng.Read(p) //nolint:errcheck // ChaCha8 never fails
	s.h.Write(p)  //nolint:errcheck // hashes never fail
	s.left -= int64(len(p))
	return len(p), nil
}

// sum is the SHA-256 of everything read so far.
func (s *stream) sum() []byte { return s.h.Sum(nil) }
