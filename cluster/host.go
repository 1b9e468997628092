package cluster

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/cluster/auth"
	"github.com/hakuriver/hakuriver-ha/cluster/clock"
	"github.com/hakuriver/hakuriver-ha/fsm"
	"github.com/hakuriver/hakuriver-ha/gossip"
)

// Host is one running host replica. Create it with StartHost and stop it
// with Close. Its methods are safe for concurrent use.
type Host struct {
	cfg     Config
	log     *slog.Logger
	machine *fsm.Machine
	raft    *raftNode
	pool    *gossip.Pool
	ids     *idGenerator
	// clock is the wall clock this replica stamps times with (commands it
	// proposes as leader, token expiry, task IDs); see cluster/clock.
	clock   clock.Clock
	metrics *metrics
	// auth authenticates every API call (routes.go guard).
	auth *auth.Authenticator
	// statusWaiters counts the blocking status queries waiting
	// (appliedWatcher); stopping is closed when the API server shuts
	// down, which answers them.
	statusWaiters waiterBook
	stopping      chan struct{}

	apiLn   net.Listener
	httpSrv *http.Server
	apiURL  string
	fwd     *http.Client
	// fwdLimits bound a forward to the leader (forward.go).
	fwdLimits forwardLimits
	// sshProxy serves SSH tunnels to VPS tasks (sshproxy.go).
	sshProxy *sshProxy
	// sessions gathers the streams of forward sessions (sessions.go).
	sessions *sessionBook

	// lead is this replica's leader while it leads and its FSM has applied
	// everything committed before (Barrier); nil on a follower. Writes wait
	// for it (onLeader).
	lead atomic.Pointer[leader]
	// runners calls the runners (dispatch, kill, pause, resume); replicas
	// makes the internal calls to other replicas.
	runners  *api.RunnerClient
	replicas *api.ReplicaClient
	// levels caches what command types the replicas in gossip know.
	levels levelCache

	// feed is the dashboards' change feed (events.go).
	feed *changeFeed
	// disk refuses proposals while the data dir is almost full.
	disk *diskGuard
	// notifyClient POSTs webhook notifications (notifier.go).
	notifyClient *http.Client

	// life ends when the replica closes (the parent of its background
	// work that no request owns, such as recording exec sessions).
	life context.Context
	// sessionAudit records task access sessions in the audit log
	// (sessionaudit.go).
	sessionAudit sessionRecorder

	cancel context.CancelFunc
	wg     sync.WaitGroup
	closed atomic.Bool
}

// freePort returns a TCP port on addr that was free a moment ago.
func freePort(addr string) (int, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(addr, "0"))
	if err != nil {
		return 0, fmt.Errorf("find a free port on %s: %w", addr, err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// peerTransport returns the transport of a replica's calls to other
// replicas and to runners: with TLS it verifies them against the cluster CA
// and presents the replica's certificate.
func peerTransport(cfg Config) *http.Transport {
	tr := &http.Transport{MaxIdleConnsPerHost: 64, IdleConnTimeout: 30 * time.Second}
	if cfg.TLS != nil {
		tr.TLSClientConfig = cfg.TLS.Client()
		tr.TLSHandshakeTimeout = 10 * time.Second
	}
	return tr
}

// StartHost opens the replica's Raft state in cfg.DataDir, starts gossip,
// the REST API and the background loops, and returns once all listeners are
// bound. The cluster may not have a leader yet.
func StartHost(ctx context.Context, cfg Config) (_ *Host, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("host config: %w", err)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	log := cfg.Logger.With("component", "host", "node_id", cfg.NodeID)
	wall := clock.ForDataDir(cfg.DataDir, log)
	machine, err := openMachine(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			machine.Close() //nolint:errcheck // the start error is the one to report
		}
	}()
	h := &Host{
		cfg:       cfg,
		log:       log,
		machine:   machine,
		clock:     wall,
		ids:       newIDGenerator(cfg.NodeID, wall),
		fwdLimits: forwardLimits{total: forwardTimeout, idle: forwardIdle},
		sessions:  &sessionBook{m: map[sessionKey]*openSession{}},
		fwd: &http.Client{Timeout: forwardTimeout, Transport: peerTransport(cfg),
			// A forwarded request carries the caller's credentials: never
			// to another address than the leader's.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
	}
	h.machine.SetArchiveErrorHandler(func(err error) { h.log.Error("task archive", "err", err) })
	h.disk = newDiskGuard(cfg.DataDir, cfg.MinFreeDisk, h.log)
	h.notifyClient = newNotifyClient()
	h.auth = &auth.Authenticator{Accounts: h.machine, ClusterToken: cfg.ClusterToken, Now: wall,
		InsecureNoToken: cfg.InsecureNoToken, AnonymousRole: cfg.AnonymousRole}
	h.runners = api.NewRunnerClient(api.PeerConfig{Token: cfg.ClusterToken, Transport: peerTransport(cfg)})
	h.replicas = api.NewReplicaClient(api.PeerConfig{Token: cfg.ClusterToken, From: cfg.NodeID, Transport: h.fwd.Transport})
	if cfg.ClusterToken == "" {
		h.log.Warn("INSECURE: no cluster token (--insecure-no-token): anyone who reaches this replica can make internal calls, " +
			"register runners and change the Raft membership; set cluster_token or cluster_token_file")
	}
	if h.cfg.RaftPort == 0 {
		if h.cfg.RaftPort, err = freePort(cfg.BindAddr); err != nil {
			return nil, err
		}
	}
	h.apiLn, err = net.Listen("tcp", net.JoinHostPort(cfg.BindAddr, strconv.Itoa(cfg.APIPort)))
	if err != nil {
		return nil, fmt.Errorf("listen for the API: %w", err)
	}
	h.cfg.APIPort = h.apiLn.Addr().(*net.TCPAddr).Port
	scheme := "http://"
	if cfg.TLS != nil {
		// HTTPS only: a plain HTTP request gets Go's 400 "Client sent an
		// HTTP request to an HTTPS server" and nothing of the API.
		h.apiLn = tls.NewListener(h.apiLn, cfg.TLS.Server())
		scheme = "https://"
	}
	h.apiURL = scheme + net.JoinHostPort(h.cfg.advertise(), strconv.Itoa(h.cfg.APIPort))

	h.metrics = newMetrics(h) // its collectors read the replica at scrape time only
	stops := newCleanStops(h.log)
	if h.raft, err = openRaft(h.cfg, h.machine, h.halted, h.metrics.observeStore, stops); err != nil {
		h.apiLn.Close()
		return nil, err
	}
	h.pool, err = gossip.New(gossip.Config{
		Name:          cfg.NodeID,
		BindAddr:      cfg.BindAddr,
		BindPort:      cfg.GossipPort,
		AdvertiseAddr: cfg.AdvertiseAddr,
		Key:           cfg.GossipKey,
		Meta:          h.meta(),
		Join:          cfg.Join,
		Logger:        cfg.Logger.With("component", "gossip"),
		Fast:          cfg.FastGossip,
	})
	if err != nil {
		h.raft.close()
		h.apiLn.Close()
		return nil, err
	}
	stops.watch(h.pool)
	if h.sshProxy, err = h.listenSSHProxy(); err != nil {
		h.pool.Close()
		h.raft.close()
		h.apiLn.Close()
		return nil, err
	}
	if err := h.pool.UpdateMeta(h.meta()); err != nil { // now with the SSH proxy address
		h.log.Warn("publish gossip meta", "err", err)
	}
	h.feed = newChangeFeed(h)
	h.httpSrv = &http.Server{
		Handler:           h.routes(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		// TLS handshake failures (plain HTTP, a foreign CA) are debug noise.
		ErrorLog: slog.NewLogLogger(h.log.With("component", "http").Handler(), slog.LevelDebug),
	}
	h.httpSrv.RegisterOnShutdown(h.feed.stop)
	h.stopping = make(chan struct{})
	h.httpSrv.RegisterOnShutdown(sync.OnceFunc(func() { close(h.stopping) }))

	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	h.cancel = cancel
	h.life = runCtx
	h.goRun(func() {
		if err := h.httpSrv.Serve(h.apiLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			h.log.Error("api server stopped", "err", err)
		}
	})
	h.goRun(func() { h.pool.Run(runCtx) }) //nolint:errcheck // Run only returns nil
	h.goRun(func() { h.bootstrapLoop(runCtx) })
	h.goRun(func() { h.leadershipLoop(runCtx) })
	h.goRun(func() {
		newCommitNudger(h.raft, raft.ServerID(cfg.NodeID), h.log.With("component", "raft")).run(runCtx)
	})
	h.goRun(func() { h.backupLoop(runCtx) })
	h.goRun(func() { h.vpsIdleLoop(runCtx) })
	h.goRun(func() { h.disk.watch(runCtx, h.yieldForDisk) })
	h.sshProxy.serve(runCtx, h)
	h.log.Info("host replica started", "api", h.apiURL, "raft", h.raft.addr, "gossip", h.pool.Addr(), "ssh_proxy", h.SSHProxyAddr(), "existing_state", h.raft.hadState)
	return h, nil
}

func (h *Host) goRun(f func()) {
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		f()
	}()
}

func (h *Host) meta() gossip.Meta {
	return gossip.Meta{
		Role:         gossip.RoleHost,
		ID:           h.cfg.NodeID,
		API:          h.apiURL,
		Raft:         net.JoinHostPort(h.cfg.advertise(), strconv.Itoa(h.cfg.RaftPort)),
		Bootstrapped: h.raft != nil && (h.raft.hadState || h.raft.r.Leader() != ""),
		SSHProxy:     h.sshProxyMeta(),
		Version:      h.cfg.Version,
		MaxCommand:   uint8(fsm.MaxKnownCommand),
	}
}

func (h *Host) sshProxyMeta() string {
	if h.sshProxy == nil {
		return ""
	}
	return h.SSHProxyAddr()
}

// NodeID returns the replica's Raft server ID.
func (h *Host) NodeID() string { return h.cfg.NodeID }

// APIURL returns the replica's advertised API base URL.
func (h *Host) APIURL() string { return h.apiURL }

// RaftAddr returns the replica's Raft transport address.
func (h *Host) RaftAddr() string { return h.raft.addr }

// GossipAddr returns the replica's gossip address.
func (h *Host) GossipAddr() string { return h.pool.Addr() }

// Machine returns the replica's local state machine (read-only use).
func (h *Host) Machine() *fsm.Machine { return h.machine }

// Close stops the API, leaves gossip and shuts Raft down. It waits for
// every background goroutine.
func (h *Host) Close(ctx context.Context) error {
	if h.closed.Swap(true) {
		return nil
	}
	var errs []error
	if err := h.httpSrv.Shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("shutdown api: %w", err))
	}
	h.cancel()
	if err := h.sshProxy.close(); err != nil {
		errs = append(errs, fmt.Errorf("close ssh proxy: %w", err))
	}
	if err := h.pool.Close(); err != nil {
		errs = append(errs, err)
	}
	if err := h.raft.close(); err != nil {
		errs = append(errs, err)
	}
	h.wg.Wait()
	if err := h.machine.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close the task archive: %w", err))
	}
	return errors.Join(errs...)
}
