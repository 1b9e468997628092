//go:build integration

package harness

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"
)

// Delay adds d of latency each way to every TCP connection between member
// m and the other members, opened either way (see delay.go): member m
// sends its connections to the others through a DelayRelay in its own
// namespace, every other member its connections to m through one in its
// namespace. Each chunk in each direction is held for d, so a round trip
// on such a link takes 2d more. Connections with the root namespace (the
// clients) and UDP (memberlist's gossip) are not slowed. The NAT rule
// only catches connections opened after it, so Delay then resets m's
// established TCP connections with the others (ss -K): they reconnect
// through the relays. Heal removes the rules, aborts the relayed
// connections (ss -K at the members' ends) and closes the relays: the
// members reconnect directly.
func (b *Bridge) Delay(m int, d time.Duration) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.relays == nil {
		b.relays = map[int]*DelayRelay{}
	}
	var errs []error
	for i := range b.Members {
		if i == m {
			continue
		}
		// i's connections to m, and m's to i.
		for _, pair := range [][2]int{{i, m}, {m, i}} {
			from, to := pair[0], pair[1]
			r := b.relays[from]
			if r == nil {
				var err error
				if r, err = StartDelayRelay(b.Members[from].Netns, d); err != nil {
					errs = append(errs, err)
					continue
				}
				b.relays[from] = r
			}
			if out, err := b.iptables(from, "-t", "nat", "-A", "OUTPUT", "-p", "tcp", "-d", b.Members[to].IP,
				"-m", "mark", "!", "--mark", strconv.Itoa(relayMark), "-j", "REDIRECT", "--to-ports", strconv.Itoa(r.Port())); err != nil {
				errs = append(errs, fmt.Errorf("delay %s -> %s: %v: %s", b.Members[from].IP, b.Members[to].IP, err, out))
				continue
			}
			b.delayed = append(b.delayed, pair)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	// Reset m's established connections with the others (not the relays'
	// own, which carry the mark), both ways: they reconnect through the
	// relays.
	for i := range b.Members {
		if i != m {
			errs = append(errs, b.reset(m, i))
		}
	}
	return errors.Join(errs...)
}

// reset aborts member from's TCP connections with member to (either way;
// not the relays' own, which carry the mark) with ss -K: their sockets
// fail at once and the other ends get a reset.
func (b *Bridge) reset(from, to int) error {
	filter := fmt.Sprintf("dst %s and fwmark != %#x", b.Members[to].IP, relayMark)
	if out, err := runCmd("ip", "netns", "exec", b.Members[from].Netns, "ss", "-K", "-t", "-n", filter); err != nil {
		return fmt.Errorf("reset connections %s -> %s: %v: %s", b.Members[from].IP, b.Members[to].IP, err, out)
	}
	return nil
}

// Relayed counts the connections the delay relays in force have forwarded.
func (b *Bridge) Relayed() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	var n int64
	for _, r := range b.relays {
		n += r.Relayed()
	}
	return n
}

// undelay removes Delay's NAT rules and closes its relays; b.mu held.
func (b *Bridge) undelay() error {
	var errs []error
	members := make([]int, 0, len(b.relays))
	for i := range b.relays {
		members = append(members, i)
	}
	slices.Sort(members)
	for _, i := range members {
		if out, err := b.iptables(i, "-t", "nat", "-F", "OUTPUT"); err != nil {
			errs = append(errs, fmt.Errorf("undelay %s: %v: %s", b.Members[i].Netns, err, out))
		}
	}
	// A relay's closing reaches the members' ends of its connections only
	// as a FIN or reset they notice when they next read or write (Raft's
	// pipeline only after its 10 s I/O timeout): abort those ends first.
	for _, p := range b.delayed {
		errs = append(errs, b.reset(p[0], p[1]))
	}
	b.delayed = nil
	for _, i := range members {
		errs = append(errs, b.relays[i].Close())
		delete(b.relays, i)
	}
	return errors.Join(errs...)
}
