package sshproxy_test

import (
	"bufio"
	"errors"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/sshproxy"
)

// lineProxy is a fake line-protocol proxy that answers every request with
// answer and, after "SUCCESS", echoes the tunnel's bytes. It counts the
// requests it got.
type lineProxy struct {
	addr string
	hits atomic.Int64
}

func newLineProxy(t *testing.T, answer string) *lineProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	p := &lineProxy{addr: ln.Addr().String()}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				if _, err := r.ReadString('\n'); err != nil {
					return
				}
				p.hits.Add(1)
				if _, err := io.WriteString(c, answer+"\n"); err != nil || answer != "SUCCESS" {
					return
				}
				io.Copy(c, r) //nolint:errcheck // the test reads what came back
			}()
		}
	}()
	return p
}

// deadAddr returns a loopback address nothing listens on.
func deadAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := ln.Addr().String()
	ln.Close()
	return a
}

// TestDialer_Failover: an unreachable proxy and a failed lookup move on to
// the next proxy; the one that answered is tried first next time; a
// refusal is final; when none answers the error names every proxy tried.
func TestDialer_Failover(t *testing.T) {
	lookup := newLineProxy(t, "ERROR Internal error looking up task")
	good := newLineProxy(t, "SUCCESS")
	dead := deadAddr(t)
	d := sshproxy.NewDialer([]string{dead, lookup.addr, good.addr}, 7, "", 2*time.Second)
	if d.TaskID() != 7 {
		t.Fatalf("TaskID = %d", d.TaskID())
	}
	for i := range 2 {
		c, err := d.Dial(t.Context())
		if err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
		if _, err := io.WriteString(c, "ping\n"); err != nil {
			t.Fatal(err)
		}
		line, err := bufio.NewReader(c).ReadString('\n')
		c.Close()
		if err != nil || line != "ping\n" {
			t.Fatalf("tunnel echoed %q, %v", line, err)
		}
	}
	if n := lookup.hits.Load(); n != 1 {
		t.Fatalf("the failing proxy was asked %d times, want once (then the good one first)", n)
	}

	refuse := newLineProxy(t, "ERROR Task 7 not found.")
	_, err := sshproxy.NewDialer([]string{refuse.addr, good.addr}, 7, "", 2*time.Second).Dial(t.Context())
	var te *sshproxy.TunnelError
	if !errors.As(err, &te) || !errors.Is(err, sshproxy.ErrTaskNotFound) || !strings.Contains(err.Error(), refuse.addr) {
		t.Fatalf("refusal = %v, want a final *TunnelError", err)
	}

	_, err = sshproxy.NewDialer([]string{dead, lookup.addr}, 7, "", 2*time.Second).Dial(t.Context())
	if err == nil || !strings.Contains(err.Error(), "no SSH proxy reachable for task 7 (tried "+dead+", "+lookup.addr+")") {
		t.Fatalf("none reachable = %v", err)
	}
}
