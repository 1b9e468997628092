package sshtest

import (
	"io"
	"net"
	"sync"
	"testing"
)

// EchoServer starts a TCP listener on 127.0.0.1 that writes back every byte
// each connection sends, standing in for a VPS's published port, and returns
// its port. The listener and its connections are closed, and its goroutines
// waited for, at cleanup.
func EchoServer(tb testing.TB) int {
	tb.Helper()
	return serve(tb, func(c net.Conn) {
		io.Copy(c, c) //nolint:errcheck // the test reads what came back
	})
}

// serve listens on 127.0.0.1:0 and runs handle for each connection in its
// own goroutine, closing the connection when handle returns. At cleanup it
// closes the listener and every open connection and waits for the handlers.
func serve(tb testing.TB, handle func(net.Conn)) int {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("listen: %v", err)
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns = make(map[net.Conn]struct{})
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns[c] = struct{}{}
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() {
					mu.Lock()
					delete(conns, c)
					mu.Unlock()
					c.Close()
				}()
				handle(c)
			}()
		}
	}()
	tb.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().(*net.TCPAddr).Port
}

// ClosedPort returns a port on 127.0.0.1 that nothing listens on: it was
// free a moment ago, so a dial to it is refused unless another process has
// taken it since.
func ClosedPort(tb testing.TB) int {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("listen: %v", err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return port
}
