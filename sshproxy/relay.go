package sshproxy

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
)

// Relay copies bytes between a and b in both directions until both
// directions have ended, then closes both. When one side's reads end with
// EOF the other side's write half is closed (a half-close, CloseWrite when
// the connection has one), so the opposite direction keeps flowing; an error
// in either direction closes both at once. It returns the number of bytes
// copied from a to b and from b to a.
func Relay(a, b net.Conn) (aToB, bToA int64) {
	return relay(a, b, a, b, nil, nil, nil)
}

// RelayNotify is Relay, calling sent (when not nil) as soon as the copy
// from a to b has ended: everything a sent has been written to b, while
// the other direction may still be running.
func RelayNotify(a, b net.Conn, sent func()) (aToB, bToA int64) {
	return relay(a, b, a, b, nil, nil, sent)
}

// writeCloser is one end of a relay: where bytes go, and how to close it.
type writeCloser interface {
	io.Writer
	io.Closer
}

// relay is Relay with the readers given separately (a connection whose
// first bytes are buffered is read through its buffer). Bytes are added to
// toB and toA (when not nil) as they are written, so that a long session
// shows in the counters while it lasts. It runs one direction in a
// goroutine it waits for. sent, when not nil, is called when the copy from
// a to b has ended.
func relay(a, b writeCloser, ar, br io.Reader, toB, toA *atomic.Int64, sent func()) (aToB, bToA int64) {
	var once sync.Once
	abort := func() {
		once.Do(func() {
			a.Close()
			b.Close()
		})
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		bToA = copyHalf(a, br, toA, abort)
	}()
	aToB = copyHalf(b, ar, toB, abort)
	if sent != nil {
		sent()
	}
	wg.Wait()
	abort()
	return aToB, bToA
}

// copyHalf copies src to dst, counting into counted (when not nil); at EOF
// it half-closes dst, on error it aborts the relay.
func copyHalf(dst writeCloser, src io.Reader, counted *atomic.Int64, abort func()) int64 {
	n, err := copyCounted(dst, src, counted)
	if err != nil {
		abort()
		return n
	}
	if cw, ok := dst.(interface{ CloseWrite() error }); ok {
		if cw.CloseWrite() != nil {
			abort()
		}
		return n
	}
	abort()
	return n
}

// copyBufferSize is the buffer of a copy that cannot be spliced (TLS, SSH
// channels).
const copyBufferSize = 64 << 10

// copyCounted copies src to dst until EOF, adding what it writes to
// counted (when not nil) as it goes. A *bufferedConn is read from its
// buffer first and then from its connection. Between two TCP connections
// the bytes move in the kernel (spliceCopy); anything else (TLS, SSH
// channels) is copied in user space.
func copyCounted(dst io.Writer, src io.Reader, counted *atomic.Int64) (int64, error) {
	var written int64
	add := func(n int) {
		written += int64(n)
		if counted != nil {
			counted.Add(int64(n))
		}
	}
	if bc, ok := src.(*bufferedConn); ok {
		if k := bc.r.Buffered(); k > 0 {
			b, _ := bc.r.Peek(k) //nolint:errcheck // k bytes are buffered
			n, err := dst.Write(b)
			add(n)
			if err != nil {
				return written, err
			}
			bc.r.Discard(n) //nolint:errcheck // n bytes are buffered
		}
		src = bc.Conn
	}
	if d, ok := dst.(*net.TCPConn); ok {
		if s, ok := src.(*net.TCPConn); ok {
			n, handled, err := spliceCopy(d, s, counted)
			written += n
			if handled {
				return written, err
			}
		}
	}
	w := dst
	if counted != nil {
		w = countingWriter{w: dst, n: counted}
	}
	n, err := io.CopyBuffer(w, src, make([]byte, copyBufferSize))
	return written + n, err
}

// countingWriter adds what it writes to n.
type countingWriter struct {
	w io.Writer
	n *atomic.Int64
}

func (c countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n.Add(int64(n))
	return n, err
}
