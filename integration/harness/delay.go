//go:build integration

package harness

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Added latency without sch_netem. This kernel has no netem qdisc, so a
// link cannot be slowed in the kernel. Instead, iptables inside a member's
// namespace REDIRECTs the member's outgoing TCP connections to some peers
// (nat OUTPUT) to a DelayRelay listening on that namespace's loopback; the
// relay reads the original destination (SO_ORIGINAL_DST), dials it from
// inside the same namespace with a socket mark the REDIRECT rule skips, and
// forwards each direction holding every chunk for the delay. So Raft,
// HTTP and memberlist's TCP (push-pull, fallback probes) are slowed;
// UDP (memberlist's gossip and probes) is not.

// relayMark marks the relays' own outgoing connections, which the
// REDIRECT rules leave alone.
const relayMark = 0x4b52

const (
	// relayChunk is the largest chunk a relay reads at once.
	relayChunk = 32 << 10
	// relayQueue bounds the chunks a relay holds per direction of a
	// connection (at most relayQueue*relayChunk bytes in flight).
	relayQueue = 64
	// relayDialTimeout bounds a relay's dial of the original destination.
	relayDialTimeout = 5 * time.Second
)

// DelayRelay forwards TCP connections REDIRECTed to it inside one
// network namespace to their original destinations, adding a fixed delay
// to every chunk in each direction (order kept). It runs in the test
// process: its sockets are created inside the namespace by a thread that
// enters it for that call only.
type DelayRelay struct {
	netns string
	delay time.Duration
	ln    net.Listener
	port  int
	// relayed counts the connections forwarded so far.
	relayed atomic.Int64

	mu     sync.Mutex
	closed bool
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup
}

// StartDelayRelay starts a relay on 127.0.0.1 (a port the kernel picks)
// inside network namespace netns (a name under /var/run/netns) that adds
// delay to each direction of every connection it forwards.
func StartDelayRelay(netns string, delay time.Duration) (*DelayRelay, error) {
	var ln net.Listener
	err := inNetns(netns, func() error {
		var err error
		ln, err = net.Listen("tcp", "127.0.0.1:0")
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("delay relay in %s: %w", netns, err)
	}
	r := &DelayRelay{netns: netns, delay: delay, ln: ln, port: ln.Addr().(*net.TCPAddr).Port, conns: map[net.Conn]struct{}{}}
	r.wg.Add(1)
	go r.serve()
	return r, nil
}

// Port is the relay's port on the namespace's loopback.
func (r *DelayRelay) Port() int { return r.port }

// Relayed counts the connections the relay has forwarded.
func (r *DelayRelay) Relayed() int64 { return r.relayed.Load() }

// Close stops the relay and closes every connection it forwards (their
// ends see a reset or EOF and reconnect), and waits for its goroutines.
func (r *DelayRelay) Close() error {
	r.mu.Lock()
	r.closed = true
	err := r.ln.Close()
	for c := range r.conns {
		c.Close()
	}
	r.mu.Unlock()
	r.wg.Wait()
	return err
}

// track registers c to be closed by Close; false if the relay is closed.
func (r *DelayRelay) track(c net.Conn) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		c.Close()
		return false
	}
	r.conns[c] = struct{}{}
	return true
}

func (r *DelayRelay) untrack(c net.Conn) {
	r.mu.Lock()
	delete(r.conns, c)
	r.mu.Unlock()
	c.Close()
}

func (r *DelayRelay) serve() {
	defer r.wg.Done()
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		if !r.track(c) {
			continue
		}
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			defer r.untrack(c)
			r.handle(c.(*net.TCPConn))
		}()
	}
}

// handle dials c's original destination and forwards both ways.
func (r *DelayRelay) handle(c *net.TCPConn) {
	dst, err := originalDst(c)
	if err != nil || dst.Port == r.port && dst.IP.IsLoopback() {
		// Not a REDIRECTed connection (or one to the relay itself).
		return
	}
	var up net.Conn
	err = inNetns(r.netns, func() error {
		d := net.Dialer{Timeout: relayDialTimeout, Control: func(_, _ string, rc syscall.RawConn) error {
			var serr error
			if err := rc.Control(func(fd uintptr) {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK, relayMark)
			}); err != nil {
				return err
			}
			return serr
		}}
		var err error
		up, err = d.Dial("tcp", dst.String())
		return err
	})
	if err != nil {
		return
	}
	if !r.track(up) {
		return
	}
	defer r.untrack(up)
	r.relayed.Add(1)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); r.pipe(up.(*net.TCPConn), c) }()
	go func() { defer wg.Done(); r.pipe(c, up.(*net.TCPConn)) }()
	wg.Wait()
}

// chunk is data read at one time, due for writing at due.
type chunk struct {
	b   []byte
	due time.Time
}

// pipe copies src to dst, each chunk written delay after it was read, in
// order; at src's end it half-closes dst. A write error closes both.
func (r *DelayRelay) pipe(dst, src *net.TCPConn) {
	ch := make(chan chunk, relayQueue)
	go func() {
		defer close(ch)
		for {
			b := make([]byte, relayChunk)
			n, err := src.Read(b)
			if n > 0 {
				ch <- chunk{b: b[:n], due: time.Now().Add(r.delay)}
			}
			if err != nil {
				return
			}
		}
	}()
	for c := range ch {
		if w := time.Until(c.due); w > 0 {
			time.Sleep(w)
		}
		if _, err := dst.Write(c.b); err != nil {
			dst.Close()
			src.Close()
			for range ch {
			}
			return
		}
	}
	dst.CloseWrite() //nolint:errcheck // the peer may be gone already
}

// originalDst returns the destination a REDIRECTed connection was sent
// to (SO_ORIGINAL_DST, IPv4).
func originalDst(c *net.TCPConn) (*net.TCPAddr, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	var mreq *unix.IPv6Mreq
	var gerr error
	if err := rc.Control(func(fd uintptr) {
		// struct sockaddr_in fits the 16 bytes of an IPv6Mreq's
		// Multiaddr: family, port (big-endian), address.
		mreq, gerr = unix.GetsockoptIPv6Mreq(int(fd), unix.SOL_IP, unix.SO_ORIGINAL_DST)
	}); err != nil {
		return nil, err
	}
	if gerr != nil {
		return nil, fmt.Errorf("SO_ORIGINAL_DST: %w", gerr)
	}
	a := mreq.Multiaddr
	return &net.TCPAddr{IP: net.IPv4(a[4], a[5], a[6], a[7]), Port: int(binary.BigEndian.Uint16(a[2:4]))}, nil
}

// inNetns runs f on a thread inside network namespace netns (a name under
// /var/run/netns): sockets f creates belong to that namespace for their
// whole life and may be used from any goroutine. The thread returns to
// its own namespace after f, or is discarded if it cannot.
func inNetns(netns string, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		// The thread stays locked (and is discarded when this goroutine
		// ends) unless it is back in its own namespace.
		runtime.LockOSThread()
		own, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
		if err != nil {
			errc <- fmt.Errorf("open own network namespace: %w", err)
			return
		}
		defer own.Close()
		target, err := os.Open(filepath.Join("/var/run/netns", netns))
		if err != nil {
			errc <- fmt.Errorf("open network namespace %s: %w", netns, err)
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("enter network namespace %s: %w", netns, err)
			return
		}
		ferr := f()
		if err := unix.Setns(int(own.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- errors.Join(ferr, fmt.Errorf("leave network namespace %s: %w", netns, err))
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// DialIn opens a TCP connection to addr from inside network namespace
// netns, bounded by ctx.
func DialIn(ctx context.Context, netns, addr string) (net.Conn, error) {
	var c net.Conn
	err := inNetns(netns, func() error {
		var d net.Dialer
		var err error
		c, err = d.DialContext(ctx, "tcp", addr)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("dial %s in %s: %w", addr, netns, err)
	}
	return c, nil
}

// ListenIn opens a TCP listener on addr inside network namespace netns.
func ListenIn(netns, addr string) (net.Listener, error) {
	var ln net.Listener
	err := inNetns(netns, func() error {
		var err error
		ln, err = net.Listen("tcp", addr)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("listen on %s in %s: %w", addr, netns, err)
	}
	return ln, nil
}
