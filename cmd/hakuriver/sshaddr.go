package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
)

// findProxies asks the cluster where its SSH proxies are: GET /api/cluster
// of the first --host replica that answers, then proxyCandidates of its
// answer. A replica that answers but lists no proxy passes the question on
// to the next one.
func findProxies(ctx context.Context, g *clientFlags) ([]string, error) {
	hosts, err := api.ParseHosts(g.hostList()...)
	if err != nil {
		return nil, fmt.Errorf("invalid --host: %w", err)
	}
	ctx, cancel := g.call(ctx)
	defer cancel()
	var errs []error
	for _, h := range hosts {
		// One client per replica, so that the URL of the answer is known.
		one := *g
		one.hosts = []string{h}
		c, err := one.client()
		if err != nil {
			return nil, err
		}
		st, err := c.Cluster(ctx, false)
		c.Close()
		if err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("find the SSH proxy: %w", err)
			}
			errs = append(errs, fmt.Errorf("%s: %w", h, err))
			continue
		}
		if addrs := proxyCandidates(st, h); len(addrs) > 0 {
			return addrs, nil
		}
		errs = append(errs, fmt.Errorf("%s: replica %q lists no SSH proxy in GET /api/cluster", h, st.NodeID))
	}
	return nil, fmt.Errorf("find the SSH proxy: no replica named one (give --proxy-port PORT to use PORT on the --host replicas): %w",
		errors.Join(errs...))
}

// proxyCandidates lists the SSH proxy addresses of a GET /api/cluster
// answer in the order to try them: the answering replica's own first, then
// the others' in the order listed, without duplicates. apiURL is the URL the
// answer came from. An unspecified proxy host (0.0.0.0, ::, empty) becomes
// apiURL's host for the answering replica, and for another replica the host
// of its listed API URL when that is specified, else apiURL's host.
// Malformed addresses are skipped.
func proxyCandidates(st api.ClusterStatus, apiURL string) []string {
	used := urlHost(apiURL)
	var out []string
	seen := make(map[string]bool)
	add := func(r api.Replica, own bool) {
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
