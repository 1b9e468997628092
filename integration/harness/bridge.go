//go:build integration

package harness

import (
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
)

// Bridge is a network of its own for a cluster: a Linux bridge in the root
// namespace carrying a private 10.214.X.0/24, and one network namespace per
// member (host replica or runner), each linked to the bridge by a veth pair.
// The root namespace holds HostIP on the bridge, so the test process (the
// clients) reaches every member directly; member-to-member traffic crosses
// the bridge and is what the fault methods cut, with iptables inside the
// members' namespaces. Namespaces share the filesystem, so the cluster's
// shared dir is shared as on NFS.
//
// Bridged traffic may cross the root namespace's FORWARD chain
// (br_netfilter, whose global switch overrides the bridge's own
// nf_call_iptables 0): NewBridge inserts one ACCEPT rule for traffic from
// the bridge to itself at the top of that chain, so that a host firewall
// (Docker's FORWARD DROP) leaves it alone, and removes it at cleanup.
type Bridge struct {
	Name   string
	HostIP string
	// Members by index: the namespace name and the address in it.
	Members []BridgeMember

	mu sync.Mutex
	// cuts records the iptables rules in force, for Heal and reporting.
	cuts map[[2]int]bool
	// relays are the delay relays in force (Delay), by member.
	relays map[int]*DelayRelay
	// delayed are the [from, to] member pairs whose connections the
	// relays carry.
	delayed [][2]int
}

// BridgeMember is one namespace on a Bridge.
type BridgeMember struct {
	Netns string
	IP    string
	// hostIf is the root-side end of its veth pair (on the bridge).
	hostIf string
}

// NewBridge creates a bridge with n member namespaces and removes all of
// it at cleanup. An error wrapping ErrNetnsUnavailable means the machine
// does not allow it (no `ip` or `iptables`, no permission).
func NewBridge(tb TB, n int) (*Bridge, error) {
	tb.Helper()
	for _, tool := range []string{"ip", "iptables"} {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrNetnsUnavailable, err)
		}
	}
	subnet, err := freeSubnet("10.214")
	if err != nil {
		return nil, err
	}
	id := randomHex(3)
	b := &Bridge{Name: "hkb" + id, HostIP: subnet + ".1", cuts: map[[2]int]bool{}}
	if out, err := runCmd("ip", "link", "add", b.Name, "type", "bridge", "nf_call_iptables", "0"); err != nil {
		return nil, fmt.Errorf("%w: ip link add %s type bridge: %v: %s", ErrNetnsUnavailable, b.Name, err, out)
	}
	tb.Cleanup(func() {
		for _, m := range b.Members {
			if out, err := runCmd("ip", "netns", "del", m.Netns); err != nil {
				tb.Logf("cleanup: ip netns del %s: %v: %s", m.Netns, err, out)
			}
			// Deleting the namespace destroys the pair; remove the host
			// end in case it outlived it.
			if _, err := net.InterfaceByName(m.hostIf); err == nil {
				if out, err := runCmd("ip", "link", "del", m.hostIf); err != nil && !strings.Contains(out, "Cannot find device") {
					tb.Logf("cleanup: ip link del %s: %v: %s", m.hostIf, err, out)
				}
			}
		}
		if out, err := runCmd("ip", "link", "del", b.Name); err != nil {
			tb.Logf("cleanup: ip link del %s: %v: %s", b.Name, err, out)
		}
	})
	accept := []string{"FORWARD", "-i", b.Name, "-o", b.Name, "-j", "ACCEPT"}
	if out, err := runCmd("iptables", append([]string{"-w", "5", "-I"}, accept...)...); err != nil {
		return nil, fmt.Errorf("%w: iptables -I %s: %v: %s", ErrNetnsUnavailable, strings.Join(accept, " "), err, out)
	}
	tb.Cleanup(func() {
		if out, err := runCmd("iptables", append([]string{"-w", "5", "-D"}, accept...)...); err != nil {
			tb.Logf("cleanup: iptables -D %s: %v: %s", strings.Join(accept, " "), err, out)
		}
	})
	steps := [][]string{
		{"ip", "addr", "add", b.HostIP + "/24", "dev", b.Name},
		{"ip", "link", "set", b.Name, "up"},
	}
	for i := range n {
		m := BridgeMember{Netns: fmt.Sprintf("hkb-%s-%d", id, i), IP: fmt.Sprintf("%s.%d", subnet, 11+i), hostIf: fmt.Sprintf("hkb%s%dh", id, i)}
		nsIf := fmt.Sprintf("hkb%s%dn", id, i)
		if out, err := runCmd("ip", "netns", "add", m.Netns); err != nil {
			return nil, fmt.Errorf("%w: ip netns add: %v: %s", ErrNetnsUnavailable, err, out)
		}
		b.Members = append(b.Members, m)
		ex := []string{"ip", "netns", "exec", m.Netns}
		steps = append(steps,
			[]string{"ip", "link", "add", m.hostIf, "type", "veth", "peer", "name", nsIf},
			[]string{"ip", "link", "set", nsIf, "netns", m.Netns},
			[]string{"ip", "link", "set", m.hostIf, "master", b.Name},
			[]string{"ip", "link", "set", m.hostIf, "up"},
			append(ex, "ip", "addr", "add", m.IP+"/24", "dev", nsIf),
			append(ex, "ip", "link", "set", nsIf, "up"),
			append(ex, "ip", "link", "set", "lo", "up"),
		)
	}
	for _, s := range steps {
		if out, err := runCmd(s[0], s[1:]...); err != nil {
			return nil, fmt.Errorf("%s: %v: %s", strings.Join(s, " "), err, out)
		}
	}
	// iptables must work inside a member namespace, or no fault can be
	// injected.
	if out, err := b.iptables(0, "-L", "INPUT", "-n"); err != nil {
		return nil, fmt.Errorf("%w: iptables in a namespace: %v: %s", ErrNetnsUnavailable, err, out)
	}
	// Delay's relays live in the test process: stop them before the
	// namespaces go.
	tb.Cleanup(func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		if err := b.undelay(); err != nil {
			tb.Logf("cleanup: %v", err)
		}
	})
	return b, nil
}

// IPs returns every member's address, in member order.
func (b *Bridge) IPs() []string {
	out := make([]string, len(b.Members))
	for i, m := range b.Members {
		out[i] = m.IP
	}
	return out
}

// Netns returns every member's namespace name, in member order.
func (b *Bridge) Netns() []string {
	out := make([]string, len(b.Members))
	for i, m := range b.Members {
		out[i] = m.Netns
	}
	return out
}

// iptables runs iptables (waiting for the xtables lock) in member i's
// namespace.
func (b *Bridge) iptables(i int, args ...string) (string, error) {
	return runCmd("ip", append([]string{"netns", "exec", b.Members[i].Netns, "iptables", "-w", "5"}, args...)...)
}

// CutOneWay drops every packet from member from to member to, at to: to
// no longer hears from; from still hears to. (For TCP this breaks
// connections both ways, since their handshakes need both directions; for
// gossip over UDP it is a true one-way loss.)
func (b *Bridge) CutOneWay(from, to int) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cuts[[2]int{from, to}] {
		return nil
	}
	if out, err := b.iptables(to, "-A", "INPUT", "-s", b.Members[from].IP, "-j", "DROP"); err != nil {
		return fmt.Errorf("cut %s -> %s: %v: %s", b.Members[from].IP, b.Members[to].IP, err, out)
	}
	b.cuts[[2]int{from, to}] = true
	return nil
}

// Cut drops all traffic between members a and b, both ways.
func (b *Bridge) Cut(x, y int) error {
	return errors.Join(b.CutOneWay(x, y), b.CutOneWay(y, x))
}

// Partition cuts every member of one group from every member of the
// others; members not named keep all their links. Clients in the root
// namespace still reach every member.
func (b *Bridge) Partition(groups ...[]int) error {
	var errs []error
	for gi, g := range groups {
		for _, h := range groups[gi+1:] {
			for _, x := range g {
				for _, y := range h {
					errs = append(errs, b.Cut(x, y))
				}
			}
		}
	}
	return errors.Join(errs...)
}

// Isolate cuts member i from every other member.
func (b *Bridge) Isolate(i int) error {
	var others []int
	for j := range b.Members {
		if j != i {
			others = append(others, j)
		}
	}
	return b.Partition([]int{i}, others)
}

// Heal removes every cut.
func (b *Bridge) Heal() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	var errs []error
	for i := range b.Members {
		if out, err := b.iptables(i, "-F", "INPUT"); err != nil {
			errs = append(errs, fmt.Errorf("heal %s: %v: %s", b.Members[i].Netns, err, out))
		}
	}
	b.cuts = map[[2]int]bool{}
	errs = append(errs, b.undelay())
	return errors.Join(errs...)
}

// CutPort drops the traffic between members x and y to or from port on
// either side (TCP and UDP), both ways: e.g. their gossip but not their
// Raft. Other ports keep working.
func (b *Bridge) CutPort(x, y, port int) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	var errs []error
	p := strconv.Itoa(port)
	for _, pair := range [][2]int{{x, y}, {y, x}} {
		from, to := pair[0], pair[1]
		for _, proto := range []string{"tcp", "udp"} {
			for _, dir := range []string{"--dport", "--sport"} {
				if out, err := b.iptables(to, "-A", "INPUT", "-s", b.Members[from].IP, "-p", proto, dir, p, "-j", "DROP"); err != nil {
					errs = append(errs, fmt.Errorf("cut port %s %s %s -> %s: %v: %s", proto, p, b.Members[from].IP, b.Members[to].IP, err, out))
				}
			}
		}
	}
	return errors.Join(errs...)
}

// Lossy drops each packet between members (not from the root namespace's
// clients) with probability p, at every receiving member: every link
// loses packets, both ways, independently. (iptables' statistic match:
// the kernel here may lack sch_netem, see README.)
func (b *Bridge) Lossy(p float64) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	var errs []error
	prob := strconv.FormatFloat(p, 'f', 3, 64)
	for to := range b.Members {
		for from := range b.Members {
			if from == to {
				continue
			}
			if out, err := b.iptables(to, "-A", "INPUT", "-s", b.Members[from].IP, "-m", "statistic", "--mode", "random", "--probability", prob, "-j", "DROP"); err != nil {
				errs = append(errs, fmt.Errorf("loss %s at %s: %v: %s", b.Members[from].IP, b.Members[to].IP, err, out))
			}
		}
	}
	return errors.Join(errs...)
}
