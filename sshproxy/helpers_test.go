package sshproxy_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/hakuriver/hakuriver-ha/fsm"
	"github.com/hakuriver/hakuriver-ha/sshproxy"
)

// testLogger sends logs to t.Log.
func testLogger(tb testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tbWriter{tb}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tbWriter struct{ tb testing.TB }

func (w tbWriter) Write(p []byte) (int, error) {
	w.tb.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// resolver is a fake Resolver over a fixed table.
type resolver struct {
	mu      sync.Mutex
	targets map[int64]sshproxy.Target
	err     error
}

func (r *resolver) Lookup(ctx context.Context, id int64) (sshproxy.Target, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return sshproxy.Target{}, r.err
	}
	t, ok := r.targets[id]
	if !ok {
		return sshproxy.Target{}, fmt.Errorf("task %d: %w", id, sshproxy.ErrTaskNotFound)
	}
	return t, nil
}

func (r *resolver) set(id int64, t sshproxy.Target) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.targets == nil {
		r.targets = make(map[int64]sshproxy.Target)
	}
	r.targets[id] = t
}

// accounts is a fake Accounts: tokens and keys by account, and an
// anonymous role. It is safe for concurrent use and may change while a
// proxy uses it.
type accounts struct {
	mu     sync.Mutex
	anon   fsm.Role
	tokens map[string]sshproxy.Caller   // secret -> account
	keys   map[string][]sshproxy.Caller // public key (wire) -> accounts
}

// openAccounts lets anonymous callers act as operators, as the original
// HakuRiver did: the default of startProxy for tests about other things.
func openAccounts() *accounts { return &accounts{anon: fsm.RoleOperator} }

func (a *accounts) TokenCaller(_ context.Context, secret string) (sshproxy.Caller, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	c, ok := a.tokens[secret]
	return c, ok
}

func (a *accounts) KeyCallers(key ssh.PublicKey) []sshproxy.Caller {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]sshproxy.Caller(nil), a.keys[string(key.Marshal())]...)
}

func (a *accounts) Anonymous() sshproxy.Caller {
	a.mu.Lock()
	defer a.mu.Unlock()
	return sshproxy.Caller{Name: "anonymous", Role: a.anon, Anonymous: true}
}

// addToken gives user (with role) the API token secret.
func (a *accounts) addToken(secret, user string, role fsm.Role) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.tokens == nil {
		a.tokens = map[string]sshproxy.Caller{}
	}
	a.tokens[secret] = sshproxy.Caller{Name: user, Role: role}
}

// addKey registers key on user's account.
func (a *accounts) addKey(key ssh.PublicKey, user string, role fsm.Role) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.keys == nil {
		a.keys = map[string][]sshproxy.Caller{}
	}
	k := string(key.Marshal())
	a.keys[k] = append(a.keys[k], sshproxy.Caller{Name: user, Role: role})
}

// removeKeys unregisters key from every account.
func (a *accounts) removeKeys(key ssh.PublicKey) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.keys, string(key.Marshal()))
}

// node returns an online runner node at 127.0.0.1.
func node(name string) *fsm.Node {
	return &fsm.Node{Hostname: name, URL: "http://127.0.0.1:8001", Status: fsm.NodeOnline}
}

// vpsTask returns a running VPS task on node "n1" with key and port.
func vpsTask(id int64, key string, port int) *fsm.Task {
	return &fsm.Task{TaskID: id, TaskType: fsm.TaskVPS, Status: fsm.StatusRunning, AssignedNode: "n1", SSHPort: port, Command: key}
}

// startProxy starts a Server serving the line protocol (with SSH sniffing)
// and a dedicated jump port; it is closed at cleanup.
type proxy struct {
	srv      *sshproxy.Server
	lineAddr string
	jumpAddr string
	hostKey  ssh.Signer
	done     chan error
}

func startProxy(tb testing.TB, cfg sshproxy.Config) *proxy {
	tb.Helper()
	if cfg.Logger == nil {
		cfg.Logger = testLogger(tb)
	}
	if cfg.Accounts == nil {
		cfg.Accounts = openAccounts()
	}
	if cfg.HostKey == nil {
		k, err := sshproxy.LoadOrCreateHostKey(filepath.Join(tb.TempDir(), sshproxy.HostKeyFile))
		if err != nil {
			tb.Fatal(err)
		}
		cfg.HostKey = k
	}
	srv, err := sshproxy.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	lineLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	jumpLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	p := &proxy{srv: srv, lineAddr: lineLn.Addr().String(), jumpAddr: jumpLn.Addr().String(), hostKey: cfg.HostKey, done: make(chan error, 2)}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { p.done <- srv.Serve(ctx, lineLn) }()
	go func() { p.done <- srv.ServeJump(ctx, jumpLn) }()
	tb.Cleanup(func() {
		cancel()
		srv.Close()
		for range 2 {
			if err := <-p.done; !errors.Is(err, sshproxy.ErrServerClosed) {
				tb.Errorf("Serve returned %v, want ErrServerClosed", err)
			}
		}
	})
	return p
}

// exchange sends raw to the line port and returns everything the proxy
// answers until it closes the connection.
func exchange(tb testing.TB, addr, raw string) string {
	tb.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	if raw != "" {
		if _, err := io.WriteString(c, raw); err != nil {
			tb.Fatal(err)
		}
	}
	b, err := io.ReadAll(c)
	if err != nil {
		tb.Fatalf("read answer to %.40q: %v (got %q)", raw, err, b)
	}
	return string(b)
}
