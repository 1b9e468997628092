package api

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
)

// ErrNoSSHProxy means that no replica asked named an SSH proxy, or none
// answered.
var ErrNoSSHProxy = errors.New("no replica named an SSH proxy")

// SSHProxies lists the SSH proxy addresses of st in the order to try them:
// the answering replica's own first, then the others' in the order listed,
// without duplicates. apiURL is the URL st came from. An unspecified proxy
// host (0.0.0.0, ::, empty) becomes apiURL's host for the answering
// replica, and for another replica the host of its listed API URL when that
// is specified, else apiURL's host. Malformed addresses are skipped.
func (st ClusterStatus) SSHProxies(apiURL string) []string {
	used := urlHost(apiURL)
	var out []string
	seen := make(map[string]bool)
	add := func(r Replica, own bool) {
		host, port, err := net.SplitHostPort(r.SSHProxy)
		if err != nil {
			return
		}
		if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
			return
		}
		if unspecified(host) {
			host = used
			if h := urlHost(r.API); !own && !unspecified(h) {
				host = h
			}
		}
		a := net.JoinHostPort(host, port)
		if !seen[a] {
			seen[a] = true
			out = append(out, a)
		}
	}
	for _, r := range st.Replicas {
		if r.ID == st.NodeID {
			add(r, true)
		}
	}
	for _, r := range st.Replicas {
		if r.ID != st.NodeID {
			add(r, false)
		}
	}
	return out
}

// SSHProxyAddrs maps replicas' API base URLs to their SSH proxies'
// addresses when every proxy listens on port: the same host, port, without
// duplicates.
func SSHProxyAddrs(hosts []string, port int) ([]string, error) {
	urls, err := ParseHosts(hosts...)
	if err != nil {
		return nil, err
	}
	var out []string
	seen := make(map[string]bool)
	for _, h := range urls {
		u, err := url.Parse(h)
		if err != nil {
			return nil, fmt.Errorf("host %q: %w", h, err)
		}
		a := net.JoinHostPort(u.Hostname(), strconv.Itoa(port))
		if !seen[a] {
			seen[a] = true
			out = append(out, a)
		}
	}
	return out, nil
}

// FindSSHProxies asks the replicas of cfg.Hosts in turn where the cluster's
// SSH proxies are (GET /api/cluster, one client per replica so that the URL
// of the answer is known) and returns the SSHProxies of the first answer
// that lists any. A replica that answers but lists none passes the question
// on. The end of ctx stops it with the call's error; when no replica named
// a proxy, the error matches ErrNoSSHProxy and joins each replica's reason.
func FindSSHProxies(ctx context.Context, cfg ClientConfig) ([]string, error) {
	hosts, err := ParseHosts(cfg.Hosts...)
	if err != nil {
		return nil, err
	}
	var errs []error
	for _, h := range hosts {
		one := cfg
		one.Hosts = []string{h}
		c, err := NewClient(one)
		if err != nil {
			return nil, err
		}
		st, err := c.Cluster(ctx, false)
		c.Close()
		if err != nil {
			if ctx.Err() != nil {
				return nil, err
			}
			errs = append(errs, fmt.Errorf("%s: %w", h, err))
			continue
		}
		if addrs := st.SSHProxies(h); len(addrs) > 0 {
			return addrs, nil
		}
		errs = append(errs, fmt.Errorf("%s: replica %q lists no SSH proxy in GET /api/cluster", h, st.NodeID))
	}
	return nil, fmt.Errorf("%w: %w", ErrNoSSHProxy, errors.Join(errs...))
}

// urlHost returns the host name of a base URL, or "".
func urlHost(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return ""
	}
	return u.Hostname()
}

// unspecified reports whether host names no particular machine.
func unspecified(host string) bool {
	if host == "" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsUnspecified()
}
