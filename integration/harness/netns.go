//go:build integration

package harness

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// ipTimeout bounds one `ip` or `iptables` command.
const ipTimeout = 15 * time.Second

// Netns is a network namespace of its own, linked to the root namespace by
// a veth pair that carries a private /30 existing only on this machine:
// HostIP on the root side, NSIP inside. Nothing else is routed into it.
type Netns struct {
	Name   string
	HostIf string
	NSIf   string
	HostIP string
	NSIP   string
}

// ErrNetnsUnavailable is returned by NewNetns when this machine does not
// let the tests create network namespaces (no `ip`, no permission).
var ErrNetnsUnavailable = errors.New("network namespaces are not available")

// NewNetns creates a namespace and its veth pair on an unused
// 10.213.X.0/30 and removes both at cleanup. An error wrapping
// ErrNetnsUnavailable means the machine does not allow it (the caller may
// skip); any other error is a failure.
func NewNetns(tb TB) (*Netns, error) {
	tb.Helper()
	if _, err := exec.LookPath("ip"); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNetnsUnavailable, err)
	}
	id := randomHex(3)
	n := &Netns{Name: "hkt-" + id, HostIf: "hkt" + id + "h", NSIf: "hkt" + id + "n"}
	subnet, err := freeSubnet("10.213")
	if err != nil {
		return nil, err
	}
	n.HostIP, n.NSIP = subnet+".1", subnet+".2"
	if out, err := runCmd("ip", "netns", "add", n.Name); err != nil {
		return nil, fmt.Errorf("%w: ip netns add: %v: %s", ErrNetnsUnavailable, err, out)
	}
	tb.Cleanup(func() {
		if out, err := runCmd("ip", "netns", "del", n.Name); err != nil {
			tb.Logf("cleanup: ip netns del %s: %v: %s", n.Name, err, out)
		}
		// Deleting the namespace destroys its end of the pair and so the
		// pair; remove the host end in case it outlived it.
		if _, err := net.InterfaceByName(n.HostIf); err == nil {
			if out, err := runCmd("ip", "link", "del", n.HostIf); err != nil {
				tb.Logf("cleanup: ip link del %s: %v: %s", n.HostIf, err, out)
			}
		}
	})
	steps := [][]string{
		{"ip", "link", "add", n.HostIf, "type", "veth", "peer", "name", n.NSIf},
		{"ip", "link", "set", n.NSIf, "netns", n.Name},
		{"ip", "addr", "add", n.HostIP + "/30", "dev", n.HostIf},
		{"ip", "link", "set", n.HostIf, "up"},
		{"ip", "netns", "exec", n.Name, "ip", "addr", "add", n.NSIP + "/30", "dev", n.NSIf},
		{"ip", "netns", "exec", n.Name, "ip", "link", "set", n.NSIf, "up"},
		{"ip", "netns", "exec", n.Name, "ip", "link", "set", "lo", "up"},
	}
	for _, s := range steps {
		if out, err := runCmd(s[0], s[1:]...); err != nil {
			return nil, fmt.Errorf("%s: %v: %s", strings.Join(s, " "), err, out)
		}
	}
	return n, nil
}

// freeSubnet picks prefix.X (prefix "10.213" or the like) for a subnet
// that no address or route of this machine uses.
func freeSubnet(prefix string) (string, error) {
	addrs, err := runCmd("ip", "-4", "-o", "addr", "show")
	if err != nil {
		return "", fmt.Errorf("ip addr show: %v: %s", err, addrs)
	}
	routes, err := runCmd("ip", "-4", "route", "show", "table", "all")
	if err != nil {
		return "", fmt.Errorf("ip route show: %v: %s", err, routes)
	}
	b := make([]byte, 1)
	for range 64 {
		rand.Read(b) //nolint:errcheck // crypto/rand.Read never fails
		subnet := fmt.Sprintf("%s.%d", prefix, b[0])
		if !strings.Contains(addrs, subnet+".") && !strings.Contains(routes, subnet+".") {
			return subnet, nil
		}
	}
	return "", fmt.Errorf("no free %s.X subnet found on this machine", prefix)
}

// Exec runs a command inside the namespace and returns its combined
// output.
func (n *Netns) Exec(args ...string) (string, error) {
	return runCmd("ip", append([]string{"netns", "exec", n.Name}, args...)...)
}

// Listen opens a TCP listener on addr inside the namespace. The socket is
// created by a thread that enters the namespace only for that call; it
// belongs to the namespace for its whole life and may be served from any
// goroutine.
func (n *Netns) Listen(addr string) (net.Listener, error) {
	type result struct {
		ln  net.Listener
		err error
	}
	ch := make(chan result, 1)
	go func() {
		// The thread stays locked (and is discarded when this goroutine
		// ends) unless it is back in its own namespace.
		runtime.LockOSThread()
		own, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
		if err != nil {
			ch <- result{err: fmt.Errorf("open own network namespace: %w", err)}
			return
		}
		defer own.Close()
		target, err := os.Open(filepath.Join("/var/run/netns", n.Name))
		if err != nil {
			ch <- result{err: fmt.Errorf("open network namespace %s: %w", n.Name, err)}
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			ch <- result{err: fmt.Errorf("enter network namespace %s: %w", n.Name, err)}
			return
		}
		ln, lerr := net.Listen("tcp", addr)
		if err := unix.Setns(int(own.Fd()), unix.CLONE_NEWNET); err != nil {
			if ln != nil {
				ln.Close()
			}
			ch <- result{err: fmt.Errorf("leave network namespace %s: %w", n.Name, err)}
			return
		}
		runtime.UnlockOSThread()
		if lerr != nil {
			lerr = fmt.Errorf("listen on %s in %s: %w", addr, n.Name, lerr)
		}
		ch <- result{ln: ln, err: lerr}
	}()
	r := <-ch
	return r.ln, r.err
}

// runCmd runs a command bounded by ipTimeout and returns its combined output.
func runCmd(name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), ipTimeout)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return strings.TrimSpace(out.String()), err
}
