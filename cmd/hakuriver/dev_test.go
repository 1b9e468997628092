package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
)

// syncBuffer is a bytes.Buffer safe for one writer and one reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// freeDevPort returns a port p such that p (API) and p+100 (SSH proxy) are
// free on loopback now.
func freeDevPort(t *testing.T) int {
	t.Helper()
	for range 50 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		p := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		if p+100 > 65535 {
			continue
		}
		if ln2, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p+100)); err == nil {
			ln2.Close()
			return p
		}
	}
	t.Fatal("no free pair of ports")
	return 0
}

var exportRE = regexp.MustCompile(`export HAKURIVER_HOST=(\S+) HAKURIVER_TOKEN_FILE=(\S+) HAKURIVER_TOKEN=(\S+)`)

// startDev runs "hakuriver dev" in this process until the test ends (or
// stop is called) and returns its export line's host, cluster token file
// and admin token.
func startDev(t *testing.T, dataDir string) (host, tokenFile, admin string, stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out := &syncBuffer{}
	root := newRootCmd()
	root.SetOut(out)
	root.SetErr(out)
	root.SetArgs([]string{"dev", "--runners", "0", "--api-port", fmt.Sprint(freeDevPort(t)), "--data-dir", dataDir, "--log-level", "error"})
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("dev ended with %v\n%s", err, out)
				}
			case <-time.After(20 * time.Second):
				t.Errorf("dev did not stop\n%s", out)
			}
		})
	}
	t.Cleanup(stop)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if m := exportRE.FindStringSubmatch(out.String()); m != nil {
			return m[1], m[2], m[3], stop
		}
		select {
		case err := <-done:
			t.Fatalf("dev ended before it was ready: %v\n%s", err, out)
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatalf("dev printed no export line with HAKURIVER_TOKEN:\n%s", out)
	return
}

// TestDevBootstrapsAdmin starts the embedded cluster as `make run` does:
// its export line carries an admin token that works, the cluster refuses
// callers without one, and a restart on the same --data-dir prints the same
// token (the accounts are bootstrapped once).
func TestDevBootstrapsAdmin(t *testing.T) {
	useTokenStore(t)
	dataDir := t.TempDir()
	host, tokenFile, admin, stop := startDev(t, dataDir)
	if !strings.HasPrefix(admin, "hkr_") {
		t.Fatalf("admin token %q", admin)
	}
	if b, err := os.ReadFile(tokenFile); err != nil || strings.TrimSpace(string(b)) == "" {
		t.Fatalf("cluster token file %s: %q %v", tokenFile, b, err)
	}
	if m := fileMode(t, filepath.Join(dataDir, "admin-token")); m != 0o600 {
		t.Errorf("admin-token mode %v, want 0600", m)
	}
	out, _, err := runRoot(t, "", "--host", host, "--token", admin, "-o", "json", "auth", "whoami")
	if err != nil {
		t.Fatalf("whoami as the dev admin: %v", err)
	}
	var who api.WhoAmI
	mustJSON(t, out, &who)
	if who.User != "admin" || who.Role != "admin" {
		t.Fatalf("whoami = %+v", who)
	}
	_, _, err = runRoot(t, "", "--host", host, "auth", "whoami")
	if err == nil || !strings.Contains(err.Error(), "HTTP 401") {
		t.Fatalf("whoami without a token: %v, want the server's 401", err)
	}
	stop()

	host, _, again, _ := startDev(t, dataDir)
	if again != admin {
		t.Fatalf("restart on the same --data-dir printed token %q, want %q", again, admin)
	}
	if _, _, err := runRoot(t, "", "--host", host, "--token", again, "auth", "whoami"); err != nil {
		t.Fatalf("whoami after the restart: %v", err)
	}
}

// TestAccountsCLIOnDev runs the account commands against the embedded
// cluster: the admin adds bob and a token for him, bob logs in from a pipe
// and is himself, may not add accounts, and is refused once his token is
// revoked.
func TestAccountsCLIOnDev(t *testing.T) {
	store := useTokenStore(t)
	host, _, admin, _ := startDev(t, t.TempDir())
	asAdmin := func(args ...string) string {
		t.Helper()
		out, _, err := runRoot(t, "", append([]string{"--host", host, "--token", admin}, args...)...)
		if err != nil {
			t.Fatalf("%q: %v", args, err)
		}
		return out
	}
	key := filepath.Join(t.TempDir(), "bob.pub")
	os.WriteFile(key, []byte("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGq1S2kHk5i0jCwKRLbTB0m1WgOJQv1XrQmn5nE8TqG8 bob@laptop\n"), 0o600)
	asAdmin("group", "add", "ml", "--quota-gpus", "2")
	asAdmin("user", "add", "bob", "--role", "user", "--ssh-key-file", key, "--group", "ml", "--quota-memory", "8G")
	asAdmin("user", "set", "bob", "--quota-cores", "4", "--allow-mounts")
	var bob api.UserRequest
	mustJSON(t, asAdmin("-o", "json", "user", "show", "bob"), &bob)
	if bob.Quota.Cores != 4 || bob.Quota.MemoryBytes != 8e9 || !bob.Policy.Mounts || len(bob.SSHKeys) != 1 || bob.Groups[0] != "ml" {
		t.Fatalf("bob = %+v", bob)
	}
	if out := asAdmin("group", "list"); !strings.Contains(out, "bob") || !strings.Contains(out, "gpus=2") {
		t.Errorf("group list:\n%s", out)
	}
	var tok api.TokenResponse
	mustJSON(t, asAdmin("-o", "json", "token", "create", "--user", "bob", "--name", "laptop", "--ttl", "720h"), &tok)
	if tok.User != "bob" || tok.ExpiresAt == nil || tok.Token == "" {
		t.Fatalf("token = %+v", tok)
	}

	out, _, err := runRoot(t, tok.Token+"\n", "--host", host, "auth", "login")
	if err != nil || !strings.Contains(out, "as bob") {
		t.Fatalf("login: %v\n%s", err, out)
	}
	if m := fileMode(t, store); m != 0o600 {
		t.Errorf("token store mode %v", m)
	}
	out, _, err = runRoot(t, "", "--host", host, "auth", "whoami")
	if err != nil || !strings.Contains(out, "bob") || !strings.Contains(out, "saved in "+store) {
		t.Fatalf("whoami after login: %v\n%s", err, out)
	}
	_, _, err = runRoot(t, "", "--host", host, "user", "add", "eve", "--role", "admin")
	if err == nil || !strings.Contains(err.Error(), "HTTP 403") || !strings.Contains(err.Error(), "admin") {
		t.Fatalf("bob adding an account: %v, want the server's 403", err)
	}
	out = asAdmin("audit", "--user", "admin", "--all")
	for _, want := range []string{"put_user", "user bob", "create_token"} {
		if !strings.Contains(out, want) {
			t.Errorf("audit lacks %q:\n%s", want, out)
		}
	}
	asAdmin("token", "revoke", tok.TokenID)
	_, _, err = runRoot(t, "", "--host", host, "auth", "whoami")
	if err == nil || !strings.Contains(err.Error(), "HTTP 401") {
		t.Fatalf("whoami with a revoked token: %v, want 401", err)
	}
	out, _, err = runRoot(t, "", "--host", host, "auth", "logout")
	if err != nil || savedToken([]string{host}) != "" {
		t.Fatalf("logout: %v\n%s", err, out)
	}

	// logout --revoke: the saved token is revoked on the cluster too.
	var second api.TokenResponse
	mustJSON(t, asAdmin("-o", "json", "token", "create", "--user", "bob", "--name", "second"), &second)
	if _, _, err := runRoot(t, "", "--host", host, "auth", "login", "--token", second.Token); err != nil {
		t.Fatalf("login with the second token: %v", err)
	}
	out, _, err = runRoot(t, "", "--host", host, "auth", "logout", "--revoke")
	if err != nil || !strings.Contains(out, second.TokenID+" is revoked") || savedToken([]string{host}) != "" {
		t.Fatalf("logout --revoke: %v\n%s", err, out)
	}
	if out := asAdmin("token", "list", "--user", "bob"); strings.Contains(out, second.TokenID) {
		t.Fatalf("the token outlived logout --revoke:\n%s", out)
	}
}
