package fsm_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/fsm"
)

// testToken returns a token record of user whose secret is "secret-"+id.
func testToken(id, user string) *fsm.Token {
	sum := sha256.Sum256([]byte("secret-" + id))
	h := hex.EncodeToString(sum[:])
	return &fsm.Token{ID: id, User: user, Name: "t-" + id, Hash: h, CreatedAt: at(0)}
}

func hashOf(id string) string { return testToken(id, "").Hash }

func testUser(name string, role fsm.Role) *fsm.User {
	return &fsm.User{Name: name, Role: role, CreatedAt: at(0)}
}

// bootstrapped returns a harness whose accounts hold admin "root" with
// token 0000aaaa.
func bootstrapped(t *testing.T) *harness {
	h := newHarness(t)
	h.ok(&fsm.BootstrapAuth{Admin: testUser("root", fsm.RoleAdmin), Token: testToken("0000aaaa", "root")})
	return h
}

func TestBootstrapOnce(t *testing.T) {
	h := newHarness(t)
	if h.m.Bootstrapped() {
		t.Fatal("a fresh machine is bootstrapped")
	}
	// Malformed bootstraps are refused and leave no trace.
	h.reject(&fsm.BootstrapAuth{Admin: testUser("root", fsm.RoleUser), Token: testToken("0000aaaa", "root")}, fsm.ErrInvalid)
	h.reject(&fsm.BootstrapAuth{Admin: testUser("root", fsm.RoleAdmin), Token: testToken("0000aaaa", "other")}, fsm.ErrInvalid)
	h.reject(&fsm.BootstrapAuth{Admin: testUser("root", fsm.RoleAdmin)}, fsm.ErrInvalid)
	h.reject(&fsm.BootstrapAuth{Admin: testUser("Root!", fsm.RoleAdmin), Token: testToken("0000aaaa", "Root!")}, fsm.ErrInvalid)
	bad := testToken("0000aaaa", "root")
	bad.Hash = "secret-in-clear"
	h.reject(&fsm.BootstrapAuth{Admin: testUser("root", fsm.RoleAdmin), Token: bad}, fsm.ErrInvalid)
	if h.m.Bootstrapped() || len(h.m.Users()) != 0 {
		t.Fatal("a refused bootstrap left state")
	}

	if r := h.ok(&fsm.BootstrapAuth{Admin: testUser("root", fsm.RoleAdmin), Token: testToken("0000aaaa", "root")}); r.Value != "0000aaaa" {
		t.Fatalf("bootstrap value %v", r.Value)
	}
	if !h.m.Bootstrapped() {
		t.Fatal("not bootstrapped")
	}
	tok, u, ok := h.m.TokenByHash(hashOf("0000aaaa"))
	if !ok || tok.ID != "0000aaaa" || u.Name != "root" || u.Role != fsm.RoleAdmin {
		t.Fatalf("TokenByHash after bootstrap: %+v %+v %v", tok, u, ok)
	}
	// A second bootstrap is refused, whatever it names.
	h.reject(&fsm.BootstrapAuth{Admin: testUser("evil", fsm.RoleAdmin), Token: testToken("0000bbbb", "evil")}, fsm.ErrConflict)
	// Even once the bootstrap admin is gone.
	h.ok(&fsm.PutUser{User: testUser("root2", fsm.RoleAdmin), Create: true})
	h.ok(&fsm.RemoveUser{Name: "root"})
	h.reject(&fsm.BootstrapAuth{Admin: testUser("evil", fsm.RoleAdmin), Token: testToken("0000bbbb", "evil")}, fsm.ErrConflict)
	// It survives a snapshot.
	m2 := fsm.New()
	if err := m2.Restore(bytes.NewReader(snapshotBytes(t, h.m))); err != nil {
		t.Fatal(err)
	}
	if !m2.Bootstrapped() {
		t.Fatal("bootstrapped lost in a snapshot")
	}
}

// TestRefusedBootstrapChangesNothing: a bootstrap refused because its
// token collides must leave an account of the same name as it was (the
// replay generator found it deleted).
func TestRefusedBootstrapChangesNothing(t *testing.T) {
	h := newHarness(t)
	h.ok(&fsm.PutUser{User: testUser("root", fsm.RoleUser), Create: true})
	h.ok(&fsm.CreateToken{Token: testToken("0000aaaa", "root")})
	h.reject(&fsm.BootstrapAuth{Admin: testUser("root", fsm.RoleAdmin), Token: testToken("0000aaaa", "root")}, fsm.ErrConflict)
	if u, ok := h.m.User("root"); !ok || u.Role != fsm.RoleUser {
		t.Fatalf("root after a refused bootstrap: %+v %v", u, ok)
	}
}

func TestLastAdminProtected(t *testing.T) {
	h := bootstrapped(t)
	h.reject(&fsm.RemoveUser{Name: "root"}, fsm.ErrConflict)
	demoted := testUser("root", fsm.RoleOperator)
	h.reject(&fsm.PutUser{User: demoted}, fsm.ErrConflict)
	// With a second admin, either may go, but not both.
	h.ok(&fsm.PutUser{User: testUser("ada", fsm.RoleAdmin), Create: true})
	h.ok(&fsm.PutUser{User: demoted})
	if u, _ := h.m.User("root"); u.Role != fsm.RoleOperator {
		t.Fatalf("root is %s", u.Role)
	}
	h.reject(&fsm.RemoveUser{Name: "ada"}, fsm.ErrConflict)
	h.reject(&fsm.PutUser{User: testUser("ada", fsm.RoleViewer)}, fsm.ErrConflict)
	// Replacing the last admin with an admin record is fine.
	ada := testUser("ada", fsm.RoleAdmin)
	ada.SSHKeys = []string{"ssh-ed25519 AAAA ada@x"}
	h.ok(&fsm.PutUser{User: ada})
	h.ok(&fsm.RemoveUser{Name: "root"})
	if len(h.m.Users()) != 1 {
		t.Fatalf("users %+v", h.m.Users())
	}
}

func TestUsersAndGroups(t *testing.T) {
	h := bootstrapped(t)
	h.reject(&fsm.PutUser{User: testUser("root", fsm.RoleAdmin), Create: true}, fsm.ErrConflict)
	h.reject(&fsm.PutUser{User: testUser("ghost", fsm.RoleUser)}, fsm.ErrNotFound)
	h.reject(&fsm.PutUser{User: testUser("bad", "superuser"), Create: true}, fsm.ErrInvalid)
	h.reject(&fsm.PutUser{Create: true}, fsm.ErrInvalid)
	withKey := testUser("kay", fsm.RoleUser)
	withKey.SSHKeys = []string{"ssh-ed25519 AAAA\nssh-rsa BBBB"}
	h.reject(&fsm.PutUser{User: withKey, Create: true}, fsm.ErrInvalid)
	neg := testUser("neg", fsm.RoleUser)
	neg.Quota.Cores = -1
	h.reject(&fsm.PutUser{User: neg, Create: true}, fsm.ErrInvalid)
	h.reject(&fsm.RemoveUser{Name: "ghost"}, fsm.ErrNotFound)

	alice := testUser("alice", fsm.RoleUser)
	alice.Groups = []string{"ml"}
	alice.Policy.Mounts = true
	h.ok(&fsm.PutUser{User: alice, Create: true})
	// The machine keeps a copy: changing the command afterwards changes
	// nothing.
	alice.Groups[0] = "evil"
	if u, _ := h.m.User("alice"); u.Groups[0] != "ml" {
		t.Fatalf("the machine aliases the command's slices: %+v", u)
	}
	h.reject(&fsm.PutGroup{Group: &fsm.Group{Name: "Bad Name"}, Create: true}, fsm.ErrInvalid)
	h.reject(&fsm.PutGroup{Group: &fsm.Group{Name: "ml"}}, fsm.ErrNotFound)
	h.ok(&fsm.PutGroup{Group: &fsm.Group{Name: "ml", Policy: fsm.Policy{Privileged: true}}, Create: true})
	h.reject(&fsm.PutGroup{Group: &fsm.Group{Name: "ml"}, Create: true}, fsm.ErrConflict)
	u, _ := h.m.User("alice")
	if p := h.m.EffectivePolicy(u); !p.Privileged || !p.Mounts || p.RunAsRoot {
		t.Fatalf("effective policy %+v", p)
	}
	h.ok(&fsm.RemoveGroup{Name: "ml"})
	h.reject(&fsm.RemoveGroup{Name: "ml"}, fsm.ErrNotFound)
	if p := h.m.EffectivePolicy(u); p.Privileged || !p.Mounts {
		t.Fatalf("effective policy after the group went: %+v", p)
	}
}

func TestTokensAddRevoke(t *testing.T) {
	h := bootstrapped(t)
	h.ok(&fsm.PutUser{User: testUser("alice", fsm.RoleUser), Create: true})
	h.reject(&fsm.CreateToken{Token: testToken("1111aaaa", "ghost")}, fsm.ErrNotFound)
	h.reject(&fsm.CreateToken{}, fsm.ErrInvalid)
	h.reject(&fsm.CreateToken{Token: testToken("NOTHEX!!", "alice")}, fsm.ErrInvalid)
	long := testToken("1111aaaa", "alice")
	long.Name = strings.Repeat("n", fsm.MaxTokenName+1)
	h.reject(&fsm.CreateToken{Token: long}, fsm.ErrInvalid)
	h.ok(&fsm.CreateToken{Token: testToken("1111aaaa", "alice")})
	h.reject(&fsm.CreateToken{Token: testToken("1111aaaa", "alice")}, fsm.ErrConflict)
	sameHash := testToken("1111aaaa", "alice")
	sameHash.ID = "2222bbbb"
	h.reject(&fsm.CreateToken{Token: sameHash}, fsm.ErrConflict)
	exp := testToken("3333cccc", "alice")
	exp.ExpiresAt = timep(at(60))
	h.ok(&fsm.CreateToken{Token: exp})

	if got := h.m.Tokens("alice"); len(got) != 2 || got[0].ID != "1111aaaa" || got[1].ID != "3333cccc" {
		t.Fatalf("alice's tokens %+v", got)
	}
	if got := h.m.Tokens(""); len(got) != 3 {
		t.Fatalf("all tokens %+v", got)
	}
	tok, _, ok := h.m.TokenByHash(hashOf("3333cccc"))
	if !ok || tok.Expired(at(59)) || !tok.Expired(at(60)) {
		t.Fatalf("expiry of %+v", tok)
	}
	h.ok(&fsm.RevokeToken{ID: "1111aaaa"})
	h.reject(&fsm.RevokeToken{ID: "1111aaaa"}, fsm.ErrNotFound)
	if _, _, ok := h.m.TokenByHash(hashOf("1111aaaa")); ok {
		t.Fatal("a revoked token still authenticates")
	}
	if _, ok := h.m.TokenByID("1111aaaa"); ok {
		t.Fatal("a revoked token is still listed")
	}
	// The revoked hash may be added again (a new record).
	h.ok(&fsm.CreateToken{Token: testToken("1111aaaa", "alice")})
	// Removing a user removes their tokens.
	h.ok(&fsm.RemoveUser{Name: "alice"})
	for _, id := range []string{"1111aaaa", "3333cccc"} {
		if _, _, ok := h.m.TokenByHash(hashOf(id)); ok {
			t.Fatalf("token %s of a removed user authenticates", id)
		}
	}
	if got := h.m.Tokens(""); len(got) != 1 || got[0].User != "root" {
		t.Fatalf("tokens after removing alice: %+v", got)
	}
	// A user of the same name created later does not inherit them.
	h.ok(&fsm.PutUser{User: testUser("alice", fsm.RoleUser), Create: true})
	if _, _, ok := h.m.TokenByHash(hashOf("3333cccc")); ok {
		t.Fatal("a re-created user inherits the old tokens")
	}
}

// audited wraps c with a record by user at sec, bounded by keep and maxAge.
func audited(t *testing.T, c fsm.Command, user string, sec, keep int, maxAge time.Duration) *fsm.Audited {
	t.Helper()
	a, err := fsm.Wrap(c, fsm.AuditRecord{At: at(sec), User: user, Role: fsm.RoleAdmin, Via: "h1", RequestID: fmt.Sprintf("r%d", sec)}, keep, maxAge)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func auditSeqs(m *fsm.Machine) []uint64 {
	recs, _ := m.Audit(fsm.AuditFilter{}, 1<<20)
	var out []uint64
	for _, r := range recs {
		out = append(out, r.Seq)
	}
	return out
}

func TestAuditRecords(t *testing.T) {
	h := bootstrapped(t)
	// A rejected command leaves no record and no change.
	h.reject(audited(t, &fsm.RemoveUser{Name: "ghost"}, "root", 1, 0, 0), fsm.ErrNotFound)
	if n := len(auditSeqs(h.m)); n != 0 {
		t.Fatalf("%d records after a rejected command", n)
	}
	h.ok(audited(t, &fsm.PutUser{User: testUser("alice", fsm.RoleUser), Create: true}, "root", 2, 0, 0))
	seq := h.idx
	h.ok(audited(t, &fsm.SubmitTasks{Tasks: []*fsm.Task{newTask(1), newTask(2)}}, "alice", 3, 0, 0))
	recs, more := h.m.Audit(fsm.AuditFilter{}, 10)
	if more || len(recs) != 2 {
		t.Fatalf("records %+v more %v", recs, more)
	}
	if r := recs[0]; r.Seq != seq || r.User != "root" || r.Action != "put_user" || r.Via != "h1" || r.RequestID != "r2" || !r.At.Equal(at(2)) {
		t.Fatalf("first record %+v", r)
	}
	if r := recs[1]; r.Target != "task 1 (+1)" || r.Action != "submit_tasks" {
		t.Fatalf("submit record %+v", r)
	}
	if tk := h.task(2); tk.TaskID != 2 {
		t.Fatal("the wrapped submit did not apply")
	}
	// A retried submit (same request ID) creates nothing and is not
	// recorded a second time.
	h.ok(audited(t, &fsm.SubmitTasks{RequestID: "again", Tasks: []*fsm.Task{newTask(5)}}, "alice", 3, 0, 0))
	h.ok(audited(t, &fsm.SubmitTasks{RequestID: "again", Tasks: []*fsm.Task{newTask(6)}}, "alice", 3, 0, 0))
	if got, _ := h.m.Audit(fsm.AuditFilter{User: "alice"}, 10); len(got) != 2 {
		t.Fatalf("records of alice after a first submit and a retried one: %+v", got)
	}
	h.reject(audited(t, &fsm.RemoveUser{Name: "ghost"}, "root", 3, 0, 0), fsm.ErrNotFound) // keeps the record count below
	if got, _ := h.m.Audit(fsm.AuditFilter{Since: at(3)}, 10); len(got) != 2 {
		t.Fatalf("since at(3): %+v", got)
	}
	// Filters and paging.
	if got, _ := h.m.Audit(fsm.AuditFilter{User: "root"}, 10); len(got) != 1 || got[0].User != "root" {
		t.Fatalf("by user: %+v", got)
	}
	if got, more := h.m.Audit(fsm.AuditFilter{}, 1); len(got) != 1 || !more {
		t.Fatalf("limit 1: %+v %v", got, more)
	}
	if got, _ := h.m.Audit(fsm.AuditFilter{After: seq}, 10); len(got) != 2 || got[0].Seq <= seq {
		t.Fatalf("after %d: %+v", seq, got)
	}
	// Nested envelopes cannot be made, and one written by hand is an
	// unreadable entry: it halts the replica rather than being guessed at.
	inner := audited(t, &fsm.RemoveGroup{Name: "x"}, "root", 4, 0, 0)
	if _, err := fsm.Wrap(inner, fsm.AuditRecord{}, 0, 0); err == nil {
		t.Fatal("Wrap nests an envelope")
	}
	m := fsm.New()
	nested := encode(t, &fsm.Audited{Record: fsm.AuditRecord{User: "x"}, Command: encode(t, inner)})
	if r := m.Apply(1, nested); !errors.Is(r.Err, fsm.ErrHalted) {
		t.Fatalf("nested envelope: %v, want a halt", r.Err)
	}
}

func TestAuditPruneByCount(t *testing.T) {
	h := bootstrapped(t)
	var seqs []uint64
	for i := range 10 {
		h.ok(audited(t, &fsm.PutGroup{Group: &fsm.Group{Name: fmt.Sprintf("g%d", i)}, Create: true}, "root", i, 4, 0))
		seqs = append(seqs, h.idx)
	}
	if got := auditSeqs(h.m); fmt.Sprint(got) != fmt.Sprint(seqs[6:]) {
		t.Fatalf("keep 4: records %v, want %v", got, seqs[6:])
	}
	// A later entry with a larger bound keeps what is there.
	h.ok(audited(t, &fsm.RemoveGroup{Name: "g0"}, "root", 11, 100, 0))
	if n := len(auditSeqs(h.m)); n != 5 {
		t.Fatalf("%d records, want 5", n)
	}
	// Keep 0 means no bound.
	for i := range 20 {
		h.ok(audited(t, &fsm.PutGroup{Group: &fsm.Group{Name: fmt.Sprintf("h%d", i)}, Create: true}, "root", 12+i, 0, 0))
	}
	if n := len(auditSeqs(h.m)); n != 25 {
		t.Fatalf("%d records with keep 0, want 25", n)
	}
}

func TestAuditPruneByAge(t *testing.T) {
	h := bootstrapped(t)
	for i := range 5 {
		h.ok(audited(t, &fsm.PutGroup{Group: &fsm.Group{Name: fmt.Sprintf("g%d", i)}, Create: true}, "root", i*10, 0, 0))
	}
	// Records at 0,10,20,30,40 s; a record at 45 s with max age 20 s keeps
	// those at or after 25 s: 30, 40, 45.
	h.ok(audited(t, &fsm.RemoveGroup{Name: "g0"}, "root", 45, 0, 20*time.Second))
	recs, _ := h.m.Audit(fsm.AuditFilter{}, 100)
	var ats []int
	for _, r := range recs {
		ats = append(ats, int(r.At.Sub(t0)/time.Second))
	}
	if fmt.Sprint(ats) != "[30 40 45]" {
		t.Fatalf("records at %v s, want [30 40 45]", ats)
	}
	// Count and age together: the stricter wins.
	h.ok(audited(t, &fsm.RemoveGroup{Name: "g1"}, "root", 46, 2, time.Hour))
	if n := len(auditSeqs(h.m)); n != 2 {
		t.Fatalf("%d records, want 2", n)
	}
	// Pruning is a function of the log alone: a replica restored from a
	// snapshot and replaying the same entry prunes the same way.
	snap := snapshotBytes(t, h.m)
	m2 := fsm.New()
	if err := m2.Restore(bytes.NewReader(snap)); err != nil {
		t.Fatal(err)
	}
	e := encode(t, audited(t, &fsm.RemoveGroup{Name: "g2"}, "root", 400, 0, time.Minute))
	h.applyRaw(e)
	m2.Apply(h.idx, e)
	if !bytes.Equal(snapshotBytes(t, h.m), snapshotBytes(t, m2)) {
		t.Fatal("restored replica prunes differently")
	}
	if n := len(auditSeqs(h.m)); n != 1 {
		t.Fatalf("%d records after an entry 5 minutes later with max age 1m, want 1", n)
	}
}

func TestAccountsSnapshotRoundTrip(t *testing.T) {
	h := bootstrapped(t)
	alice := testUser("alice", fsm.RoleUser)
	alice.UnixUser = "1001:1001"
	alice.SSHKeys = []string{"ssh-ed25519 AAAAC3 alice@laptop"}
	alice.Groups = []string{"ml", "gone"}
	alice.Quota = fsm.Quota{Cores: 8, MemoryBytes: 1 << 34, GPUs: 1, RunningTasks: 5, VPS: 1}
	alice.Policy = fsm.Policy{Mounts: true}
	h.ok(audited(t, &fsm.PutUser{User: alice, Create: true}, "root", 1, 0, 0))
	h.ok(&fsm.PutGroup{Group: &fsm.Group{Name: "ml", Quota: fsm.Quota{GPUs: 4}, Policy: fsm.Policy{RunAsRoot: true}, CreatedAt: at(2)}, Create: true})
	exp := testToken("1111aaaa", "alice")
	exp.ExpiresAt = timep(at(3600))
	h.ok(audited(t, &fsm.CreateToken{Token: exp}, "alice", 3, 0, 0))
	h.ok(&fsm.CreateToken{Token: testToken("2222bbbb", "root")})
	h.ok(&fsm.RevokeToken{ID: "2222bbbb"})

	snap := snapshotBytes(t, h.m)
	for _, secret := range []string{"secret-1111aaaa", "secret-0000aaaa"} {
		if bytes.Contains(snap, []byte(secret)) {
			t.Fatalf("the snapshot holds a token secret %q", secret)
		}
	}
	if !bytes.Contains(snap, []byte(hashOf("1111aaaa"))) {
		t.Fatal("the snapshot lacks a token hash")
	}
	if bytes.Contains(snap, []byte(hashOf("2222bbbb"))) {
		t.Fatal("the snapshot keeps a revoked token")
	}
	m2 := fsm.New()
	if err := m2.Restore(bytes.NewReader(snap)); err != nil {
		t.Fatal(err)
	}
	if got := snapshotBytes(t, m2); !bytes.Equal(got, snap) {
		assertSameState(t, "restored accounts", snap, got)
	}
	u, ok := m2.User("alice")
	if !ok || fmt.Sprint(u) != fmt.Sprint(*alice) {
		t.Fatalf("restored alice %+v, want %+v", u, *alice)
	}
	tok, tu, ok := m2.TokenByHash(hashOf("1111aaaa"))
	if !ok || tu.Name != "alice" || tok.ExpiresAt == nil || !tok.ExpiresAt.Equal(at(3600)) {
		t.Fatalf("restored token %+v of %+v", tok, tu)
	}
	if _, _, ok := m2.TokenByHash(hashOf("2222bbbb")); ok {
		t.Fatal("restored machine knows a revoked token")
	}
	if p := m2.EffectivePolicy(u); !p.RunAsRoot || !p.Mounts {
		t.Fatalf("restored effective policy %+v", p)
	}
	if fmt.Sprint(auditSeqs(m2)) != fmt.Sprint(auditSeqs(h.m)) || len(auditSeqs(m2)) != 2 {
		t.Fatalf("restored audit %v, want %v", auditSeqs(m2), auditSeqs(h.m))
	}
	// The restored replica goes on exactly like the original.
	next := [][]byte{
		encode(t, &fsm.RemoveUser{Name: "root"}),
		encode(t, audited(t, &fsm.RevokeToken{ID: "1111aaaa"}, "alice", 9, 2, 0)),
		encode(t, &fsm.BootstrapAuth{Admin: testUser("x", fsm.RoleAdmin), Token: testToken("9999ffff", "x")}),
	}
	r1 := applyAll(h.m, h.idx+1, next)
	r2 := applyAll(m2, h.idx+1, next)
	if fmt.Sprint(r1) != fmt.Sprint(r2) {
		t.Fatalf("results after restore differ: %v vs %v", r1, r2)
	}
	if !bytes.Equal(snapshotBytes(t, h.m), snapshotBytes(t, m2)) {
		t.Fatal("states after restore differ")
	}

	// Without any account the snapshot has no accounts key: states from
	// before accounts encode as before.
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(snapshotBytes(t, fsm.New()), &fields); err != nil {
		t.Fatal(err)
	}
	if _, ok := fields["accounts"]; ok {
		t.Fatal("an empty machine's snapshot has an accounts key")
	}
	if _, ok := fields["audit"]; ok {
		t.Fatal("an empty machine's snapshot has an audit key")
	}
}

func TestAccountQueriesAreCopies(t *testing.T) {
	h := bootstrapped(t)
	u := testUser("alice", fsm.RoleUser)
	u.SSHKeys = []string{"k1"}
	h.ok(&fsm.PutUser{User: u, Create: true})
	h.ok(&fsm.CreateToken{Token: testToken("1111aaaa", "alice")})
	before := stateBytes(t, h.m)
	got, _ := h.m.User("alice")
	got.SSHKeys[0] = "evil"
	_, tu, _ := h.m.TokenByHash(hashOf("1111aaaa"))
	tu.SSHKeys[0] = "evil"
	tu.Role = fsm.RoleAdmin
	for _, x := range h.m.Users() {
		if len(x.SSHKeys) > 0 {
			x.SSHKeys[0] = "evil"
		}
	}
	assertSameState(t, "after changing query results", before, stateBytes(t, h.m))
}
