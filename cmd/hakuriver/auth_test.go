package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/fsm"
)

// runRoot runs the whole CLI (newRootCmd) with args and stdin and returns
// stdout, stderr and the error.
func runRoot(tb testing.TB, stdin string, args ...string) (string, string, error) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	root := newRootCmd()
	var out, errOut bytes.Buffer
	root.SetIn(strings.NewReader(stdin))
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	return out.String(), errOut.String(), err
}

// useTokenStore points the token store at a fresh directory and returns
// the store's path.
func useTokenStore(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "conf", "hakuriver", "tokens.json")
	t.Setenv(credentialsEnv, p)
	t.Setenv(tokenEnv, "")
	t.Setenv(hostEnv, "")
	return p
}

func fileMode(t *testing.T, p string) fs.FileMode {
	t.Helper()
	st, err := os.Stat(p)
	if err != nil {
		t.Fatalf("stat %s: %v", p, err)
	}
	return st.Mode().Perm()
}

func TestTokenStore_ModeKeysAndRemoval(t *testing.T) {
	p := useTokenStore(t)
	a := []string{"10.0.0.1:8000/, 10.0.0.2:8000"}
	b := []string{"https://h.example:8443"}
	if got, err := loadSavedToken(a); err != nil || got != "" {
		t.Fatalf("empty store: %q %v", got, err)
	}
	path, err := saveToken(a, "hkr_a")
	if err != nil || path != p {
		t.Fatalf("save: %q %v, want %s", path, err, p)
	}
	if _, err := saveToken(b, "hkr_b"); err != nil {
		t.Fatal(err)
	}
	if m := fileMode(t, p); m != 0o600 {
		t.Errorf("store mode %v, want 0600", m)
	}
	if m := fileMode(t, filepath.Dir(p)); m != 0o700 {
		t.Errorf("store directory mode %v, want 0700", m)
	}
	// The same cluster however its first replica is spelled.
	if got := savedToken([]string{"http://10.0.0.1:8000"}); got != "hkr_a" {
		t.Errorf("token of a = %q", got)
	}
	if got := savedToken(b); got != "hkr_b" {
		t.Errorf("token of b = %q", got)
	}
	if got := savedToken([]string{"10.0.0.2:8000"}); got != "" {
		t.Errorf("another first replica is another cluster, got %q", got)
	}
	// A store made looser by hand is rewritten 0600.
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := saveToken(a, ""); err != nil {
		t.Fatal(err)
	}
	if m := fileMode(t, p); m != 0o600 {
		t.Errorf("store mode after a save %v, want 0600", m)
	}
	if got := savedToken(a); got != "" {
		t.Errorf("removed token still there: %q", got)
	}
	if got := savedToken(b); got != "hkr_b" {
		t.Errorf("removing a's token removed b's: %q", got)
	}
	// No temporary file is left behind.
	ents, _ := os.ReadDir(filepath.Dir(p))
	if len(ents) != 1 {
		t.Errorf("store directory holds %d files, want 1", len(ents))
	}
}

// The cluster token file of $HAKURIVER_TOKEN_FILE (hakuriver dev prints it)
// is never the token store: logging in must not touch it.
func TestTokenStore_NotTheClusterTokenFile(t *testing.T) {
	p := useTokenStore(t)
	ct := filepath.Join(t.TempDir(), "cluster-token")
	if err := os.WriteFile(ct, []byte("cafe\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(tokenFileEnv, ct)
	if _, err := saveToken([]string{defaultHost}, "hkr_x"); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(ct); string(b) != "cafe\n" {
		t.Fatalf("the cluster token file changed: %q", b)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("the store was not written: %v", err)
	}
}

func TestClientFlags_AccountTokenOrder(t *testing.T) {
	useTokenStore(t)
	if _, err := saveToken([]string{defaultHost}, "hkr_saved"); err != nil {
		t.Fatal(err)
	}
	g := &clientFlags{}
	if got, src := g.accountToken(), g.tokenSource(); got != "hkr_saved" || !strings.HasPrefix(src, "saved") {
		t.Errorf("saved: %q from %q", got, src)
	}
	t.Setenv(tokenEnv, "hkr_env")
	if got, src := g.accountToken(), g.tokenSource(); got != "hkr_env" || src != "$"+tokenEnv {
		t.Errorf("env: %q from %q", got, src)
	}
	var note bytes.Buffer
	warnEnvToken(&note)
	if !strings.Contains(note.String(), "$"+tokenEnv) {
		t.Errorf("login does not say that $%s wins over the saved token: %q", tokenEnv, note.String())
	}
	g.token = "hkr_flag"
	if got, src := g.accountToken(), g.tokenSource(); got != "hkr_flag" || src != "--token" {
		t.Errorf("flag: %q from %q", got, src)
	}
}

// parseFlags parses args into a command that has bind's flags.
func parseFlags(t *testing.T, bind func(*cobra.Command), args ...string) *cobra.Command {
	t.Helper()
	cmd := &cobra.Command{Use: "x"}
	bind(cmd)
	if err := cmd.ParseFlags(args); err != nil {
		t.Fatalf("parse %q: %v", args, err)
	}
	return cmd
}

func TestLimitFlags(t *testing.T) {
	var l limitFlags
	cmd := parseFlags(t, func(c *cobra.Command) { l.bind(c.Flags(), "the account's") },
		"--quota-cores", "4", "--quota-memory", "8Gi", "--allow-mounts", "--allow-root=false")
	base := fsm.Quota{GPUs: 2, Cores: 1}
	q, changed, err := l.quota(cmd.Flags(), base)
	if err != nil || !changed {
		t.Fatalf("quota: %v %v", changed, err)
	}
	if want := (fsm.Quota{Cores: 4, MemoryBytes: 8 << 30, GPUs: 2}); q != want {
		t.Errorf("quota %+v, want %+v (flags not given keep the base)", q, want)
	}
	p, changed := l.policy(cmd.Flags(), fsm.Policy{Privileged: true, RunAsRoot: true})
	if want := (fsm.Policy{Privileged: true, Mounts: true}); !changed || p != want {
		t.Errorf("policy %+v, want %+v", p, want)
	}

	var none limitFlags
	cmd = parseFlags(t, func(c *cobra.Command) { none.bind(c.Flags(), "x") })
	if q, changed, err := none.quota(cmd.Flags(), base); err != nil || changed || q != base {
		t.Errorf("no flags: %+v %v %v", q, changed, err)
	}
	if _, changed := none.policy(cmd.Flags(), fsm.Policy{}); changed {
		t.Error("no flags changed the policy")
	}

	for _, tc := range []struct{ args []string }{
		{[]string{"--quota-cores", "-1"}},
		{[]string{"--quota-vps", "-3"}},
		{[]string{"--quota-memory", "lots"}},
		{[]string{"--quota-memory", "-1G"}},
	} {
		var bad limitFlags
		cmd := parseFlags(t, func(c *cobra.Command) { bad.bind(c.Flags(), "x") }, tc.args...)
		_, _, err := bad.quota(cmd.Flags(), fsm.Quota{})
		if err == nil || !strings.Contains(err.Error(), tc.args[0]) {
			t.Errorf("%q: error %v does not name %s", tc.args, err, tc.args[0])
		}
	}
}

func TestUserFlags_Patch(t *testing.T) {
	bind := func(f *userFlags) func(*cobra.Command) {
		return func(c *cobra.Command) {
			c.Flags().StringVar(&f.role, "role", "", "")
			f.bind(c.Flags())
			c.Flags().BoolVar(&f.noKeys, "no-ssh-keys", false, "")
			c.Flags().BoolVar(&f.noGroups, "no-groups", false, "")
		}
	}
	var f userFlags
	cmd := parseFlags(t, bind(&f), "--group", "ml,gpu", "--group", "ops", "--role", "Operator", "--quota-gpus", "2")
	p, err := f.patch(cmd.Flags(), fsm.User{Quota: fsm.Quota{Cores: 8}})
	if err != nil {
		t.Fatal(err)
	}
	if p.Role == nil || *p.Role != fsm.RoleOperator {
		t.Errorf("role %v", p.Role)
	}
	if p.Groups == nil || strings.Join(*p.Groups, ",") != "ml,gpu,ops" {
		t.Errorf("groups %v", p.Groups)
	}
	if p.Quota == nil || *p.Quota != (fsm.Quota{Cores: 8, GPUs: 2}) {
		t.Errorf("quota %+v", p.Quota)
	}
	if p.UnixUser != nil || p.SSHKeys != nil || p.Policy != nil {
		t.Errorf("fields not given are in the patch: %+v", p)
	}

	var e userFlags
	cmd = parseFlags(t, bind(&e))
	if p, err := e.patch(cmd.Flags(), fsm.User{}); err != nil || !emptyUserPatch(p) {
		t.Errorf("no flags: %+v %v", p, err)
	}
	var clear userFlags
	cmd = parseFlags(t, bind(&clear), "--no-groups", "--no-ssh-keys", "--unix-user", "")
	p, err = clear.patch(cmd.Flags(), fsm.User{})
	if err != nil || p.Groups == nil || len(*p.Groups) != 0 || p.SSHKeys == nil || len(*p.SSHKeys) != 0 || p.UnixUser == nil {
		t.Errorf("clearing: %+v %v", p, err)
	}
	for _, args := range [][]string{
		{"--no-groups", "--group", "ml"},
		{"--no-ssh-keys", "--ssh-key-file", "/nonexistent"},
		{"--role", "root"},
		{"--ssh-key-file", "/nonexistent/key.pub"},
	} {
		var b userFlags
		cmd := parseFlags(t, bind(&b), args...)
		if _, err := b.patch(cmd.Flags(), fsm.User{}); err == nil {
			t.Errorf("%q: no error", args)
		}
	}
}

func TestReadKeyFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	a := write("a.pub", "# laptop\nssh-ed25519 AAAAa bob@laptop\n\n  ssh-rsa AAAAb bob@desk  \n")
	b := write("b.pub", "ssh-ed25519 AAAAc\n")
	keys, err := readKeyFiles([]string{a, b})
	if err != nil {
		t.Fatal(err)
	}
	if want := "ssh-ed25519 AAAAa bob@laptop|ssh-rsa AAAAb bob@desk|ssh-ed25519 AAAAc"; strings.Join(keys, "|") != want {
		t.Errorf("keys %q", keys)
	}
	for name, content := range map[string]string{
		"id_ed25519": "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n",
		"empty.pub":  "# nothing\n\n",
	} {
		if _, err := readKeyFiles([]string{write(name, content)}); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: error %v does not name the file", name, err)
		}
	}
	big := write("big.pub", strings.Repeat("x", maxKeyFile+1))
	if _, err := readKeyFiles([]string{big}); err == nil {
		t.Error("a file over the limit was read")
	}
}

func TestAuditFlags_Query(t *testing.T) {
	now := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	q, err := auditFlags{user: "bob", since: "24h", limit: 50}.query(now)
	if err != nil || q.User != "bob" || q.Since != "2026-03-03T05:06:07Z" || q.Limit != 50 {
		t.Errorf("duration: %+v %v", q, err)
	}
	q, err = auditFlags{since: "2026-01-02T03:04:05+02:00", limit: 5000}.query(now)
	if err != nil || q.Since != "2026-01-02T01:04:05Z" || q.Limit != maxAuditPage {
		t.Errorf("time: %+v %v", q, err)
	}
	if q, err := (auditFlags{all: true}).query(now); err != nil || q.Limit != maxAuditPage {
		t.Errorf("all: %+v %v", q, err)
	}
	for _, f := range []auditFlags{{since: "yesterday", limit: 1}, {since: "-2h", limit: 1}, {limit: 0}, {limit: -4}} {
		if _, err := f.query(now); err == nil {
			t.Errorf("%+v: no error", f)
		}
	}
}

func TestReadToken(t *testing.T) {
	got, err := readToken(strings.NewReader("  hkr_abc \nsecond line\n"), &bytes.Buffer{})
	if err != nil || got != "hkr_abc" {
		t.Errorf("pipe: %q %v", got, err)
	}
	if _, err := readToken(strings.NewReader("\n"), &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "--token") {
		t.Errorf("empty pipe: %v", err)
	}
	for _, bad := range []string{"", "hkr a", "hkr\x1b[2J", strings.Repeat("a", 2000)} {
		if err := checkTokenText(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if err := checkTokenText("hkr_R54Seb8dQExNb2zd-jFDEVTqVUBUsBnf-lzltbpfMu4"); err != nil {
		t.Error(err)
	}
}

// Bad flags are refused before any call: the host named does not exist.
func TestAccountCommands_FlagErrors(t *testing.T) {
	useTokenStore(t)
	nowhere := "http://127.0.0.1:1"
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"user", "add", "bob"}, `"role" not set`},
		{[]string{"user", "add", "bob", "--role", "god"}, "--role"},
		{[]string{"user", "add", "bob", "--role", "user", "--ssh-key-file", "/nonexistent.pub"}, "--ssh-key-file"},
		{[]string{"user", "add", "bob", "--role", "user", "--quota-memory", "8 gigs"}, "--quota-memory"},
		{[]string{"user", "set", "bob"}, "nothing to change"},
		{[]string{"user", "set-role", "bob", "boss"}, "ROLE"},
		{[]string{"user", "show"}, "accepts 1 arg"},
		{[]string{"group", "set", "ml"}, "nothing to change"},
		{[]string{"group", "add", "ml", "--quota-gpus", "-1"}, "--quota-gpus"},
		{[]string{"token", "create", "--ttl", "-1h"}, "--ttl"},
		{[]string{"token", "create", "--ttl", "100000h"}, "--ttl"},
		{[]string{"token", "revoke"}, "accepts 1 arg"},
		{[]string{"audit", "--since", "last week"}, "--since"},
		{[]string{"audit", "--limit", "0"}, "--limit"},
		{[]string{"auth", "login", "--token", "two words"}, "blanks"},
		{[]string{"auth", "bootstrap", "--cluster-token-file", "/nonexistent/token"}, "--cluster-token-file"},
	} {
		_, _, err := runRoot(t, "", append([]string{"--host", nowhere}, tc.args...)...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want one naming %q", tc.args, err, tc.want)
		}
		if err != nil && errors.Is(err, api.ErrNoReplica) {
			t.Errorf("%q: called the host before checking its flags: %v", tc.args, err)
		}
	}
	// Without any cluster token, bootstrap says where to put one.
	t.Setenv(tokenFileEnv, "")
	t.Setenv(configEnv, "")
	_, _, err := runRoot(t, "", "--host", nowhere, "auth", "bootstrap")
	if err == nil || !strings.Contains(err.Error(), "--cluster-token-file") || !strings.Contains(err.Error(), tokenFileEnv) {
		t.Errorf("bootstrap without a token: %v", err)
	}
}

func TestAccountCommands_Help(t *testing.T) {
	for _, path := range [][]string{
		{"auth", "bootstrap"}, {"auth", "login"}, {"auth", "logout"}, {"auth", "whoami"},
		{"user", "add"}, {"user", "list"}, {"user", "show"}, {"user", "remove"}, {"user", "set-role"}, {"user", "set"},
		{"group", "add"}, {"group", "list"}, {"group", "remove"}, {"group", "set"},
		{"token", "create"}, {"token", "list"}, {"token", "revoke"}, {"audit"},
	} {
		out, _, err := runRoot(t, "", append(path, "--help")...)
		if err != nil || !strings.Contains(out, "Examples:") || !strings.Contains(out, "hakuriver "+path[0]) {
			t.Errorf("%q --help: %v\n%s", path, err, out)
		}
	}
}

// openPTY opens a pseudo-terminal pair: the master (the "keyboard and
// screen") and the terminal a program reads.
func openPTY(t *testing.T) (master, term *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	// Through SyscallConn, not Fd: Fd would make the master blocking,
	// and its read deadline useless.
	rc, err := m.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var n int
	var ioErr error
	if err := rc.Control(func(fd uintptr) {
		if ioErr = unix.IoctlSetPointerInt(int(fd), unix.TIOCSPTLCK, 0); ioErr == nil {
			n, ioErr = unix.IoctlGetInt(int(fd), unix.TIOCGPTN)
		}
	}); err != nil || ioErr != nil {
		t.Fatalf("unlock the pty: %v %v", err, ioErr)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open pty: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return m, s
}

// On a terminal the token is asked for and not echoed, and the terminal
// is left as it was.
func TestReadToken_TerminalNoEcho(t *testing.T) {
	master, term := openPTY(t)
	before, err := unix.IoctlGetTermios(int(term.Fd()), unix.TCGETS)
	if err != nil || before.Lflag&unix.ECHO == 0 {
		t.Fatalf("a fresh terminal should echo: %v", err)
	}
	var prompt bytes.Buffer
	type result struct {
		tok string
		err error
	}
	done := make(chan result, 1)
	go func() {
		tok, err := readToken(term, &prompt)
		done <- result{tok, err}
	}()
	// Type once echo is off, as a person would after the prompt.
	deadline := time.Now().Add(5 * time.Second)
	for {
		st, err := unix.IoctlGetTermios(int(term.Fd()), unix.TCGETS)
		if err == nil && st.Lflag&unix.ECHO == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("echo was never turned off")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := master.Write([]byte("hkr_typed-secret\n")); err != nil {
		t.Fatal(err)
	}
	var r result
	select {
	case r = <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("readToken did not return")
	}
	if r.err != nil || r.tok != "hkr_typed-secret" {
		t.Fatalf("token %q, %v", r.tok, r.err)
	}
	if !strings.Contains(prompt.String(), "API token:") {
		t.Errorf("no prompt: %q", prompt.String())
	}
	// Whatever the terminal shows back must not hold the secret.
	master.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	shown := make([]byte, 256)
	n, _ := master.Read(shown)
	if strings.Contains(string(shown[:n]), "secret") {
		t.Errorf("the token was echoed: %q", shown[:n])
	}
	after, err := unix.IoctlGetTermios(int(term.Fd()), unix.TCGETS)
	if err != nil || after.Lflag != before.Lflag {
		t.Errorf("terminal mode not restored: %#x, was %#x (%v)", after.Lflag, before.Lflag, err)
	}
}
