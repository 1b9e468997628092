package doctor

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
)

// Kind says how a Target is probed.
type Kind string

// Probe kinds.
const (
	// KindHTTP resolves, connects and sends GET Address with the token.
	KindHTTP Kind = "http"
	// KindTCP resolves and connects.
	KindTCP Kind = "tcp"
	// KindUDPGossip sends one datagram and listens for an ICMP
	// port-unreachable; silence is the best UDP can prove.
	KindUDPGossip Kind = "udp-gossip"
)

// Valid reports whether k is a known kind.
func (k Kind) Valid() bool { return k == KindHTTP || k == KindTCP || k == KindUDPGossip }

// Target is one path to test from the side that opens it.
type Target struct {
	// Name labels the check ("runner api r1", "raft h2").
	Name string `json:"name"`
	Kind Kind   `json:"kind"`
	// Address is "host:port" for tcp and udp-gossip, an absolute http(s)
	// URL for http.
	Address string `json:"address"`
	// Token is sent in api.TokenHeader on http probes. It never leaves the
	// process: a member probes with its own token, so a 401 means its token
	// differs from the target's.
	Token string `json:"-"`
	// TLS verifies an https target (nil: the system roots). Like Token, it
	// never leaves the process: a member probes with its own CA.
	TLS *tls.Config `json:"-"`
}

// WithTLS returns targets with cfg as the TLS config of those that have
// none (cfg nil: targets unchanged).
func WithTLS(targets []Target, cfg *tls.Config) []Target {
	if cfg == nil {
		return targets
	}
	out := make([]Target, len(targets))
	for i, t := range targets {
		if t.TLS == nil {
			t.TLS = cfg
		}
		out[i] = t
	}
	return out
}

// udpListen bounds how long a udp-gossip probe waits for an ICMP error.
const udpListen = 300 * time.Millisecond

// maxParallelProbes bounds how many probes ProbeAll runs at once.
const maxParallelProbes = 32

// Cause texts of the classified network failures, in our own words after the
// troubleshooting guide.
const (
	causeDNS       = "name does not resolve here: fix DNS or /etc/hosts on this node, or advertise an IP address"
	causeRefused   = "refused: nothing listening or a REJECT rule (process down, wrong port or bind address, or a firewall rejecting it)"
	causeTimeout   = "timeout: a DROP rule or routing (a firewall silently dropping the traffic, no route between the nodes, or a hung process)"
	causeNoRoute   = "no route to host: check routing and interfaces, or a REJECT rule answering host-unreachable"
	causeReset     = "connection reset or closed without an answer: the process crashed or is not HTTP, or a firewall resets it"
	causeToken     = "cluster token mismatch: set the same cluster_token (or cluster_token_file) on every host and runner"
	causeNotLocal  = "address not available: the bind address is not one of this machine's"
	causeOtherDial = "unexpected network error: see the measured error"
)

// Classify names the failure in err in a few words ("refused", "timeout",
// "name does not resolve", ...) and gives its likely cause and fix.
func Classify(err error) (what, cause string) {
	var dnsErr *net.DNSError
	var netErr net.Error
	switch {
	case errors.As(err, &dnsErr) && !dnsErr.IsTimeout:
		return "name does not resolve", causeDNS
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused", causeRefused
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded),
		errors.As(err, &netErr) && netErr.Timeout():
		return "timeout", causeTimeout
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return "no route to host", causeNoRoute
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE), errors.Is(err, io.EOF),
		errors.Is(err, io.ErrUnexpectedEOF):
		return "connection reset", causeReset
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return "address not available", causeNotLocal
	}
	return "error", causeOtherDial
}

// classified turns err into a failed check named name.
func classified(name, prefix string, err error) Check {
	what, cause := Classify(err)
	return failCheck(name, fmt.Sprintf("%s%s (%v)", prefix, what, err), cause)
}

// Probe tests one path: DNS (when Address holds a name), TCP connect time and,
// for http, the HTTP status, bounded by ctx. It never returns an error: every
// failure is a failed Check that names what went wrong (refused, timeout,
// token mismatch, name does not resolve). Safe for concurrent use.
func Probe(ctx context.Context, t Target) Check {
	c, _, _ := probe(ctx, t)
	return c
}

// ProbeAll runs Probe on every target in parallel, each bounded by timeout
// (and ctx), and returns the checks in target order plus every name it
// resolved. Targets of kind http without a Token get token.
func ProbeAll(ctx context.Context, targets []Target, timeout time.Duration, token string) ([]Check, map[string][]string) {
	checks := make([]Check, len(targets))
	resolved := map[string][]string{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, maxParallelProbes)
	for i, t := range targets {
		if t.Token == "" {
			t.Token = token
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			pctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			c, name, addrs := probe(pctx, t)
			checks[i] = c
			if name != "" {
				mu.Lock()
				resolved[name] = addrs
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return checks, resolved
}

// probe is Probe that also returns the host name it resolved and its
// addresses ("" when Address held an IP).
func probe(ctx context.Context, t Target) (Check, string, []string) {
	name := "probe " + t.Name
	host, port, u, err := splitTarget(t)
	if err != nil {
		return failCheck(name, err.Error(), "bad target address: a configuration or API error"), "", nil
	}
	var parts []string
	ip, resolvedName, addrs := host, "", []string(nil)
	if net.ParseIP(host) == nil {
		start := time.Now()
		var r net.Resolver
		addrs, err = r.LookupHost(ctx, host)
		if err != nil {
			return classified(name, "dns "+host+": ", err), host, nil
		}
		sort.Strings(addrs)
		ip, resolvedName = addrs[0], host
		parts = append(parts, fmt.Sprintf("dns %s %s→%s", fmtDur(time.Since(start)), host, strings.Join(addrs, ",")))
	}
	addr := net.JoinHostPort(ip, port)
	if t.Kind == KindUDPGossip {
		return probeUDP(ctx, name, addr, parts), resolvedName, addrs
	}
	var d net.Dialer
	start := time.Now()
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return classified(name, prefix(parts)+"connect "+addr+": ", err), resolvedName, addrs
	}
	parts = append(parts, fmt.Sprintf("connect %s %s", addr, fmtDur(time.Since(start))))
	if t.Kind == KindTCP {
		conn.Close()
		return okCheck(name, strings.Join(parts, ", ")), resolvedName, addrs
	}
	return probeHTTP(ctx, name, conn, u, t.Token, t.TLS, parts), resolvedName, addrs
}

// splitTarget validates t and returns its host and port (and URL for http).
func splitTarget(t Target) (host, port string, u *url.URL, err error) {
	switch t.Kind {
	case KindHTTP:
		u, err = url.Parse(t.Address)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return "", "", nil, fmt.Errorf("target %q: want an absolute http(s) URL", t.Address)
		}
		host, port = u.Hostname(), u.Port()
		if port == "" {
			port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
		}
		return host, port, u, nil
	case KindTCP, KindUDPGossip:
		host, port, err = net.SplitHostPort(t.Address)
		if err != nil || host == "" || port == "" {
			return "", "", nil, fmt.Errorf("target %q: want host:port", t.Address)
		}
		return host, port, nil, nil
	}
	return "", "", nil, fmt.Errorf("target %q: unknown kind %q (want http, tcp or udp-gossip)", t.Address, t.Kind)
}

// probeHTTP sends GET u over the already connected conn.
func probeHTTP(ctx context.Context, name string, conn net.Conn, u *url.URL, token string, tlsConfig *tls.Config, parts []string) Check {
	var used atomic.Bool
	tr := &http.Transport{
		DialContext: func(context.Context, string, string) (net.Conn, error) {
			if !used.CompareAndSwap(false, true) {
				return nil, errors.New("probe connection already used")
			}
			return conn, nil
		},
		DisableKeepAlives: true,
		TLSClientConfig:   tlsConfig,
	}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		conn.Close()
		return failCheck(name, err.Error(), "bad target URL: a configuration or API error")
	}
	if token != "" {
		req.Header.Set(api.TokenHeader, token)
	}
	req.Header.Set("User-Agent", "hakuriver-doctor")
	start := time.Now()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		if used.CompareAndSwap(false, true) {
			conn.Close()
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		c := classified(name, prefix(parts)+"HTTP: ", err)
		if what, _ := Classify(err); what == "timeout" {
			c.Cause = "timeout: connected but no HTTP answer in time: the process is hung or overloaded, or a DROP rule or middlebox discards the traffic"
		}
		return c
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20)) //nolint:errcheck // only the status matters
	resp.Body.Close()
	parts = append(parts, fmt.Sprintf("HTTP %d %s", resp.StatusCode, fmtDur(time.Since(start))))
	m := strings.Join(parts, ", ")
	switch s := resp.StatusCode; {
	case s >= 200 && s < 300:
		return okCheck(name, m)
	case s == http.StatusUnauthorized || s == http.StatusForbidden:
		return failCheck(name, m, causeToken)
	case s == http.StatusNotFound:
		return failCheck(name, m, "not found: another program (or an older hakuriver) listens on that port")
	case s == http.StatusServiceUnavailable:
		return warnCheck(name, m, "unavailable: the member answers but is not ready (no Raft leader yet?)")
	case s >= 500:
		return failCheck(name, m, "server error: the member answers but is unhealthy; read its log")
	}
	return warnCheck(name, m, "unexpected HTTP status: another program may listen on that port")
}

// probeUDP sends one datagram on a connected UDP socket and waits briefly
// for the ICMP port-unreachable that a closed port answers with.
func probeUDP(ctx context.Context, name, addr string, parts []string) Check {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "udp", addr)
	if err != nil {
		return classified(name, prefix(parts)+"udp "+addr+": ", err)
	}
	defer conn.Close()
	deadline := time.Now().Add(udpListen)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	conn.SetDeadline(deadline) //nolint:errcheck // a UDP socket always takes a deadline
	// One byte that memberlist drops as an unknown message type.
	if _, err := conn.Write([]byte{0xff}); err != nil {
		return classified(name, prefix(parts)+"udp "+addr+": ", err)
	}
	buf := make([]byte, 64)
	_, err = conn.Read(buf)
	switch {
	case err == nil:
		return okCheck(name, prefix(parts)+"udp "+addr+": answered")
	case errors.Is(err, syscall.ECONNREFUSED):
		return failCheck(name, prefix(parts)+"udp "+addr+": ICMP port unreachable (refused)",
			"refused: nothing listens for gossip on that UDP port (process down, wrong gossip_port) or a REJECT rule")
	case errors.Is(err, os.ErrDeadlineExceeded):
		return okCheck(name, prefix(parts)+"udp "+addr+": sent, no port-unreachable (UDP cannot prove more)")
	}
	return classified(name, prefix(parts)+"udp "+addr+": ", err)
}

func prefix(parts []string) string {
	if len(parts) == 0 {
		return ""
	}
	return strings.Join(parts, ", ") + ", "
}

// fmtDur renders a duration compactly: "0.25ms", "12ms", "1.5s".
func fmtDur(d time.Duration) string {
	switch {
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
	case d < time.Second:
		return fmt.Sprintf("%dms", d.Milliseconds())
	}
	return fmt.Sprintf("%.1fs", d.Seconds())
}
