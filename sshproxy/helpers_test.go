package sshproxy_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
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

// userKey is a client key pair.
type userKey struct {
	signer ssh.Signer
	priv   ed25519.PrivateKey
}

func newUserKey(tb testing.TB) userKey {
	tb.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		tb.Fatal(err)
	}
	return userKey{signer: s, priv: priv}
}

// authorized returns the public key as an authorized_keys line.
func (k userKey) authorized() string {
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k.signer.PublicKey()))) + " user@test"
}

// writeFile writes the private key in OpenSSH format for the ssh binary.
func (k userKey) writeFile(tb testing.TB, dir string) string {
	tb.Helper()
	block, err := ssh.MarshalPrivateKey(k.priv, "test")
	if err != nil {
		tb.Fatal(err)
	}
	path := filepath.Join(dir, "id_ed25519_"+strconv.Itoa(int(time.Now().UnixNano()%1e6)))
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		tb.Fatal(err)
	}
	return path
}

// fakeVPS is an SSH server standing in for a VPS's sshd: it accepts one
// user key and answers the exec commands "hostname" and "cat".
type fakeVPS struct {
	ln       net.Listener
	accepted atomic.Int64
	wg       sync.WaitGroup
	name     string
}

func newFakeVPS(tb testing.TB, user userKey) *fakeVPS {
	tb.Helper()
	hostKey := newUserKey(tb).signer
	cfg := &ssh.ServerConfig{
		PublicKeyCallback: func(_ ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			if string(key.Marshal()) == string(user.signer.PublicKey().Marshal()) {
				return nil, nil
			}
			return nil, errors.New("unknown key")
		},
	}
	cfg.AddHostKey(hostKey)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	v := &fakeVPS{ln: ln, name: "fake-vps"}
	v.wg.Add(1)
	go func() {
		defer v.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			v.accepted.Add(1)
			v.wg.Add(1)
			go func() {
				defer v.wg.Done()
				v.serve(c, cfg)
			}()
		}
	}()
	tb.Cleanup(func() {
		ln.Close()
		v.wg.Wait()
	})
	return v
}

func (v *fakeVPS) port() int { return v.ln.Addr().(*net.TCPAddr).Port }

func (v *fakeVPS) serve(c net.Conn, cfg *ssh.ServerConfig) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	sconn, chans, reqs, err := ssh.NewServerConn(c, cfg)
	if err != nil {
		return
	}
	defer sconn.Close()
	go ssh.DiscardRequests(reqs)
	var wg sync.WaitGroup
	defer wg.Wait()
	for nc := range chans {
		if nc.ChannelType() != "session" {
			nc.Reject(ssh.UnknownChannelType, "session only")
			continue
		}
		ch, creqs, err := nc.Accept()
		if err != nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer ch.Close()
			for req := range creqs {
				if req.Type != "exec" {
					req.Reply(false, nil)
					continue
				}
				var p struct{ Command string }
				ssh.Unmarshal(req.Payload, &p)
				req.Reply(true, nil)
				code := uint32(0)
				switch strings.TrimSpace(p.Command) {
				case "hostname":
					io.WriteString(ch, v.name+"\n")
				case "cat":
					io.Copy(ch, ch)
				default:
					fmt.Fprintf(ch.Stderr(), "unknown command %q\n", p.Command)
					code = 127
				}
				status := make([]byte, 4)
				binary.BigEndian.PutUint32(status, code)
				ch.SendRequest("exit-status", false, status)
				return
			}
		}()
	}
}

// runOver runs command on the fake VPS through conn (a tunnel) as user.
func runOver(tb testing.TB, conn net.Conn, user userKey, command string) string {
	tb.Helper()
	cc, chans, reqs, err := ssh.NewClientConn(conn, "vps", &ssh.ClientConfig{
		User:            "root",
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(user.signer)},
		HostKeyCallback: ssh.InsecureIgnoreHostKey(),
		Timeout:         10 * time.Second,
	})
	if err != nil {
		tb.Fatalf("ssh handshake with the VPS through the tunnel: %v", err)
	}
	client := ssh.NewClient(cc, chans, reqs)
	defer client.Close()
	sess, err := client.NewSession()
	if err != nil {
		tb.Fatalf("session: %v", err)
	}
	defer sess.Close()
	out, err := sess.Output(command)
	if err != nil {
		tb.Fatalf("run %q: %v", command, err)
	}
	return string(out)
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
