package runner

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/gossip"
	"github.com/hakuriver/hakuriver-ha/runner/executor"
	"github.com/hakuriver/hakuriver-ha/runner/resources"
)

// Agent is a running runner. Create it with Start, stop it with Close.
type Agent struct {
	cfg     Config
	log     *slog.Logger
	static  resources.Static
	sampler *resources.Sampler
	pool    *gossip.Pool
	ln      net.Listener
	srv     *http.Server
	url     string

	clientMu    sync.Mutex
	client      *api.Client
	clientHosts string
	// leader is the node ID of the Raft leader, as the last answer from a
	// replica named it: reports and heartbeats go to it first, so that they
	// cost no forward through a follower.
	leader atomic.Pointer[string]

	// acked is the last status the cluster acknowledged per task; only the
	// watch loop touches it.
	acked    map[int64]string
	notFound map[int64]time.Time // first 404 per task report; watch loop only
	// figuresRefused marks tasks whose report the cluster refused (400):
	// their end is reported again without figures; watch loop only.
	figuresRefused map[int64]bool
	// changed is when the watch loop first saw each unacknowledged
	// change. Watch loop only.
	changed map[int64]time.Time
	// noBatchUntil: the cluster refused /api/updates; until then the
	// watch loop reports one task at a time. Watch loop only.
	noBatchUntil time.Time
	registered   atomic.Bool
	kick         chan struct{}
	// lists keeps the executors' last listings (listings.go).
	lists listings
	// attempts is which attempt of each tracked task runs here.
	attempts *attemptBook
	// forgets is what forgetLoop tidies away after the cluster
	// acknowledged an end.
	forgets *forgets

	cancel context.CancelFunc
	wg     sync.WaitGroup
	closed atomic.Bool
}

// Start detects resources, starts gossip and the runner API, and begins
// registering and heartbeating in the background.
func Start(ctx context.Context, cfg Config) (*Agent, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("runner config: %w", err)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	a := &Agent{cfg: cfg, log: cfg.Logger.With("component", "runner", "runner", cfg.Name), kick: make(chan struct{}, 1)}
	if cfg.Token == "" {
		a.log.Warn("INSECURE: no cluster token (--insecure-no-token): anyone who reaches this runner's API can run commands " +
			"as its user; set cluster_token or cluster_token_file")
	}
	rc := resources.Config{SysRoot: cfg.SysRoot, ProcRoot: cfg.ProcRoot, NvidiaSMI: cfg.NvidiaSMI, Cores: cfg.Cores, MemoryBytes: cfg.MemoryBytes}
	static, err := resources.Detect(rc)
	if err != nil && !errors.Is(err, resources.ErrGPUQuery) {
		return nil, fmt.Errorf("detect resources: %w", err)
	}
	if err != nil {
		a.log.Warn("GPUs not detected; registering without them", "err", err)
	}
	a.static = static
	if a.sampler, err = resources.NewSampler(rc); err != nil {
		return nil, fmt.Errorf("start resource sampler: %w", err)
	}
	for _, d := range []string{cfg.LocalTempDir, filepath.Join(cfg.SharedDir, "task_outputs"), filepath.Join(cfg.SharedDir, "task_errors"), filepath.Join(cfg.SharedDir, "shared_data")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("create %s: %w", d, err)
		}
	}
	a.acked = map[int64]string{}
	a.notFound = map[int64]time.Time{}
	a.figuresRefused = map[int64]bool{}
	a.changed = map[int64]time.Time{}
	a.lists = listings{last: map[executor.Executor]listing{}, dirty: map[executor.Executor]bool{}}
	a.attempts = newAttemptBook(cfg.StateDir)
	a.forgets = newForgets()
	a.pruneFinished(time.Now())
	if a.ln, err = net.Listen("tcp", net.JoinHostPort(cfg.BindAddr, strconv.Itoa(cfg.Port))); err != nil {
		return nil, fmt.Errorf("listen for the runner API: %w", err)
	}
	adv := cfg.AdvertiseAddr
	if adv == "" {
		adv = cfg.BindAddr
	}
	scheme := "http://"
	if cfg.TLS != nil {
		a.ln = tls.NewListener(a.ln, cfg.TLS.Server())
		scheme = "https://"
	}
	a.url = scheme + net.JoinHostPort(adv, strconv.Itoa(a.ln.Addr().(*net.TCPAddr).Port))
	a.pool, err = gossip.New(gossip.Config{
		Name: "runner:" + cfg.Name, BindAddr: cfg.BindAddr, BindPort: cfg.GossipPort, AdvertiseAddr: cfg.AdvertiseAddr,
		Key: cfg.GossipKey, Join: cfg.Join, Fast: cfg.FastGossip, Logger: cfg.Logger.With("component", "gossip"),
		Meta: gossip.Meta{Role: gossip.RoleRunner, ID: cfg.Name, API: a.url, Version: cfg.Version},
	})
	if err != nil {
		a.ln.Close()
		return nil, err
	}
	a.srv = &http.Server{Handler: a.routes(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second,
		ErrorLog: slog.NewLogLogger(a.log.With("component", "http").Handler(), slog.LevelDebug)}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	a.cancel = cancel
	a.goRun(func() {
		if err := a.srv.Serve(a.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.log.Error("runner api stopped", "err", err)
		}
	})
	a.goRun(func() { a.pool.Run(runCtx) }) //nolint:errcheck // Run only returns nil
	a.goRun(func() { a.heartbeatLoop(runCtx) })
	a.goRun(func() { a.watchLoop(runCtx) })
	a.goRun(func() { a.forgetLoop(runCtx) })
	for _, ex := range a.executors() {
		if n, ok := ex.(exitNotifier); ok {
			a.goRun(func() { a.forwardExits(runCtx, ex, n) })
		}
	}
	if !cfg.NativeLimited {
		a.log.Warn("cgroups are not writable: native tasks run WITHOUT cpu/memory limits")
	}
	a.log.Info("runner started", "api", a.url, "gossip", a.pool.Addr(), "cores", static.TotalCores, "memory_bytes", static.MemoryTotalBytes, "gpus", len(static.GPUInfo))
	return a, nil
}

func (a *Agent) goRun(f func()) {
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		f()
	}()
}

// URL returns the runner API's advertised base URL.
func (a *Agent) URL() string { return a.url }

// GossipAddr returns the runner's gossip address.
func (a *Agent) GossipAddr() string { return a.pool.Addr() }

// Name returns the runner's node name.
func (a *Agent) Name() string { return a.cfg.Name }

// Registered reports whether the runner has registered with the cluster.
func (a *Agent) Registered() bool { return a.registered.Load() }

// Close stops the API, heartbeats and gossip. Running tasks keep running
// under their supervisors; a restarted runner finds them again.
func (a *Agent) Close(ctx context.Context) error {
	if a.closed.Swap(true) {
		return nil
	}
	var errs []error
	// Leave gossip first: the leader then knows the runner stops on
	// purpose (a restart) before its API stops answering.
	if err := a.pool.Close(); err != nil {
		errs = append(errs, err)
	}
	if err := a.srv.Shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("shutdown runner api: %w", err))
	}
	a.cancel()
	a.wg.Wait()
	return errors.Join(errs...)
}

// hostClient returns an API client over the host replicas gossip currently
// knows (plus configured ones), the leader first, rebuilt when that list
// changes.
func (a *Agent) hostClient() (*api.Client, error) {
	leader := ""
	if p := a.leader.Load(); p != nil {
		leader = *p
	}
	hosts := hostOrder(a.pool.Members(), leader, a.cfg.Hosts)
	if len(hosts) == 0 {
		return nil, errors.New("no host replica known yet (gossip has not found any)")
	}
	key := strings.Join(hosts, ",")
	a.clientMu.Lock()
	defer a.clientMu.Unlock()
	if a.client != nil && key == a.clientHosts {
		return a.client, nil
	}
	cc := api.DefaultClientConfig()
	cc.Hosts = hosts
	cc.Token = a.cfg.Token
	cc.Timeout = 15 * time.Second
	cc.RetryBudget = 5 * time.Second
	if a.cfg.TLS != nil {
		cc.TLS = a.cfg.TLS.Client()
	}
	c, err := api.NewClient(cc)
	if err != nil {
		return nil, fmt.Errorf("host client: %w", err)
	}
	if a.client != nil {
		a.client.Close()
	}
	a.client, a.clientHosts = c, key
	return c, nil
}

// hostOrder lists the API URLs of the host replicas among members, the
// leader's first and the others sorted, then the configured ones.
func hostOrder(members []gossip.Member, leader string, configured []string) []string {
	var first string
	var hosts []string
	for _, m := range members {
		if m.Meta.Role != gossip.RoleHost || m.Meta.API == "" {
			continue
		}
		if m.Name == leader && first == "" {
			first = m.Meta.API
			continue
		}
		hosts = append(hosts, m.Meta.API)
	}
	sort.Strings(hosts)
	if first != "" {
		hosts = append([]string{first}, hosts...)
	}
	return append(hosts, configured...)
}

// noteLeader records the leader an answer's header names.
func (a *Agent) noteLeader(h http.Header) {
	if id := h.Get(api.LeaderHeader); id != "" {
		if p := a.leader.Load(); p == nil || *p != id {
			a.leader.Store(&id)
		}
	}
}

// executorFor picks the executor of a task: Docker for tasks with an image
// when a Docker executor exists, native otherwise.
func (a *Agent) executorFor(image string) executor.Executor {
	if image != "" && a.cfg.Docker != nil {
		return a.cfg.Docker
	}
	return a.cfg.Native
}

// executors lists the distinct executors.
func (a *Agent) executors() []executor.Executor {
	if a.cfg.Docker != nil {
		return []executor.Executor{a.cfg.Native, a.cfg.Docker}
	}
	return []executor.Executor{a.cfg.Native}
}

// states lists every task any executor tracks, keyed by ID.
func (a *Agent) states(ctx context.Context) (map[int64]executor.State, map[int64]executor.Executor) {
	out, owner, _ := a.allStates(ctx)
	return out, owner
}

// allStates is states plus whether every executor answered; every
// executor is listed afresh.
func (a *Agent) allStates(ctx context.Context) (map[int64]executor.State, map[int64]executor.Executor, bool) {
	return a.collectStates(ctx, func(ex executor.Executor) ([]executor.State, error) { return a.listFresh(ctx, ex) })
}

// collectStates merges every executor's listing as listOf gives it.
func (a *Agent) collectStates(ctx context.Context, listOf func(executor.Executor) ([]executor.State, error)) (map[int64]executor.State, map[int64]executor.Executor, bool) {
	out := map[int64]executor.State{}
	owner := map[int64]executor.Executor{}
	complete := true
	for _, ex := range a.executors() {
		list, err := listOf(ex)
		if err != nil {
			if ctx.Err() == nil { // not the runner stopping
				a.log.Warn("list tasks", "err", err)
			}
			complete = false
			continue
		}
		for _, s := range list {
			out[s.TaskID] = s
			owner[s.TaskID] = ex
		}
	}
	return out, owner, complete
}

// exitNotifier is implemented by executors that can announce task ends as
// they happen, so the watch loop reports them at once instead of at its
// next poll.
type exitNotifier interface {
	Run(ctx context.Context) error
	Exits() <-chan int64
}

// forwardExits runs the executor's watcher and turns each end into a kick
// of the watch loop.
func (a *Agent) forwardExits(ctx context.Context, ex executor.Executor, n exitNotifier) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := n.Run(ctx); err != nil {
			a.log.Warn("executor watcher", "err", err)
		}
	}()
	exits := n.Exits()
	for {
		select {
		case <-ctx.Done():
			<-done
			return
		case _, ok := <-exits:
			if !ok {
				<-done
				return
			}
			a.kickFor(ex)
		}
	}
}
