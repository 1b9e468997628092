package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/fsm"
	"github.com/hakuriver/hakuriver-ha/sshproxy"
)

// leaderLookupTimeout bounds the SSH proxy's fallback to the leader, so
// that an answer from local state still fits in the proxy's lookup time.
const leaderLookupTimeout = 3 * time.Second

// sshProxy is a replica's SSH proxy: the line protocol on SSHProxyPort
// (which also recognises SSH clients and serves them as the jump host) and,
// when SSHJumpPort is set, a port that serves only the jump host. Its host
// key lives in the data directory and is generated on first start.
type sshProxy struct {
	srv    *sshproxy.Server
	lineLn net.Listener
	jumpLn net.Listener // nil without SSHJumpPort
}

// listenSSHProxy loads the host key and binds the SSH proxy's listeners,
// recording the bound ports in h.cfg. Nothing is served until serve.
func (h *Host) listenSSHProxy() (*sshProxy, error) {
	key, err := sshproxy.LoadOrCreateHostKey(filepath.Join(h.cfg.DataDir, sshproxy.HostKeyFile))
	if err != nil {
		return nil, fmt.Errorf("ssh proxy: %w", err)
	}
	srv, err := sshproxy.New(sshproxy.Config{
		Resolver:  sshResolver{h: h},
		HostKey:   key,
		AdminKeys: h.cfg.SSHAdminKeys,
		Logger:    h.cfg.Logger.With("component", "sshproxy", "node_id", h.cfg.NodeID),
	})
	if err != nil {
		return nil, err
	}
	p := &sshProxy{srv: srv}
	if p.lineLn, err = net.Listen("tcp", net.JoinHostPort(h.cfg.BindAddr, strconv.Itoa(h.cfg.SSHProxyPort))); err != nil {
		return nil, fmt.Errorf("listen for the ssh proxy: %w", err)
	}
	h.cfg.SSHProxyPort = p.lineLn.Addr().(*net.TCPAddr).Port
	if h.cfg.SSHJumpPort > 0 {
		if p.jumpLn, err = net.Listen("tcp", net.JoinHostPort(h.cfg.BindAddr, strconv.Itoa(h.cfg.SSHJumpPort))); err != nil {
			p.lineLn.Close()
			return nil, fmt.Errorf("listen for the ssh jump host: %w", err)
		}
	}
	return p, nil
}

// serve runs the listeners in goroutines owned by h until close.
func (p *sshProxy) serve(ctx context.Context, h *Host) {
	run := func(serve func(context.Context, net.Listener) error, ln net.Listener) {
		h.goRun(func() {
			if err := serve(ctx, ln); err != nil && !errors.Is(err, sshproxy.ErrServerClosed) {
				h.log.Error("ssh proxy stopped", "addr", ln.Addr().String(), "err", err)
			}
		})
	}
	run(p.srv.Serve, p.lineLn)
	if p.jumpLn != nil {
		run(p.srv.ServeJump, p.jumpLn)
	}
}

// close stops the proxy, ending every tunnel through this replica, and
// waits for its connections' goroutines.
func (p *sshProxy) close() error {
	err := p.srv.Close()
	p.lineLn.Close() // in case serve never ran
	if p.jumpLn != nil {
		p.jumpLn.Close()
	}
	return err
}

// SSHProxyAddr returns the advertised "host:port" of the replica's SSH
// proxy (line protocol, and the jump host for SSH clients).
func (h *Host) SSHProxyAddr() string {
	return net.JoinHostPort(h.cfg.advertise(), strconv.Itoa(h.cfg.SSHProxyPort))
}

// SSHJumpAddr returns the advertised "host:port" of the dedicated jump-host
// port, or "" when SSHJumpPort is not set.
func (h *Host) SSHJumpAddr() string {
	if h.sshProxy == nil || h.sshProxy.jumpLn == nil {
		return ""
	}
	return net.JoinHostPort(h.cfg.advertise(), strconv.Itoa(h.sshProxy.jumpLn.Addr().(*net.TCPAddr).Port))
}

// sshResolver implements sshproxy.Resolver over the replica's state.
type sshResolver struct{ h *Host }

// Lookup answers from the local state machine when it holds a usable VPS
// target: a tunnel then needs no leader, and keeps working while there is
// none. When the task is unknown here, or not (yet) usable (this replica
// may lag behind the leader), it asks the leader through the replica's own
// API with ?consistent=1; if that fails, the local view is the answer.
func (r sshResolver) Lookup(ctx context.Context, id int64) (sshproxy.Target, error) {
	h := r.h
	var local sshproxy.Target
	if t, ok := h.machine.Task(id); ok {
		local.Task = t
		if n, ok := h.machine.Node(t.AssignedNode); ok && t.AssignedNode != "" {
			local.Node = n
		}
		if _, err := local.Address(); err == nil {
			return local, nil
		}
	}
	rctx, cancel := context.WithTimeout(ctx, leaderLookupTimeout)
	defer cancel()
	remote, err := h.leaderSSHTarget(rctx, id)
	switch {
	case err == nil:
		return remote, nil
	case local.Task != nil:
		h.log.Debug("ssh proxy: leader lookup failed, using local state", "task_id", id, "err", err)
		return local, nil
	}
	return sshproxy.Target{}, err
}

// leaderSSHTarget fetches task id, and its node when this replica does not
// know it online, through the local API, which forwards to the leader.
func (h *Host) leaderSSHTarget(ctx context.Context, id int64) (sshproxy.Target, error) {
	var t fsm.Task
	if err := h.getLocalAPI(ctx, "/api/status/"+strconv.FormatInt(id, 10)+"?consistent=1", &t); err != nil {
		return sshproxy.Target{}, err
	}
	target := sshproxy.Target{Task: &t}
	if t.AssignedNode == "" {
		return target, nil
	}
	if n, ok := h.machine.Node(t.AssignedNode); ok && n.Status == fsm.NodeOnline {
		target.Node = n
		return target, nil
	}
	var nodes []api.NodeView
	if err := h.getLocalAPI(ctx, "/api/nodes", &nodes); err != nil {
		return sshproxy.Target{}, err
	}
	for i := range nodes {
		if nodes[i].Hostname == t.AssignedNode {
			n := nodes[i].Node
			target.Node = &n
		}
	}
	return target, nil
}

// getLocalAPI GETs path from this replica's API and decodes the JSON
// answer into out. A 404 wraps sshproxy.ErrTaskNotFound.
func (h *Host) getLocalAPI(ctx context.Context, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.apiURL+path, nil)
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	if h.cfg.ClusterToken != "" {
		req.Header.Set(api.TokenHeader, h.cfg.ClusterToken)
	}
	resp, err := h.fwd.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotFound:
		io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16)) //nolint:errcheck // draining only
		return fmt.Errorf("GET %s: %w", path, sshproxy.ErrTaskNotFound)
	case resp.StatusCode != http.StatusOK:
		io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16)) //nolint:errcheck // draining only
		return fmt.Errorf("GET %s: HTTP %d", path, resp.StatusCode)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(out); err != nil {
		return fmt.Errorf("GET %s: decode: %w", path, err)
	}
	return nil
}
