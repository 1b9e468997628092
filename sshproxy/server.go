// Package sshproxy is the SSH proxy every host replica runs. It reaches a
// VPS task's sshd, published on a port of its runner, by task ID in two
// ways:
//
//   - the original HakuRiver line protocol: the client sends
//     "REQUEST_TUNNEL <task_id> <api_token>\n", the proxy answers
//     "SUCCESS\n" and then relays raw bytes both ways, or answers
//     "ERROR <reason>\n" and closes. The original's request without a
//     token is an anonymous caller's, served only as far as the configured
//     anonymous role allows;
//   - an SSH jump host built on golang.org/x/crypto/ssh, so that stock
//     OpenSSH works with "ssh -J proxy@HOST:PORT root@<task_id>". The
//     client's key decides who it is: an admin key, or a key registered on
//     an account (or, when the anonymous role allows, the key the VPS was
//     created with). It serves nothing but direct-tcpip channels.
//
// Either way a caller reaches a VPS only when it is theirs or they are an
// operator or admin (Caller.MayReach); accounts come from Config.Accounts.
//
// Serve recognises both on one port (an SSH client's first bytes are
// "SSH-"); ServeJump serves only SSH on a dedicated port. The package
// declares its own Resolver; the host implements it over its state machine.
package sshproxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/hakuriver/hakuriver-ha/fsm"
)

// Defaults for the zero fields of Config.
const (
	DefaultRequestTimeout   = 10 * time.Second
	DefaultMaxRequestLine   = 1024
	DefaultLookupTimeout    = 5 * time.Second
	DefaultDialTimeout      = 15 * time.Second
	DefaultHandshakeTimeout = 30 * time.Second
)

// requestPrefix starts every line-protocol request.
const requestPrefix = "REQUEST_TUNNEL "

// maxTokenLen bounds the API token of a request line.
const maxTokenLen = 256

// Refusal reasons of the line protocol that concern the caller. They never
// say whether a token, or its user, exists.
const (
	reasonBadToken      = "Authentication failed: unknown, revoked or expired API token."
	reasonTokenRequired = "Authentication required: send an API token (hakuriver ssh sends the one of --token, HAKURIVER_TOKEN or hakuriver auth login)."
)

// Config configures a Server. Resolver and Accounts are required.
type Config struct {
	// Resolver looks tasks up.
	Resolver Resolver
	// Accounts authenticates callers: API tokens on the line protocol,
	// registered public keys on the jump host, and the anonymous role.
	Accounts Accounts
	// HostKey is the jump host's key (see LoadOrCreateHostKey); nil
	// disables the jump host: ServeJump fails and SSH clients reaching
	// Serve are closed.
	HostKey ssh.Signer
	// TLS, when set, makes the line protocol TLS only: a connection that
	// does not start an SSH session (the jump host, which SSH encrypts
	// itself) must start a TLS handshake with this server config, and its
	// request and tunnel then run inside TLS; a plain request is refused.
	TLS *tls.Config
	// AdminKeys are public keys in authorized_keys format whose holders may
	// reach every VPS through the jump host.
	AdminKeys []string
	// RequestTimeout bounds the wait for the request line.
	RequestTimeout time.Duration
	// MaxRequestLine bounds the request line's length, newline included.
	MaxRequestLine int
	// LookupTimeout bounds one Resolver call.
	LookupTimeout time.Duration
	// DialTimeout bounds connecting to the VPS's published port.
	DialTimeout time.Duration
	// HandshakeTimeout bounds the jump host's SSH handshake and
	// authentication.
	HandshakeTimeout time.Duration
	// Dial connects to a VPS; nil uses a net.Dialer.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Logger receives connection and tunnel logs; nil discards them.
	Logger *slog.Logger
}

// Stats are a Server's connection counters since New.
type Stats struct {
	// Accepted counts accepted connections, Active those still open.
	Accepted, Active int64
	// Tunnels counts tunnels opened to a VPS (either mode), Refused
	// refused requests (ERROR lines and rejected channels).
	Tunnels, Refused int64
	// ActiveTunnels counts the tunnels open now (a jump-host connection
	// may carry several).
	ActiveTunnels int64
	// BytesToVPS and BytesFromVPS count the bytes relayed through tunnels,
	// updated as they flow.
	BytesToVPS, BytesFromVPS int64
}

// Server is an SSH proxy. Create it with New, run it with Serve and/or
// ServeJump (several listeners may share one Server) and stop it with
// Close. Its methods are safe for concurrent use.
type Server struct {
	cfg    Config
	log    *slog.Logger
	admin  []ssh.PublicKey
	sshCfg *ssh.ServerConfig

	// ctx is cancelled by Close; lookups and dials in flight use it.
	ctx    context.Context
	cancel context.CancelFunc

	mu        sync.Mutex
	closed    bool
	listeners map[net.Listener]struct{}
	conns     *connSet
	wg        sync.WaitGroup

	accepted, active, tunnels, refused atomic.Int64
	activeTunnels, toVPS, fromVPS      atomic.Int64

	// act counts open tunnels per VPS (activity.go).
	act *activity
}

// New validates cfg, fills in defaults and returns a Server that serves
// nothing yet.
func New(cfg Config) (*Server, error) {
	if cfg.Resolver == nil {
		return nil, errors.New("sshproxy: config: a Resolver is required")
	}
	if cfg.Accounts == nil {
		return nil, errors.New("sshproxy: config: Accounts are required")
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = DefaultRequestTimeout
	}
	if cfg.MaxRequestLine <= 0 {
		cfg.MaxRequestLine = DefaultMaxRequestLine
	}
	if cfg.LookupTimeout <= 0 {
		cfg.LookupTimeout = DefaultLookupTimeout
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = DefaultDialTimeout
	}
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if cfg.Dial == nil {
		cfg.Dial = (&net.Dialer{}).DialContext
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		cfg:       cfg,
		log:       cfg.Logger,
		listeners: make(map[net.Listener]struct{}),
		conns:     newConnSet(),
		act:       newActivity(),
	}
	for i, line := range cfg.AdminKeys {
		if strings.TrimSpace(line) == "" {
			continue
		}
		k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line))
		if err != nil {
			return nil, fmt.Errorf("sshproxy: config: admin key %d: %w", i+1, err)
		}
		s.admin = append(s.admin, k)
	}
	if cfg.HostKey != nil {
		s.sshCfg = s.newSSHConfig()
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s, nil
}

// Stats returns the connection counters.
func (s *Server) Stats() Stats {
	return Stats{Accepted: s.accepted.Load(), Active: s.active.Load(), Tunnels: s.tunnels.Load(), Refused: s.refused.Load(),
		ActiveTunnels: s.activeTunnels.Load(), BytesToVPS: s.toVPS.Load(), BytesFromVPS: s.fromVPS.Load()}
}

// relayTunnel relays an opened tunnel between the client side (written to
// client, read from clientR) and the VPS until both directions end,
// counting it as active meanwhile and its bytes as they flow.
func (s *Server) relayTunnel(id int64, client writeCloser, clientR io.Reader, up net.Conn) (sent, received int64) {
	s.tunnels.Add(1)
	s.activeTunnels.Add(1)
	defer s.activeTunnels.Add(-1)
	s.act.begin(id)
	defer s.act.end(id)
	return relay(client, up, clientR, up, &s.toVPS, &s.fromVPS, nil)
}

// Serve accepts connections on ln and serves the line protocol on them; a
// connection whose first bytes are "SSH-" is served by the jump host
// instead (when HostKey is set). It blocks until Close is called or ctx is
// cancelled, which closes the whole Server as Close does, and then returns
// ErrServerClosed; another accept error is returned as is. Serve closes ln.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	return s.serve(ctx, ln, s.handleLine)
}

// ServeJump is Serve for a port that serves only the SSH jump host. It
// fails at once when the Server has no HostKey.
func (s *Server) ServeJump(ctx context.Context, ln net.Listener) error {
	if s.sshCfg == nil {
		ln.Close()
		return errors.New("sshproxy: jump host disabled: no host key configured")
	}
	return s.serve(ctx, ln, s.handleSSH)
}

// Close stops every listener, closes every client and VPS connection and
// waits for all of the Server's goroutines. It is idempotent.
func (s *Server) Close() error {
	s.shutdown()
	s.wg.Wait()
	return nil
}

// shutdown closes the listeners and connections without waiting.
func (s *Server) shutdown() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	lns := make([]net.Listener, 0, len(s.listeners))
	for ln := range s.listeners {
		lns = append(lns, ln)
	}
	s.mu.Unlock()
	s.cancel()
	for _, ln := range lns {
		ln.Close()
	}
	s.conns.closeAll()
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// serve is the accept loop shared by Serve and ServeJump.
func (s *Server) serve(ctx context.Context, ln net.Listener, handle func(net.Conn)) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		ln.Close()
		return ErrServerClosed
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
		ln.Close()
	}()
	stop := context.AfterFunc(ctx, s.shutdown)
	defer stop()
	s.log.Info("ssh proxy listening", "addr", ln.Addr().String())

	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if s.isClosed() {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.log.Warn("ssh proxy accept", "err", err, "retry_in", backoff)
				select {
				case <-time.After(backoff):
				case <-s.ctx.Done():
				}
				continue
			}
			return fmt.Errorf("sshproxy: accept on %s: %w", ln.Addr(), err)
		}
		backoff = 0
		if !s.startConn(c, handle) {
			c.Close()
			return ErrServerClosed
		}
	}
}

// startConn runs handle(c) in a goroutine the Server owns, unless the
// Server is closed.
func (s *Server) startConn(c net.Conn, handle func(net.Conn)) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.conns.add(c)
	s.accepted.Add(1)
	s.active.Add(1)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer s.active.Add(-1)
		defer s.conns.remove(c)
		defer c.Close()
		handle(c)
	}()
	return true
}

// handleLine serves one line-protocol connection.
func (s *Server) handleLine(c net.Conn) {
	start := time.Now()
	remote := c.RemoteAddr().String()
	c.SetReadDeadline(start.Add(s.cfg.RequestTimeout)) //nolint:errcheck // a failed deadline shows up as a read error
	br := bufio.NewReaderSize(c, max(s.cfg.MaxRequestLine, 64))
	if s.cfg.TLS != nil && !s.isSSH(br) {
		var ok bool
		if c, br, ok = s.startTLS(c, br, remote); !ok {
			return
		}
	}
	if s.isSSH(br) {
		c.SetReadDeadline(time.Time{}) //nolint:errcheck // see above
		s.handleSSH(&bufferedConn{Conn: c, r: br})
		return
	}
	id, token, terr := readRequest(br, s.cfg.MaxRequestLine)
	if terr != nil {
		s.refuseLine(c, remote, 0, terr)
		return
	}
	c.SetReadDeadline(time.Time{}) //nolint:errcheck // see above
	// Authenticate before looking the task up, so that a caller without
	// valid credentials learns nothing about tasks.
	caller, terr := s.lineCaller(token)
	if terr != nil {
		s.refuseLine(c, remote, id, terr)
		return
	}
	t, terr := s.resolve(id)
	if terr != nil {
		s.refuseLine(c, remote, id, terr)
		return
	}
	if !caller.MayReach(t.Task) {
		s.refuseLine(c, remote, id, refuse(ErrForbidden, fmt.Errorf("caller %s, owner %q", caller, t.Task.Owner),
			"Permission denied: VPS task %d is not yours (only its owner or an operator may reach it).", id))
		return
	}
	up, terr := s.dial(t)
	if terr != nil {
		s.refuseLine(c, remote, id, terr)
		return
	}
	if !s.conns.add(up) {
		up.Close()
		return
	}
	defer s.conns.remove(up)
	c.SetWriteDeadline(time.Now().Add(s.cfg.RequestTimeout)) //nolint:errcheck // see above
	if _, err := io.WriteString(c, "SUCCESS\n"); err != nil {
		up.Close()
		s.log.Debug("ssh proxy: client went away", "remote", remote, "task_id", id, "err", err)
		return
	}
	c.SetWriteDeadline(time.Time{}) //nolint:errcheck // see above
	s.log.Info("ssh tunnel opened", "mode", "line", "remote", remote, "user", caller.String(), "task_id", id, "vps", up.RemoteAddr().String(),
		"setup", time.Since(start), "active", s.active.Load())
	sent, received := s.relayTunnel(id, c, &bufferedConn{Conn: c, r: br}, up)
	s.log.Info("ssh tunnel closed", "mode", "line", "remote", remote, "task_id", id,
		"bytes_to_vps", sent, "bytes_from_vps", received, "duration", time.Since(start))
}

// isSSH reports whether the connection starts with an SSH identification
// string and the jump host is enabled. It only peeks.
func (s *Server) isSSH(br *bufio.Reader) bool {
	if s.sshCfg == nil {
		return false
	}
	if b, err := br.Peek(1); err != nil || b[0] != 'S' {
		return false
	}
	b, err := br.Peek(4)
	return err == nil && string(b) == "SSH-"
}

// readRequest reads and parses "REQUEST_TUNNEL <id>[ <token>]\n", reading
// at most limit bytes. token is "" when the request carries none (the
// original's format).
func readRequest(br *bufio.Reader, limit int) (id int64, token string, terr *TunnelError) {
	var line []byte
	for {
		frag, err := br.ReadSlice('\n')
		line = append(line, frag...)
		if len(line) > limit {
			return 0, "", refuse(ErrBadRequest, fmt.Errorf("request line longer than %d bytes", limit), "Invalid request format.")
		}
		if err == nil {
			break
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return 0, "", refuse(ErrBadRequest, err, "Timeout waiting for request.")
		}
		return 0, "", refuse(ErrBadRequest, err, "Error processing request.")
	}
	text := strings.TrimSuffix(string(line), "\n")
	rest, ok := strings.CutPrefix(text, requestPrefix)
	if !ok {
		return 0, "", refuse(ErrBadRequest, nil, "Invalid request format.")
	}
	idText, token, _ := strings.Cut(strings.TrimSpace(rest), " ")
	id, ok = ParseTaskID(idText)
	if !ok {
		return 0, "", refuse(ErrBadRequest, nil, "Invalid task ID format.")
	}
	token = strings.TrimSpace(token)
	if !validToken(token) {
		return 0, "", refuse(ErrBadRequest, errors.New("malformed token"), "Invalid request format.")
	}
	return id, token, nil
}

// validToken reports whether token ("" for none) is one word of printable
// ASCII of a sane length. Its value is checked by Accounts.
func validToken(token string) bool {
	if len(token) > maxTokenLen {
		return false
	}
	for i := 0; i < len(token); i++ {
		if token[i] <= ' ' || token[i] > '~' {
			return false
		}
	}
	return true
}

// lineCaller authenticates a line-protocol request by its token: an
// account, or the anonymous caller when it carries none and the anonymous
// role lets anonymous callers reach anything.
func (s *Server) lineCaller(token string) (Caller, *TunnelError) {
	if token == "" {
		anon := s.cfg.Accounts.Anonymous()
		if !anon.Role.AtLeast(fsm.RoleUser) {
			return Caller{}, refuse(ErrUnauthenticated, errors.New("no token, and the anonymous role reaches no VPS"), reasonTokenRequired)
		}
		return anon, nil
	}
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.LookupTimeout)
	defer cancel()
	c, ok := s.cfg.Accounts.TokenCaller(ctx, token)
	if !ok {
		return Caller{}, refuse(ErrUnauthenticated, nil, reasonBadToken)
	}
	return c, nil
}

// refuseLine answers "ERROR <reason>\n" and closes the connection gently,
// so that the answer is not lost to a reset when the client sent more than
// was read.
func (s *Server) refuseLine(c net.Conn, remote string, id int64, terr *TunnelError) {
	s.refused.Add(1)
	s.log.Info("ssh tunnel refused", "mode", "line", "remote", remote, "task_id", id, "reason", terr.Reason, "err", terr.Err)
	c.SetWriteDeadline(time.Now().Add(5 * time.Second)) //nolint:errcheck // a failed deadline shows up as a write error
	if _, err := io.WriteString(c, "ERROR "+terr.Reason+"\n"); err != nil {
		return
	}
	lingerClose(c)
}

// lingerClose half-closes c, discards what the peer still sends for a short
// while, and returns; the caller closes c.
func lingerClose(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite() //nolint:errcheck // best effort
	}
	c.SetReadDeadline(time.Now().Add(time.Second))  //nolint:errcheck // best effort
	io.Copy(io.Discard, io.LimitReader(c, 256<<10)) //nolint:errcheck // draining only
}

// resolve looks task id up, bounded by LookupTimeout.
func (s *Server) resolve(id int64) (Target, *TunnelError) {
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.LookupTimeout)
	defer cancel()
	t, err := s.cfg.Resolver.Lookup(ctx, id)
	switch {
	case errors.Is(err, ErrTaskNotFound):
		return Target{}, refuse(ErrTaskNotFound, nil, "Task %d not found.", id)
	case err != nil:
		return Target{}, refuse(ErrLookup, err, "Internal server error during task lookup.")
	case t.Task == nil:
		return Target{}, refuse(ErrTaskNotFound, nil, "Task %d not found.", id)
	}
	return t, nil
}

// dial checks that t is a reachable VPS and connects to its sshd.
func (s *Server) dial(t Target) (net.Conn, *TunnelError) {
	addr, err := t.Address()
	if err != nil {
		var terr *TunnelError
		if errors.As(err, &terr) {
			return nil, terr
		}
		return nil, refuse(ErrLookup, err, "Internal server error.")
	}
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.DialTimeout)
	defer cancel()
	c, err := s.cfg.Dial(ctx, "tcp", addr)
	if err == nil {
		return c, nil
	}
	id := t.Task.TaskID
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return nil, refuse(ErrRunnerUnreachable, err, "Connection refused by VPS task %d on node %s.", id, t.Node.Hostname)
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return nil, refuse(ErrRunnerUnreachable, err, "Timeout connecting to Runner for task %d.", id)
	}
	return nil, refuse(ErrRunnerUnreachable, err, "Failed to connect to Runner for task %d.", id)
}

// bufferedConn is a connection whose first bytes were already read into r.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

// Read reads from the buffer first.
func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// connSet tracks open connections so that they can all be closed at once.
type connSet struct {
	mu     sync.Mutex
	closed bool
	m      map[net.Conn]struct{}
}

func newConnSet() *connSet { return &connSet{m: make(map[net.Conn]struct{})} }

// add tracks c; it reports false, tracking nothing, once closeAll ran.
func (s *connSet) add(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.m[c] = struct{}{}
	return true
}

func (s *connSet) remove(c net.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, c)
}

// closeAll closes every tracked connection and refuses new ones.
func (s *connSet) closeAll() {
	s.mu.Lock()
	s.closed = true
	cs := make([]net.Conn, 0, len(s.m))
	for c := range s.m {
		cs = append(cs, c)
	}
	s.m = map[net.Conn]struct{}{}
	s.mu.Unlock()
	for _, c := range cs {
		c.Close()
	}
}
