package doctor

import (
	"context"
	"fmt"
	"net"
	"os"
	"sort"
	"strings"
	"time"
)

// localIPs returns this machine's interface addresses.
func (l Local) localIPs() ([]net.IP, error) {
	addrs, err := l.interfaceAddrs()
	if err != nil {
		return nil, err
	}
	var out []net.IP
	for _, a := range addrs {
		switch v := a.(type) {
		case *net.IPNet:
			out = append(out, v.IP)
		case *net.IPAddr:
			out = append(out, v.IP)
		default:
			if ip := net.ParseIP(strings.Split(a.String(), "/")[0]); ip != nil {
				out = append(out, ip)
			}
		}
	}
	return out, nil
}

// isLocal reports whether ip is one of own. Any loopback address counts when
// the machine has a loopback interface (Linux routes all of 127/8 to lo).
func isLocal(ip net.IP, own []net.IP) bool {
	for _, o := range own {
		if o.Equal(ip) || (ip.IsLoopback() && o.IsLoopback() && (ip.To4() != nil) == (o.To4() != nil)) {
			return true
		}
	}
	return false
}

func ipStrings(ips []net.IP) string {
	s := make([]string, len(ips))
	for i, ip := range ips {
		s[i] = ip.String()
	}
	return strings.Join(s, ", ")
}

// checkAdvertise checks that the advertised address is one of this machine's
// own: other members would otherwise reach another machine, or nothing. It
// resolves a name but never connects anywhere.
func (l Local) checkAdvertise(ctx context.Context) Check {
	const name = "advertise address"
	adv := l.AdvertiseAddr
	if adv == "" {
		return failCheck(name, "empty", "no advertised address: set network.host_reachable_address (hosts) or network.runner_address (runners)")
	}
	var ips []net.IP
	if ip := net.ParseIP(adv); ip != nil {
		if ip.IsUnspecified() {
			return failCheck(name, adv, "the wildcard address is not reachable by others: advertise one of this machine's real addresses")
		}
		ips = []net.IP{ip}
	} else {
		addrs, err := l.lookupHost(ctx, adv)
		if err != nil {
			what, cause := Classify(err)
			return failCheck(name, fmt.Sprintf("%s: %s (%v)", adv, what, err), cause)
		}
		for _, a := range addrs {
			if ip := net.ParseIP(a); ip != nil {
				ips = append(ips, ip)
			}
		}
	}
	own, err := l.localIPs()
	if err != nil {
		return warnCheck(name, err.Error(), "cannot list this machine's addresses; check with ip addr")
	}
	for _, ip := range ips {
		if isLocal(ip, own) {
			return okCheck(name, fmt.Sprintf("%s is on this machine", adv))
		}
	}
	shown := adv
	if net.ParseIP(adv) == nil {
		shown = fmt.Sprintf("%s (%s)", adv, ipStrings(ips))
	}
	return warnCheck(name, fmt.Sprintf("%s is not an address of this machine (it has %s)", shown, ipStrings(own)),
		"other members will reach another machine or nothing: advertise one of this machine's addresses (behind NAT, forward the ports explicitly)")
}

// checkBind checks that a specific bind address is on this machine. It
// returns false when there is nothing to check (wildcard or empty).
func (l Local) checkBind() (Check, bool) {
	const name = "bind address"
	ip := net.ParseIP(l.BindAddr)
	if l.BindAddr == "" || (ip != nil && ip.IsUnspecified()) {
		return Check{}, false
	}
	if ip == nil {
		return warnCheck(name, l.BindAddr, "bind to an IP address, not a name: a name may resolve to an address this machine does not have"), true
	}
	own, err := l.localIPs()
	if err != nil {
		return warnCheck(name, err.Error(), "cannot list this machine's addresses; check with ip addr"), true
	}
	if !isLocal(ip, own) {
		return failCheck(name, fmt.Sprintf("%s is not an address of this machine (it has %s)", l.BindAddr, ipStrings(own)),
			"the process cannot listen there: bind to one of this machine's addresses or 0.0.0.0"), true
	}
	return okCheck(name, l.BindAddr+" is on this machine"), true
}

// checkHostnames resolves this machine's hostname and every configured name.
func (l Local) checkHostnames(ctx context.Context) []Check {
	names := map[string]bool{}
	var list []string
	self, _ := os.Hostname() //nolint:errcheck // an unknown hostname is simply not checked
	for _, n := range append([]string{self}, l.Hostnames...) {
		if n == "" || net.ParseIP(n) != nil || names[n] {
			continue
		}
		names[n] = true
		list = append(list, n)
	}
	var out []Check
	for _, n := range list {
		start := time.Now()
		addrs, err := l.lookupHost(ctx, n)
		check := "resolve " + n
		if err != nil {
			what, cause := Classify(err)
			if n == self {
				// The hostname is the default node name; others need it
				// only when it is advertised.
				out = append(out, warnCheck(check, fmt.Sprintf("%s (%v)", what, err),
					"this machine's hostname does not resolve here: add it to /etc/hosts (sudo and some tools expect it)"))
				continue
			}
			out = append(out, failCheck(check, fmt.Sprintf("%s (%v)", what, err), cause))
			continue
		}
		sort.Strings(addrs)
		out = append(out, okCheck(check, fmt.Sprintf("%s in %s", strings.Join(addrs, ", "), fmtDur(time.Since(start)))))
	}
	return out
}
