package cluster

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/fsm"
)

// accountClient is an api.Client of the replica at url sending the cluster
// token (clusterToken) or an account's token (bearer).
func accountClient(t *testing.T, url, clusterToken, bearer string) *api.Client {
	t.Helper()
	cfg := api.DefaultClientConfig()
	cfg.Hosts = []string{url}
	cfg.Token, cfg.Bearer = clusterToken, bearer
	c, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func wantStatus(t *testing.T, err error, status int, what string) {
	t.Helper()
	var ae *api.APIError
	if !errors.As(err, &ae) || ae.StatusCode != status {
		t.Fatalf("%s: %v, want HTTP %d", what, err, status)
	}
}

// TestAccountClientEveryEndpoint calls every account endpoint through
// api.Client on a follower of a real three-replica cluster (writes are
// forwarded to the leader) and checks each answer.
func TestAccountClientEveryEndpoint(t *testing.T) {
	hosts := startCluster(t, 3)
	var follower *Host
	for _, h := range hosts {
		if !h.IsLeader() {
			follower = h
			break
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	url := follower.APIURL()

	boot, err := accountClient(t, url, testToken, "").Bootstrap(ctx, "")
	if err != nil || boot.User != "admin" || boot.Role != fsm.RoleAdmin || boot.Token == "" || boot.TokenID == "" {
		t.Fatalf("bootstrap: %+v %v", boot, err)
	}
	_, err = accountClient(t, url, testToken, "").Bootstrap(ctx, "again")
	wantStatus(t, err, http.StatusConflict, "second bootstrap")
	// The follower forwarded the write and answered once it had applied
	// it: the new token works there at once (read your writes).
	admin := accountClient(t, url, "", boot.Token)

	who, err := admin.WhoAmI(ctx)
	if err != nil || who.User != "admin" || who.TokenID != boot.TokenID || who.Anonymous {
		t.Fatalf("whoami: %+v %v", who, err)
	}
	anon, err := accountClient(t, url, "", "").WhoAmI(ctx)
	if err != nil || !anon.Anonymous || anon.Role != fsm.RoleOperator {
		t.Fatalf("anonymous whoami: %+v %v", anon, err)
	}

	grp, err := admin.CreateGroup(ctx, api.GroupRequest{Name: "ml", Quota: fsm.Quota{GPUs: 4}})
	if err != nil || grp.Name != "ml" || grp.Quota.GPUs != 4 {
		t.Fatalf("create group: %+v %v", grp, err)
	}
	grp, err = admin.PatchGroup(ctx, "ml", api.GroupPatch{Policy: &fsm.Policy{Mounts: true}})
	if err != nil || !grp.Policy.Mounts || grp.Quota.GPUs != 4 {
		t.Fatalf("patch group: %+v %v", grp, err)
	}
	u, err := admin.CreateUser(ctx, api.UserRequest{Name: "bob", Role: fsm.RoleUser, Groups: []string{"ml"}})
	if err != nil || u.Name != "bob" || u.CreatedAt.IsZero() {
		t.Fatalf("create user: %+v %v", u, err)
	}
	_, err = admin.CreateUser(ctx, api.UserRequest{Name: "bob", Role: fsm.RoleUser})
	wantStatus(t, err, http.StatusConflict, "duplicate user")
	unix := "1001:1001"
	u, err = admin.PatchUser(ctx, "bob", api.UserPatch{UnixUser: &unix, Quota: &fsm.Quota{Cores: 2}})
	if err != nil || u.UnixUser != unix || u.Quota.Cores != 2 || u.Role != fsm.RoleUser {
		t.Fatalf("patch user: %+v %v", u, err)
	}
	if u, err = admin.User(ctx, "bob"); err != nil || u.UnixUser != unix {
		t.Fatalf("get user: %+v %v", u, err)
	}
	_, err = admin.User(ctx, "nobody")
	wantStatus(t, err, http.StatusNotFound, "unknown user")
	if users, err := admin.Users(ctx); err != nil || len(users) != 2 {
		t.Fatalf("users: %+v %v", users, err)
	}
	if groups, err := admin.Groups(ctx); err != nil || len(groups) != 1 {
		t.Fatalf("groups: %+v %v", groups, err)
	}

	tok, err := admin.CreateToken(ctx, api.TokenRequest{User: "bob", Name: "laptop", TTL: "1h"})
	if err != nil || tok.User != "bob" || tok.ExpiresAt == nil || tok.Token == "" {
		t.Fatalf("create token: %+v %v", tok, err)
	}
	bob := accountClient(t, url, "", tok.Token)
	if who, err := bob.WhoAmI(ctx); err != nil || who.User != "bob" || who.Role != fsm.RoleUser {
		t.Fatalf("bob's whoami: %+v %v", who, err)
	}
	own, err := bob.CreateToken(ctx, api.TokenRequest{Name: "second"})
	if err != nil || own.User != "bob" {
		t.Fatalf("bob's own token: %+v %v", own, err)
	}
	if toks, err := bob.Tokens(ctx, ""); err != nil || len(toks) != 2 {
		t.Fatalf("bob's tokens: %+v %v", toks, err)
	}
	_, err = bob.Tokens(ctx, "admin")
	wantStatus(t, err, http.StatusForbidden, "bob listing the admin's tokens")
	if toks, err := admin.Tokens(ctx, "bob"); err != nil || len(toks) != 2 {
		t.Fatalf("admin listing bob's tokens: %+v %v", toks, err)
	}
	if toks, err := admin.Tokens(ctx, ""); err != nil || len(toks) != 3 {
		t.Fatalf("admin listing every token: %+v %v", toks, err)
	}
	_, err = bob.CreateUser(ctx, api.UserRequest{Name: "eve", Role: fsm.RoleAdmin})
	wantStatus(t, err, http.StatusForbidden, "bob creating an account")

	login, err := accountClient(t, url, "", "").Login(ctx, tok.Token)
	if err != nil || login.User != "bob" || login.CSRF == "" {
		t.Fatalf("login: %+v %v", login, err)
	}
	if err := accountClient(t, url, "", "").Logout(ctx); err != nil {
		t.Fatalf("logout: %v", err)
	}

	if err := bob.RevokeToken(ctx, own.TokenID); err != nil {
		t.Fatalf("bob revoking his own token: %v", err)
	}
	if err := admin.RevokeToken(ctx, tok.TokenID); err != nil {
		t.Fatalf("admin revoking bob's token: %v", err)
	}
	// Revoked through the follower, refused by it at once.
	_, err = bob.WhoAmI(ctx)
	wantStatus(t, err, http.StatusUnauthorized, "whoami with a revoked token")

	// Audit, paged two at a time, oldest first, every record once.
	var recs []fsm.AuditRecord
	q := api.AuditQuery{Limit: 2}
	for range 50 {
		page, err := admin.Audit(ctx, q)
		if err != nil {
			t.Fatalf("audit: %v", err)
		}
		recs = append(recs, page.Records...)
		if page.NextAfter == "" {
			break
		}
		q.After = page.NextAfter
	}
	// bootstrap, 2 groups, 2 users, 2 tokens created, 2 revoked, the
	// login's session token (created by bob), revoked with the token bob
	// signed in with.
	if len(recs) != 11 {
		t.Fatalf("audit has %d records, want 11: %+v", len(recs), recs)
	}
	for i := 1; i < len(recs); i++ {
		if recs[i].Seq <= recs[i-1].Seq {
			t.Fatalf("audit not in order: %+v", recs)
		}
	}
	if page, err := admin.Audit(ctx, api.AuditQuery{User: "bob", Since: "1h"}); err != nil || len(page.Records) != 3 {
		t.Fatalf("bob's audit records: %+v %v", page, err)
	}

	if err := admin.DeleteGroup(ctx, "ml"); err != nil {
		t.Fatalf("delete group: %v", err)
	}
	if err := admin.DeleteUser(ctx, "bob"); err != nil {
		t.Fatalf("delete user: %v", err)
	}
	err = admin.DeleteUser(ctx, "admin")
	wantStatus(t, err, http.StatusConflict, "removing the last admin")
	if err := admin.DeleteUser(ctx, ""); err == nil {
		t.Fatal("an empty name reached the API")
	}
}
