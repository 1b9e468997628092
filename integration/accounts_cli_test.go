//go:build integration

package integration

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/fsm"
	"github.com/hakuriver/hakuriver-ha/integration/harness"
)

// TestAccountsCLIEndToEnd drives the accounts of a real three-replica
// cluster with the real CLI only: `auth bootstrap --save` with the cluster
// token makes the first admin, who adds bob and a token for him; bob logs
// in with the token on standard input into his own token store
// ($HAKURIVER_CREDENTIALS in a temp dir, mode 0600) and `auth whoami` shows
// bob through every replica; bob may not add accounts (the server's 403 is
// shown); once the admin revokes the token, bob's next call fails with 401
// on every replica.
func TestAccountsCLIEndToEnd(t *testing.T) {
	c := startCluster(t, harness.Options{NoBootstrap: true})

	// The harness's CLI runs have no token yet: bootstrap saves the admin's
	// into the harness's token store, which every later c.CLI sends.
	r := c.CLIOK("auth", "bootstrap", "--cluster-token-file", c.TokenFile(), "--save")
	if !strings.Contains(r.Stdout, "shown only this once") || !strings.Contains(r.Stdout, "hkr_") || !strings.Contains(r.Stdout, "Saved in") {
		t.Fatalf("bootstrap output: %s", r)
	}
	var who api.WhoAmI
	if err := c.CLIOK("-o", "json", "auth", "whoami").Decode(&who); err != nil || who.User != "admin" || who.Role != fsm.RoleAdmin {
		t.Fatalf("whoami after bootstrap --save: %+v %v", who, err)
	}
	if r := c.CLI("auth", "bootstrap", "--cluster-token-file", c.TokenFile()); r.Code == 0 || !strings.Contains(r.Stderr, "bootstrapped already") || !strings.Contains(r.Stderr, "HTTP 409") {
		t.Fatalf("a second bootstrap: want the server's 409: %s", r)
	}

	c.CLIOK("user", "add", "bob", "--role", "user")
	var tok api.TokenResponse
	if err := c.CLIOK("-o", "json", "token", "create", "--user", "bob", "--name", "e2e", "--ttl", "24h").Decode(&tok); err != nil || tok.User != "bob" || tok.Token == "" {
		t.Fatalf("token create: %+v %v", tok, err)
	}

	store := filepath.Join(t.TempDir(), "bob", "tokens.json")
	asBob := func(host, stdin string, args ...string) harness.CLIResult {
		return harness.RunCLI(context.Background(), harness.CLICommand{Bin: c.Bin(), Stdin: stdin,
			Args: append([]string{"--host", host}, args...), Env: []string{"HAKURIVER_CREDENTIALS=" + store}})
	}
	r = asBob(c.HostFlag(), tok.Token+"\n", "auth", "login")
	if r.Code != 0 || !strings.Contains(r.Stdout, "as bob") {
		t.Fatalf("bob's login: %s", r)
	}
	st, err := os.Stat(store)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("bob's token store: %v %v, want mode 0600", st, err)
	}
	if b, _ := os.ReadFile(store); !strings.Contains(string(b), tok.Token) {
		t.Fatalf("the store does not hold bob's token: %s", b)
	}
	// The store is keyed by the first replica: each replica first in turn
	// is its own entry, so log in through each and ask each.
	for i := range c.N() {
		host := c.HostFlag(append([]int{i}, others(c.N(), i)...)...)
		if i > 0 {
			if r := asBob(host, tok.Token, "auth", "login"); r.Code != 0 {
				t.Fatalf("login via replica %d: %s", i, r)
			}
		}
		r := asBob(host, "", "-o", "json", "auth", "whoami")
		var who api.WhoAmI
		if r.Code != 0 || r.Decode(&who) != nil || who.User != "bob" || who.Role != fsm.RoleUser || who.TokenID != tok.TokenID {
			t.Fatalf("whoami via replica %d: %+v %s", i, who, r)
		}
	}
	if r := asBob(c.HostFlag(), "", "user", "add", "eve", "--role", "admin"); r.Code == 0 || !strings.Contains(r.Stderr, "HTTP 403") || !strings.Contains(r.Stderr, "needs role admin") {
		t.Fatalf("bob adding an account: want the server's 403 as is: %s", r)
	}

	c.CLIOK("token", "revoke", tok.TokenID)
	for i := range c.N() {
		host := c.HostFlag(i)
		// A follower refuses the token from the moment it applies the
		// revocation: within moments.
		deadline := time.Now().Add(5 * time.Second)
		for {
			r := asBob(host, "", "auth", "whoami")
			if r.Code != 0 && strings.Contains(r.Stderr, "HTTP 401") && strings.Contains(r.Stderr, "authentication required") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("a revoked token still works on replica %d: %s", i, r)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	if r := asBob(c.HostFlag(), "", "task", "list"); r.Code == 0 || !strings.Contains(r.Stderr, "HTTP 401") {
		t.Fatalf("bob listing tasks with a revoked token: %s", r)
	}

	// The audit log has it all, paged through by the CLI.
	var recs []fsm.AuditRecord
	if err := c.CLIOK("-o", "json", "audit", "--all").Decode(&recs); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, rec := range recs {
		seen[rec.User+" "+rec.Action+" "+strings.Fields(rec.Target + " x")[0]] = true
	}
	for _, want := range []string{"cluster bootstrap_auth user", "admin put_user user", "admin create_token token", "admin revoke_token token"} {
		if !seen[want] {
			t.Errorf("audit lacks %q: %+v", want, recs)
		}
	}
}

// others returns 0..n-1 without i.
func others(n, i int) []int {
	var out []int
	for j := range n {
		if j != i {
			out = append(out, j)
		}
	}
	return out
}
