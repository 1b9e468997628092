package cluster

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/cluster/auth"
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
	// since is when srv was made: its activity counts start then.
	since time.Time
}

// listenSSHProxy loads the host key and binds the SSH proxy's listeners,
// recording the bound ports in h.cfg. Nothing is served until serve.
func (h *Host) listenSSHProxy() (*sshProxy, error) {
	key, err := sshproxy.LoadOrCreateHostKey(filepath.Join(h.cfg.DataDir, sshproxy.HostKeyFile))
	if err != nil {
		return nil, fmt.Errorf("ssh proxy: %w", err)
	}
	var lineTLS *tls.Config
	if h.cfg.TLS != nil {
		lineTLS = h.cfg.TLS.Server()
	}
	srv, err := sshproxy.New(sshproxy.Config{
		Resolver:  sshResolver{h: h},
		Accounts:  &sshAccounts{h: h},
		HostKey:   key,
		AdminKeys: h.cfg.SSHAdminKeys,
		TLS:       lineTLS,
		Logger:    h.cfg.Logger.With("component", "sshproxy", "node_id", h.cfg.NodeID),
	})
	if err != nil {
		return nil, err
	}
	p := &sshProxy{srv: srv, since: time.Now().UTC()}
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
// may lag behind the leader), it asks for the leader's view
// (leaderSSHTarget); if that fails, the local view is the answer.
func (r sshResolver) Lookup(ctx context.Context, id int64) (sshproxy.Target, error) {
	h := r.h
	if local, ok := h.localSSHTarget(id); ok {
		if _, err := local.Address(); err == nil {
			return local, nil
		}
	}
	rctx, cancel := context.WithTimeout(ctx, leaderLookupTimeout)
	defer cancel()
	remote, err := h.leaderSSHTarget(rctx, id)
	if err == nil {
		return remote, nil
	}
	if local, ok := h.localSSHTarget(id); ok {
		h.log.Debug("ssh proxy: leader lookup failed, using local state", "task_id", id, "err", err)
		return local, nil
	}
	return sshproxy.Target{}, err
}

// localSSHTarget reads task id and its assigned node from this replica's
// state machine; ok is false when the task is unknown here.
func (h *Host) localSSHTarget(id int64) (target sshproxy.Target, ok bool) {
	t, ok := h.machine.Task(id)
	if !ok {
		return sshproxy.Target{}, false
	}
	target.Task = t
	if n, ok := h.machine.Node(t.AssignedNode); ok && t.AssignedNode != "" {
		target.Node = n
	}
	return target, true
}

// leaderSSHTarget returns task id and its node as the leader knows them
// after a Barrier (a consistent read). On the leader it reads its own state
// machine in process; a follower asks the leader (its local state may lag
// behind). While no leader is known, or the one known does not answer or
// no longer leads, it tries again until ctx ends, as a write waits for a
// leader. An unknown task wraps sshproxy.ErrTaskNotFound.
func (h *Host) leaderSSHTarget(ctx context.Context, id int64) (sshproxy.Target, error) {
	err := ErrNoLeader
	for {
		if h.IsLeader() {
			return h.leaderLocalSSHTarget(ctx, id)
		}
		if lid, base := h.leaderInfo(); lid != "" && lid != h.cfg.NodeID && base != "" {
			var target sshproxy.Target
			target, err = h.remoteSSHTarget(ctx, base, id)
			var ae *api.APIError
			if err == nil || errors.Is(err, sshproxy.ErrTaskNotFound) ||
				errors.As(err, &ae) && ae.StatusCode != http.StatusServiceUnavailable {
				return target, err
			}
		}
		select {
		case <-ctx.Done():
			return sshproxy.Target{}, fmt.Errorf("ask the leader for task %d: %w (last: %w)", id, ctx.Err(), err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// leaderLocalSSHTarget is leaderSSHTarget on the leader: a Barrier, bounded
// by ctx and LeaderWait, then the local state machine.
func (h *Host) leaderLocalSSHTarget(ctx context.Context, id int64) (sshproxy.Target, error) {
	wait := h.cfg.LeaderWait
	if d, ok := ctx.Deadline(); ok {
		wait = min(wait, time.Until(d))
	}
	if err := h.raft.r.Barrier(wait).Error(); err != nil {
		return sshproxy.Target{}, fmt.Errorf("barrier before reading task %d: %w", id, ErrNotLeader)
	}
	target, ok := h.localSSHTarget(id)
	if !ok {
		return sshproxy.Target{}, fmt.Errorf("task %d: %w", id, sshproxy.ErrTaskNotFound)
	}
	return target, nil
}

// remoteSSHTarget fetches task id from the leader at base, and its node
// when this replica does not know it online.
func (h *Host) remoteSSHTarget(ctx context.Context, base string, id int64) (sshproxy.Target, error) {
	t, err := h.replicas.Task(ctx, base, id)
	var ae *api.APIError
	if errors.As(err, &ae) && ae.StatusCode == http.StatusNotFound {
		return sshproxy.Target{}, fmt.Errorf("task %d on the leader: %w", id, sshproxy.ErrTaskNotFound)
	}
	if err != nil {
		return sshproxy.Target{}, fmt.Errorf("task %d on the leader: %w", id, err)
	}
	target := sshproxy.Target{Task: &t}
	if t.AssignedNode == "" {
		return target, nil
	}
	if n, ok := h.machine.Node(t.AssignedNode); ok && n.Status == fsm.NodeOnline {
		target.Node = n
		return target, nil
	}
	nodes, err := h.replicas.Nodes(ctx, base)
	if err != nil {
		return sshproxy.Target{}, fmt.Errorf("nodes on the leader: %w", err)
	}
	for i := range nodes {
		if nodes[i].Hostname == t.AssignedNode {
			n := nodes[i].Node
			target.Node = &n
		}
	}
	return target, nil
}

// sshAccounts implements sshproxy.Accounts over the replica's state
// machine: what this replica has applied is what the proxy goes by, so a
// token or key works, and stops working, as soon as the change is applied
// here.
type sshAccounts struct {
	h *Host

	// mu guards the key index, rebuilt when the state machine has applied
	// anything since it was built.
	mu      sync.Mutex
	built   bool
	applied uint64                       // AppliedIndex the index reflects
	byKey   map[string][]sshproxy.Caller // public key (wire format) -> accounts
	parsed  map[string]string            // authorized_keys line -> wire format ("" = unparsable)
}

var _ sshproxy.Accounts = (*sshAccounts)(nil)

// TokenCaller looks the token up by the hash of its secret in this
// replica's state. A token unknown here may be one this replica has not
// applied yet (just created, or the replica just restarted and has not
// heard from a leader): then the leader's answer counts (leaderWhoAmI),
// waiting for a leader within ctx and leaderLookupTimeout, as task lookups
// do. Whatever cannot be confirmed is refused.
func (a *sshAccounts) TokenCaller(ctx context.Context, secret string) (sshproxy.Caller, bool) {
	tok, u, ok := a.h.machine.TokenByHash(auth.Hash(secret))
	if ok {
		if tok.Expired(a.h.clock()) {
			return sshproxy.Caller{}, false
		}
		return sshproxy.Caller{Name: u.Name, Role: u.Role}, true
	}
	if !auth.LooksLikeSecret(secret) {
		return sshproxy.Caller{}, false // not a token: nothing to ask the leader
	}
	ctx, cancel := context.WithTimeout(ctx, leaderLookupTimeout)
	defer cancel()
	c, err := a.h.leaderWhoAmI(ctx, secret)
	if err != nil {
		a.h.log.Debug("ssh proxy: token unknown here and not confirmed by the leader", "err", err)
		return sshproxy.Caller{}, false
	}
	return c, true
}

// errTokenRefused is the leader's 401 for a token.
var errTokenRefused = errors.New("the leader refused the token")

// leaderWhoAmI asks the leader who holds API token secret (GET
// /api/auth/whoami with the token, as its holder would). On the leader
// itself the local state is the answer. While no other leader is known, or
// the one known does not answer, it tries again until ctx ends. A refused
// token is errTokenRefused at once.
func (h *Host) leaderWhoAmI(ctx context.Context, secret string) (sshproxy.Caller, error) {
	err := ErrNoLeader
	for {
		if h.IsLeader() {
			return h.leaderLocalCaller(ctx, secret)
		}
		if lid, base := h.leaderInfo(); lid != "" && lid != h.cfg.NodeID && base != "" {
			var c sshproxy.Caller
			if c, err = h.whoAmI(ctx, base, secret); err == nil || errors.Is(err, errTokenRefused) {
				return c, err
			}
		}
		select {
		case <-ctx.Done():
			return sshproxy.Caller{}, fmt.Errorf("ask the leader about a token: %w (last: %w)", ctx.Err(), err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// leaderLocalCaller is leaderWhoAmI on the leader: once the leader is
// ready (a replica just elected may not have applied every committed entry
// yet, the token's among them), the local state.
func (h *Host) leaderLocalCaller(ctx context.Context, secret string) (sshproxy.Caller, error) {
	if !h.waitLeaderReady(ctx) {
		return sshproxy.Caller{}, fmt.Errorf("check a token: %w", ErrNotLeader)
	}
	tok, u, ok := h.machine.TokenByHash(auth.Hash(secret))
	if !ok || tok.Expired(h.clock()) {
		return sshproxy.Caller{}, errTokenRefused
	}
	return sshproxy.Caller{Name: u.Name, Role: u.Role}, nil
}

// waitLeaderReady waits, bounded by ctx and LeaderWait, while this replica
// leads but is not ready yet (its term's first Barrier, after which its
// state holds every committed entry, has not completed), and reports
// whether it is a ready leader. It adds no log entry.
func (h *Host) waitLeaderReady(ctx context.Context) bool {
	deadline := time.Now().Add(h.cfg.LeaderWait)
	for h.IsLeader() {
		if h.lead.Load() != nil {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(20 * time.Millisecond):
		}
	}
	return false
}

// whoAmI asks the replica at base who holds token secret.
func (h *Host) whoAmI(ctx context.Context, base, secret string) (sshproxy.Caller, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/auth/whoami", nil)
	if err != nil {
		return sshproxy.Caller{}, fmt.Errorf("build whoami request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+secret)
	resp, err := h.fwd.Do(req)
	if err != nil {
		return sshproxy.Caller{}, fmt.Errorf("whoami on %s: %w", base, err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusUnauthorized:
		return sshproxy.Caller{}, errTokenRefused
	case resp.StatusCode != http.StatusOK:
		return sshproxy.Caller{}, fmt.Errorf("whoami on %s: status %d", base, resp.StatusCode)
	}
	var w api.WhoAmI
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&w); err != nil {
		return sshproxy.Caller{}, fmt.Errorf("whoami on %s: decode: %w", base, err)
	}
	if w.Anonymous || w.User == "" || !w.Role.Valid() {
		return sshproxy.Caller{}, errTokenRefused
	}
	return sshproxy.Caller{Name: w.User, Role: w.Role}, nil
}

// KeyCallers returns the accounts whose ssh_keys hold key (any
// authorized_keys options are ignored: the key alone identifies).
func (a *sshAccounts) KeyCallers(key ssh.PublicKey) []sshproxy.Caller {
	a.mu.Lock()
	defer a.mu.Unlock()
	// Read the index before the users: a state newer than the index it is
	// filed under is only rebuilt once more, an older one never served.
	if idx := a.h.machine.AppliedIndex(); !a.built || idx != a.applied {
		a.rebuild(idx)
	}
	return a.byKey[string(key.Marshal())]
}

// rebuild indexes every account's keys, parsing only lines not seen at the
// previous build. a.mu is held.
func (a *sshAccounts) rebuild(idx uint64) {
	byKey := map[string][]sshproxy.Caller{}
	parsed := map[string]string{}
	for _, u := range a.h.machine.Users() {
		for _, line := range u.SSHKeys {
			wire, seen := a.parsed[line]
			if !seen {
				if k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line)); err == nil {
					wire = string(k.Marshal())
				}
			}
			parsed[line] = wire
			if wire != "" {
				byKey[wire] = append(byKey[wire], sshproxy.Caller{Name: u.Name, Role: u.Role})
			}
		}
	}
	a.byKey, a.parsed, a.applied, a.built = byKey, parsed, idx, true
}

// Anonymous is a caller without credentials, with the configured
// anonymous role; its work is recorded under auth.AnonymousName.
func (a *sshAccounts) Anonymous() sshproxy.Caller {
	return sshproxy.Caller{Name: auth.AnonymousName, Role: a.h.cfg.AnonymousRole, Anonymous: true}
}
