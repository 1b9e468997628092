package gossip

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// Config configures a Pool.
type Config struct {
	// Name is the member's unique name (node ID or runner name).
	Name string
	// BindAddr and BindPort are where gossip listens (UDP and TCP). Port 0
	// picks a free port.
	BindAddr string
	BindPort int
	// AdvertiseAddr is the address other members use; empty means BindAddr.
	AdvertiseAddr string
	// Key encrypts gossip when set (16, 24 or 32 bytes).
	Key []byte
	// Meta is the initial metadata.
	Meta Meta
	// Join lists gossip addresses (ip:port) to join; it may contain the
	// member itself.
	Join []string
	// Logger receives memberlist's logs; nil discards them.
	Logger *slog.Logger
	// Fast shortens probe and gossip intervals (loopback and tests).
	Fast bool

	// transport, when set, wraps the network transport (tests cut links
	// with it); deadGossip, when set, replaces memberlist's
	// GossipToTheDeadTime (tests).
	transport  func(memberlist.Transport) memberlist.Transport
	deadGossip time.Duration
}

// Member is one alive or recently seen member of the pool.
type Member struct {
	Name  string
	Addr  string // gossip address ip:port
	Meta  Meta
	Alive bool
}

// Pool is a running memberlist pool. Its methods are safe for concurrent use.
type Pool struct {
	ml     *memberlist.Memberlist
	cfg    Config
	addr   string // advertised gossip address, fixed at creation
	closed atomic.Bool
	mu     sync.Mutex
	meta   []byte
	// current is meta decoded: what Close marks as leaving.
	current Meta
	log     *slog.Logger

	changedMu sync.Mutex
	changed   chan struct{}

	// members mirrors memberlist's view, copied inside its event callbacks:
	// memberlist.Members returns pointers it keeps mutating.
	membersMu sync.RWMutex
	members   map[string]Member
	// left holds the members that left on purpose (Close: a clean stop,
	// as in a rolling upgrade), by name, until a while after they are
	// back.
	left map[string]Departure
	// failed holds the members declared dead without leaving (a crash or
	// a partition), by name, until they are alive again or reconnectFor
	// has passed: reconnectLoop keeps joining them (see there).
	failed map[string]failure
}

// failure is a member declared dead, and since when.
type failure struct {
	addr string
	at   time.Time
}

type delegate struct{ p *Pool }

func (d delegate) NodeMeta(limit int) []byte {
	d.p.mu.Lock()
	defer d.p.mu.Unlock()
	return append([]byte(nil), d.p.meta...)
}
func (d delegate) NotifyMsg([]byte)                           {}
func (d delegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (d delegate) LocalState(join bool) []byte                { return nil }
func (d delegate) MergeRemoteState(buf []byte, join bool)     {}

type events struct{ p *Pool }

func (e events) NotifyJoin(n *memberlist.Node)   { e.p.track(n, true) }
func (e events) NotifyLeave(n *memberlist.Node)  { e.p.track(n, false) }
func (e events) NotifyUpdate(n *memberlist.Node) { e.p.track(n, true) }

// track records a copy of n; memberlist calls it with its lock held, so
// reading n here is safe.
func (p *Pool) track(n *memberlist.Node, alive bool) {
	m := Member{
		Name:  n.Name,
		Addr:  net.JoinHostPort(n.Addr.String(), strconv.Itoa(int(n.Port))),
		Alive: alive,
	}
	meta, err := DecodeMeta(n.Meta)
	p.membersMu.Lock()
	prev, had := p.members[n.Name]
	now := time.Now()
	for name, d := range p.left {
		if !d.BackAt.IsZero() && now.Sub(d.BackAt) > departureMemory {
			delete(p.left, name)
		}
	}
	if alive {
		delete(p.failed, n.Name)
	} else if n.Name != p.cfg.Name && !(had && prev.Meta.Leaving) {
		// Failed, or left without saying so first (memberlist's n.State is
		// not kept current for the events): joining a stopped member fails
		// fast and costs nothing.
		p.failed[n.Name] = failure{addr: m.Addr, at: now}
	}
	if err == nil && alive {
		m.Meta = meta
		p.members[n.Name] = m
		if d, ok := p.left[n.Name]; ok && d.BackAt.IsZero() {
			d.BackAt = now
			p.left[n.Name] = d
		}
	} else {
		delete(p.members, n.Name)
		// memberlist does not say whether a member left or failed: a
		// member leaving on purpose announces it first (Close).
		if !alive && had && prev.Meta.Leaving {
			p.left[n.Name] = Departure{Member: prev, LeftAt: now}
		} else {
			delete(p.left, n.Name)
		}
	}
	p.membersMu.Unlock()
	p.notify()
}

// New creates the pool and starts listening. It does not join anyone yet;
// call Run for that.
func New(cfg Config) (*Pool, error) {
	if cfg.Name == "" {
		return nil, errors.New("gossip: empty member name")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	meta, err := cfg.Meta.Encode()
	if err != nil {
		return nil, err
	}
	p := &Pool{cfg: cfg, meta: meta, current: cfg.Meta, log: log, changed: make(chan struct{}), members: map[string]Member{}, left: map[string]Departure{}, failed: map[string]failure{}}
	mc := memberlist.DefaultLANConfig()
	if cfg.Fast {
		mc = memberlist.DefaultLocalConfig()
		mc.ProbeInterval = 500 * time.Millisecond
		mc.ProbeTimeout = 250 * time.Millisecond
		mc.GossipInterval = 100 * time.Millisecond
		mc.PushPullInterval = 5 * time.Second
	}
	mc.Name = cfg.Name
	mc.BindAddr = cfg.BindAddr
	mc.BindPort = cfg.BindPort
	mc.AdvertisePort = cfg.BindPort
	if cfg.AdvertiseAddr != "" {
		mc.AdvertiseAddr = cfg.AdvertiseAddr
	}
	if len(cfg.Key) > 0 {
		mc.SecretKey = cfg.Key
	}
	mc.Delegate = delegate{p}
	mc.Events = events{p}
	mc.Logger = slog.NewLogLogger(log.Handler(), slog.LevelDebug)
	if cfg.deadGossip > 0 {
		mc.GossipToTheDeadTime = cfg.deadGossip
	}
	if cfg.transport != nil {
		nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{BindAddrs: []string{mc.BindAddr}, BindPort: mc.BindPort, Logger: mc.Logger})
		if err != nil {
			return nil, fmt.Errorf("start gossip on %s:%d: %w", cfg.BindAddr, cfg.BindPort, err)
		}
		mc.Transport = cfg.transport(nt)
	}
	ml, err := memberlist.Create(mc)
	if err != nil {
		return nil, fmt.Errorf("start gossip on %s:%d: %w", cfg.BindAddr, cfg.BindPort, err)
	}
	p.ml = ml
	adv := cfg.AdvertiseAddr
	if adv == "" {
		adv = cfg.BindAddr
	}
	p.addr = net.JoinHostPort(adv, strconv.Itoa(mc.AdvertisePort))
	return p, nil
}

func (p *Pool) notify() {
	p.changedMu.Lock()
	close(p.changed)
	p.changed = make(chan struct{})
	p.changedMu.Unlock()
}

// Changed returns a channel closed at the next membership or metadata change.
func (p *Pool) Changed() <-chan struct{} {
	p.changedMu.Lock()
	defer p.changedMu.Unlock()
	return p.changed
}

// Addr returns the pool's own advertised gossip address.
func (p *Pool) Addr() string { return p.addr }

// Run joins the configured addresses and keeps retrying while the member
// sees nobody else, and joins again the members declared dead
// (reconnectLoop), until ctx is done. It returns nil when ctx ends.
func (p *Pool) Run(ctx context.Context) error {
	done := make(chan struct{})
	defer func() { <-done }()
	go func() {
		defer close(done)
		p.reconnectLoop(ctx)
	}()
	if len(p.cfg.Join) == 0 {
		<-ctx.Done()
		return nil
	}
	backoff := 200 * time.Millisecond
	for {
		if p.ml.NumMembers() <= 1 {
			if err := p.join(p.cfg.Join); err != nil {
				p.log.Debug("gossip join", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		if backoff < 5*time.Second {
			backoff *= 2
		}
	}
}

// reconnectFor bounds how long reconnectLoop tries a dead member (one
// removed for good is not probed forever); reconnectEvery is the pause
// between two attempts at one member.
const (
	reconnectFor   = 24 * time.Hour
	reconnectEvery = time.Second
)

// reconnectLoop joins again, once a second, every member memberlist
// declared dead without leaving, until it is alive again. memberlist alone
// never does: after GossipToTheDeadTime (30 s on a LAN) it stops gossiping
// to the dead and pushes/pulls only with the alive, so the two sides of a
// partition that lasted longer never merge again. Then a replica found
// no leader API to forward to and the runners no replica on the other
// side, long after the network healed (found by the chaos tests: writes
// through the former minority never succeeded again after a 40 s
// partition). Each member has at most one attempt in flight, so an attempt
// hanging on a still-cut link (memberlist's TCP timeout) delays no other;
// attempts are not waited for when ctx ends (each ends by that timeout),
// so that a stop is not held up by a cut link.
func (p *Pool) reconnectLoop(ctx context.Context) {
	inFlight := map[string]bool{}
	var mu sync.Mutex
	tick := time.NewTicker(reconnectEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		now := time.Now()
		p.membersMu.Lock()
		var due []failure
		for name, f := range p.failed {
			if now.Sub(f.at) > reconnectFor {
				delete(p.failed, name)
				continue
			}
			due = append(due, f)
		}
		p.membersMu.Unlock()
		for _, f := range due {
			mu.Lock()
			busy := inFlight[f.addr]
			inFlight[f.addr] = true
			mu.Unlock()
			if busy {
				continue
			}
			go func() {
				if _, err := p.ml.Join([]string{f.addr}); err != nil {
					p.log.Debug("gossip: rejoin a dead member", "addr", f.addr, "err", err)
				}
				mu.Lock()
				delete(inFlight, f.addr)
				mu.Unlock()
			}()
		}
	}
}

// join tries every seed at once: a seed that accepts the connection and
// never answers (a frozen machine) holds its own attempt for memberlist's
// TCP timeout (10 s), not the join through the others. It returns when
// every attempt has ended, nil when one succeeded.
func (p *Pool) join(seeds []string) error {
	var wg sync.WaitGroup
	var mu sync.Mutex
	joined := 0
	var errs []error
	for _, seed := range seeds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, err := p.ml.Join([]string{seed})
			mu.Lock()
			defer mu.Unlock()
			joined += n
			if err != nil {
				errs = append(errs, err)
			}
		}()
	}
	wg.Wait()
	if joined > 0 {
		return nil
	}
	return errors.Join(errs...)
}

// Members returns the alive members, self included, sorted by name.
func (p *Pool) Members() []Member {
	p.membersMu.RLock()
	out := make([]Member, 0, len(p.members))
	for _, m := range p.members {
		out = append(out, m)
	}
	p.membersMu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Member returns the alive member with the given name.
func (p *Pool) Member(name string) (Member, bool) {
	p.membersMu.RLock()
	defer p.membersMu.RUnlock()
	m, ok := p.members[name]
	return m, ok
}

// departureMemory is how long a Departure is kept after the member came
// back.
const departureMemory = time.Minute

// Departure is a member that left the pool on purpose (its process
// stopped cleanly and said goodbye), as it was when it left.
type Departure struct {
	Member
	LeftAt time.Time
	// BackAt is when it joined again; zero while it is away.
	BackAt time.Time
}

// Departures returns the members that left on purpose and are still away
// or came back less than a minute ago, sorted by name; a member that
// failed (crashed, unreachable) is not among them.
func (p *Pool) Departures() []Departure {
	p.membersMu.RLock()
	out := make([]Departure, 0, len(p.left))
	for _, d := range p.left {
		out = append(out, d)
	}
	p.membersMu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Left returns the members that left on purpose and are still away,
// sorted by name.
func (p *Pool) Left() []Member {
	var out []Member
	for _, d := range p.Departures() {
		if d.BackAt.IsZero() {
			out = append(out, d.Member)
		}
	}
	return out
}

// UpdateMeta replaces the member's metadata and gossips it.
func (p *Pool) UpdateMeta(m Meta) error {
	return p.updateMeta(m, 2*time.Second)
}

// leaveNoticeWait bounds how long Close waits for its "leaving" update to
// be gossiped before it leaves: memberlist drops a node's queued update
// once its leave (dead) message is queued, so a leave sent too early hides
// that the stop was clean (the others then log Raft's complaints about it
// as errors). 2 s was too short on a loaded machine.
const leaveNoticeWait = 5 * time.Second

// updateMeta is UpdateMeta waiting up to wait for the update to be gossiped.
func (p *Pool) updateMeta(m Meta, wait time.Duration) error {
	b, err := m.Encode()
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.meta, p.current = b, m
	p.mu.Unlock()
	if err := p.ml.UpdateNode(wait); err != nil {
		return fmt.Errorf("gossip meta update: %w", err)
	}
	return nil
}

// Close leaves the pool (telling the others) and stops listening. Calling
// it again does nothing.
func (p *Pool) Close() error {
	if p.closed.Swap(true) {
		return nil
	}
	// First say that this is a clean stop (the update goes out before the
	// leave message), then leave.
	p.mu.Lock()
	leaving := p.current
	p.mu.Unlock()
	leaving.Leaving = true
	if err := p.updateMeta(leaving, leaveNoticeWait); err != nil {
		p.log.Debug("gossip leaving meta", "err", err)
	}
	if err := p.ml.Leave(time.Second); err != nil {
		p.log.Debug("gossip leave", "err", err)
	}
	if err := p.ml.Shutdown(); err != nil {
		return fmt.Errorf("gossip shutdown: %w", err)
	}
	return nil
}
