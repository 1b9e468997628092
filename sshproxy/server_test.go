package sshproxy_test

import (
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/fsm"
	"github.com/hakuriver/hakuriver-ha/sshproxy"
	"github.com/hakuriver/hakuriver-ha/sshproxy/sshtest"
)

func TestLineProtocol_TunnelToVPS(t *testing.T) {
	user := sshtest.NewKey(t)
	vps := sshtest.NewSSHD(t, user.PublicKey())
	r := &resolver{}
	r.set(7, sshproxy.Target{Task: vpsTask(7, user.AuthorizedKey("user@test"), vps.Port()), Node: node("n1")})
	p := startProxy(t, sshproxy.Config{Resolver: r})

	conn, err := sshproxy.DialTunnel(context.Background(), p.lineAddr, 7, 5*time.Second)
	if err != nil {
		t.Fatalf("DialTunnel: %v", err)
	}
	defer conn.Close()
	if got := sshtest.Run(t, conn, user.Signer, "hostname"); got != "fake-vps\n" {
		t.Fatalf("hostname = %q", got)
	}
	if s := p.srv.Stats(); s.Tunnels != 1 || s.Accepted != 1 {
		t.Fatalf("stats = %+v", s)
	}
}

// TestLineProtocol_HalfClose: the client's EOF reaches the target while the
// answer still flows back, and a large payload passes intact.
func TestLineProtocol_HalfClose(t *testing.T) {
	target, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	go func() {
		c, err := target.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		n, _ := io.Copy(io.Discard, c) // until the client's half-close
		io.WriteString(c, "got "+strconv.FormatInt(n, 10)+" bytes\n")
	}()
	r := &resolver{}
	r.set(8, sshproxy.Target{Task: vpsTask(8, "", target.Addr().(*net.TCPAddr).Port), Node: node("n1")})
	p := startProxy(t, sshproxy.Config{Resolver: r})

	conn, err := sshproxy.DialTunnel(context.Background(), p.lineAddr, 8, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	const size = 8 << 20
	go func() {
		io.Copy(conn, io.LimitReader(zeros{}, size))
		conn.(*net.TCPConn).CloseWrite()
	}()
	got, err := io.ReadAll(conn)
	if err != nil {
		t.Fatal(err)
	}
	if want := "got " + strconv.Itoa(size) + " bytes\n"; string(got) != want {
		t.Fatalf("answer = %q, want %q", got, want)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

func TestLineProtocol_Errors(t *testing.T) {
	user := sshtest.NewKey(t)
	vps := sshtest.NewSSHD(t, user.PublicKey())
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedPort := closed.Addr().(*net.TCPAddr).Port
	closed.Close()

	key := user.AuthorizedKey("user@test")
	r := &resolver{}
	r.set(1, sshproxy.Target{Task: vpsTask(1, key, vps.Port()), Node: node("n1")})
	cmdTask := vpsTask(2, "echo hi", 0)
	cmdTask.TaskType = fsm.TaskCommand
	r.set(2, sshproxy.Target{Task: cmdTask, Node: node("n1")})
	killed := vpsTask(3, key, vps.Port())
	killed.Status = fsm.StatusKilled
	r.set(3, sshproxy.Target{Task: killed, Node: node("n1")})
	noNode := vpsTask(4, key, vps.Port())
	noNode.AssignedNode = ""
	r.set(4, sshproxy.Target{Task: noNode})
	r.set(5, sshproxy.Target{Task: vpsTask(5, key, 0), Node: node("n1")})
	offline := node("n1")
	offline.Status = fsm.NodeOffline
	r.set(6, sshproxy.Target{Task: vpsTask(6, key, vps.Port()), Node: offline})
	r.set(7, sshproxy.Target{Task: vpsTask(7, key, vps.Port())})
	badURL := node("n1")
	badURL.URL = "http://[::1"
	r.set(8, sshproxy.Target{Task: vpsTask(8, key, vps.Port()), Node: badURL})
	noHost := node("n1")
	noHost.URL = "runner-without-scheme"
	r.set(9, sshproxy.Target{Task: vpsTask(9, key, vps.Port()), Node: noHost})
	r.set(10, sshproxy.Target{Task: vpsTask(10, key, closedPort), Node: node("n1")})
	paused := vpsTask(11, key, vps.Port())
	paused.Status = fsm.StatusPaused
	r.set(11, sshproxy.Target{Task: paused, Node: node("n1")})

	p := startProxy(t, sshproxy.Config{Resolver: r, RequestTimeout: 300 * time.Millisecond})

	tests := []struct {
		name, send, want string
		kind             error
	}{
		{"NoPrefix", "HELLO 1\n", "Invalid request format.", sshproxy.ErrBadRequest},
		{"NoSpace", "REQUEST_TUNNEL\n", "Invalid request format.", sshproxy.ErrBadRequest},
		{"LowerCase", "request_tunnel 1\n", "Invalid request format.", sshproxy.ErrBadRequest},
		{"NonNumeric", "REQUEST_TUNNEL abc\n", "Invalid task ID format.", sshproxy.ErrBadRequest},
		{"Negative", "REQUEST_TUNNEL -1\n", "Invalid task ID format.", sshproxy.ErrBadRequest},
		{"Empty", "REQUEST_TUNNEL   \n", "Invalid task ID format.", sshproxy.ErrBadRequest},
		{"Overflow", "REQUEST_TUNNEL 99999999999999999999\n", "Invalid task ID format.", sshproxy.ErrBadRequest},
		{"Oversized", "REQUEST_TUNNEL " + strings.Repeat("1", 100000) + "\n", "Invalid request format.", sshproxy.ErrBadRequest},
		{"OversizedNoNewline", strings.Repeat("x", 5000), "Invalid request format.", sshproxy.ErrBadRequest},
		{"Timeout", "", "Timeout waiting for request.", sshproxy.ErrBadRequest},
		{"PartialLineTimeout", "REQUEST_TUNNEL 1", "Timeout waiting for request.", sshproxy.ErrBadRequest},
		{"NotFound", "REQUEST_TUNNEL 404\n", "Task 404 not found.", sshproxy.ErrTaskNotFound},
		{"CommandTask", "REQUEST_TUNNEL 2\n", "Task 2 is not a VPS task.", sshproxy.ErrNotVPS},
		{"Stopped", "REQUEST_TUNNEL 3\n", "VPS task 3 is not active (status: killed).", sshproxy.ErrNotActive},
		{"NoNode", "REQUEST_TUNNEL 4\n", "VPS task 4 has no assigned node.", sshproxy.ErrNotActive},
		{"NoPort", "REQUEST_TUNNEL 5\n", "VPS task 5 has no SSH port assigned.", sshproxy.ErrNotActive},
		{"NodeOffline", "REQUEST_TUNNEL 6\n", "Assigned node for VPS task 6 is not online.", sshproxy.ErrNodeOffline},
		{"NodeUnknown", "REQUEST_TUNNEL 7\n", "Assigned node for VPS task 7 is not online.", sshproxy.ErrNodeOffline},
		{"BadRunnerURL", "REQUEST_TUNNEL 8\n", "Error parsing runner URL for node n1.", sshproxy.ErrRunnerUnreachable},
		{"RunnerURLNoHost", "REQUEST_TUNNEL 9\n", "Invalid runner URL format for node n1.", sshproxy.ErrRunnerUnreachable},
		{"Refused", "REQUEST_TUNNEL 10\n", "Connection refused by VPS task 10 on node n1.", sshproxy.ErrRunnerUnreachable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := exchange(t, p.lineAddr, tt.send)
			if want := "ERROR " + tt.want + "\n"; got != want {
				t.Fatalf("answer = %q, want %q", got, want)
			}
			if !errors.Is(&sshproxy.TunnelError{Kind: tt.kind}, tt.kind) {
				t.Fatal("TunnelError does not match its kind")
			}
		})
	}
	// DialTunnel reports a refusal as a *TunnelError of the right kind.
	for id, kind := range map[int64]error{404: sshproxy.ErrTaskNotFound, 2: sshproxy.ErrNotVPS, 3: sshproxy.ErrNotActive,
		6: sshproxy.ErrNodeOffline, 10: sshproxy.ErrRunnerUnreachable} {
		_, err := sshproxy.DialTunnel(context.Background(), p.lineAddr, id, 5*time.Second)
		var te *sshproxy.TunnelError
		if !errors.As(err, &te) || !errors.Is(err, kind) {
			t.Errorf("DialTunnel(%d) = %v, want a TunnelError of kind %v", id, err, kind)
		}
	}
	// After all of that the proxy still serves, paused VPSs included.
	for _, id := range []int64{1, 11} {
		conn, err := sshproxy.DialTunnel(context.Background(), p.lineAddr, id, 5*time.Second)
		if err != nil {
			t.Fatalf("DialTunnel(%d) after bad requests: %v", id, err)
		}
		if got := sshtest.Run(t, conn, user.Signer, "hostname"); got != "fake-vps\n" {
			t.Fatalf("hostname = %q", got)
		}
		conn.Close()
	}
	if s := p.srv.Stats(); s.Refused < int64(len(tests)) {
		t.Errorf("stats = %+v, want at least %d refused", s, len(tests))
	}
}

func TestLineProtocol_ResolverAndDialErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  sshproxy.Config
		want string
	}{
		{"LookupFails", sshproxy.Config{Resolver: &resolver{err: errors.New("boom")}}, "Internal server error during task lookup."},
		{"DialTimeout", sshproxy.Config{DialTimeout: 100 * time.Millisecond, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
			<-ctx.Done()
			return nil, ctx.Err()
		}}, "Timeout connecting to Runner for task 1."},
		{"DialFails", sshproxy.Config{Dial: func(context.Context, string, string) (net.Conn, error) {
			return nil, errors.New("no route")
		}}, "Failed to connect to Runner for task 1."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.cfg.Resolver == nil {
				r := &resolver{}
				r.set(1, sshproxy.Target{Task: vpsTask(1, "", 22), Node: node("n1")})
				tt.cfg.Resolver = r
			}
			p := startProxy(t, tt.cfg)
			if got, want := exchange(t, p.lineAddr, "REQUEST_TUNNEL 1\r\n"), "ERROR "+tt.want+"\n"; got != want {
				t.Fatalf("answer = %q, want %q", got, want)
			}
		})
	}
}

// TestServer_CloseEndsTunnels: Close ends open tunnels and idle clients,
// and Serve returns ErrServerClosed.
func TestServer_CloseEndsTunnels(t *testing.T) {
	target, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	held := make(chan net.Conn, 1)
	go func() {
		c, err := target.Accept()
		if err == nil {
			held <- c
		}
	}()
	r := &resolver{}
	r.set(1, sshproxy.Target{Task: vpsTask(1, "", target.Addr().(*net.TCPAddr).Port), Node: node("n1")})
	srv, err := sshproxy.New(sshproxy.Config{Resolver: r, Accounts: openAccounts(), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(context.Background(), ln) }()

	tunnel, err := sshproxy.DialTunnel(context.Background(), ln.Addr().String(), 1, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer tunnel.Close()
	up := <-held
	defer up.Close()
	idle, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	waitFor(t, func() bool { return srv.Stats().Active == 2 })

	closed := make(chan struct{})
	go func() {
		srv.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return")
	}
	if err := <-served; !errors.Is(err, sshproxy.ErrServerClosed) {
		t.Fatalf("Serve = %v", err)
	}
	for name, c := range map[string]net.Conn{"tunnel": tunnel, "idle": idle, "vps side": up} {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err == nil {
			t.Errorf("%s: still open after Close", name)
		}
	}
	if _, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second); err == nil {
		t.Error("listener still accepting after Close")
	}
	if err := srv.Serve(context.Background(), ln); !errors.Is(err, sshproxy.ErrServerClosed) {
		t.Errorf("Serve after Close = %v", err)
	}
}

// TestServer_ContextCancelCloses: cancelling Serve's context closes the
// server.
func TestServer_ContextCancelCloses(t *testing.T) {
	srv, err := sshproxy.New(sshproxy.Config{Resolver: &resolver{}, Accounts: openAccounts()})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ln) }()
	cancel()
	select {
	case err := <-served:
		if !errors.Is(err, sshproxy.ErrServerClosed) {
			t.Fatalf("Serve = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
	srv.Close()
}

func TestNew_Validates(t *testing.T) {
	if _, err := sshproxy.New(sshproxy.Config{Accounts: openAccounts()}); err == nil {
		t.Error("New without a Resolver succeeded")
	}
	if _, err := sshproxy.New(sshproxy.Config{Resolver: &resolver{}}); err == nil || !strings.Contains(err.Error(), "Accounts") {
		t.Errorf("New without Accounts = %v", err)
	}
	if _, err := sshproxy.New(sshproxy.Config{Resolver: &resolver{}, Accounts: openAccounts(), AdminKeys: []string{"not a key"}}); err == nil || !strings.Contains(err.Error(), "admin key 1") {
		t.Errorf("New with a bad admin key = %v", err)
	}
	srv, err := sshproxy.New(sshproxy.Config{Resolver: &resolver{}, Accounts: openAccounts()})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.ServeJump(context.Background(), ln); err == nil {
		t.Error("ServeJump without a host key succeeded")
	}
}

func TestParseTaskID(t *testing.T) {
	for in, want := range map[string]int64{"1": 1, " 42\t": 42, "007": 7} {
		if got, ok := sshproxy.ParseTaskID(in); !ok || got != want {
			t.Errorf("ParseTaskID(%q) = %d, %v", in, got, ok)
		}
	}
	for _, in := range []string{"", "-1", "+1", "1a", "1 2", "0x10", "99999999999999999999"} {
		if _, ok := sshproxy.ParseTaskID(in); ok {
			t.Errorf("ParseTaskID(%q) accepted", in)
		}
	}
}

func waitFor(tb testing.TB, f func() bool) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !f() {
		if time.Now().After(deadline) {
			tb.Fatal("condition not met in time")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
