package httpapi

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/cluster/auth"
	"github.com/hakuriver/hakuriver-ha/fsm"
)

// AccountReader is a read-only view of the replicated accounts
// (*fsm.Machine is one).
type AccountReader interface {
	Bootstrapped() bool
	User(name string) (fsm.User, bool)
	Users() []fsm.User
	Group(name string) (fsm.Group, bool)
	Groups() []fsm.Group
	Tokens(user string) []fsm.Token
	TokenByID(id string) (fsm.Token, bool)
	TokenByHash(hash string) (fsm.Token, fsm.User, bool)
	Audit(f fsm.AuditFilter, limit int) ([]fsm.AuditRecord, bool)
	// EffectivePolicy joins a user's policy with their groups'.
	EffectivePolicy(u fsm.User) fsm.Policy
}

// maxAccountBody bounds the body of every account call.
const maxAccountBody = 256 << 10

// maxTokenTTL bounds a token's lifetime when one is given.
const maxTokenTTL = 10 * 365 * 24 * time.Hour

// principal returns the caller the route table authenticated.
func principal(r *http.Request) auth.Principal {
	p, _ := auth.FromContext(r.Context())
	return p
}

// ownerName is the owner recorded on what p submits.
func ownerName(p auth.Principal) string {
	if p.Kind == auth.Account {
		return p.Name
	}
	return auth.AnonymousName
}

// mayActOn is nil when p may kill, pause, resume or read the logs of t:
// its owner, or an operator or admin.
func mayActOn(p auth.Principal, t *fsm.Task, what string) error {
	if p.Can(fsm.RoleOperator) || p.Can(fsm.RoleUser) && p.Owns(t.Owner) {
		return nil
	}
	owner := t.Owner
	if owner == "" {
		owner = auth.AnonymousName
	}
	return forbidden(fmt.Sprintf("forbidden: task %d belongs to %s; only its owner or an operator may %s it", t.TaskID, owner, what))
}

func forbidden(msg string) error { return &httpError{status: http.StatusForbidden, msg: msg} }

func conflict(format string, args ...any) error {
	return &httpError{status: http.StatusConflict, msg: fmt.Sprintf(format, args...)}
}

// The checks below turn bad input away before it is proposed, so that it
// never reaches the Raft log; Apply makes the same checks, authoritatively.

// lastAdmin reports whether name is the only admin account.
func (a *API) lastAdmin(name string) bool {
	u, ok := a.d.Accounts.User(name)
	if !ok || u.Role != fsm.RoleAdmin {
		return false
	}
	for _, o := range a.d.Accounts.Users() {
		if o.Name != name && o.Role == fsm.RoleAdmin {
			return false
		}
	}
	return true
}

// checkGroup validates a group before it is proposed.
func checkGroup(g *fsm.Group) error {
	switch {
	case !fsm.NameRE().MatchString(g.Name):
		return badRequest("name %q: want 1-32 characters a-z 0-9 _ . - starting with a letter or _", g.Name)
	case !g.Quota.Valid():
		return badRequest("quota: limits must not be negative")
	}
	return nil
}

func (a *API) decodeBody(w http.ResponseWriter, r *http.Request, v any, emptyOK bool) error {
	body, err := readBody(w, r, maxAccountBody)
	if err != nil {
		return err
	}
	if len(body) == 0 && emptyOK {
		return nil
	}
	return decodeStrict(body, v)
}

// propose applies c and answers err on failure; it reports success.
func (a *API) propose(w http.ResponseWriter, r *http.Request, c fsm.Command) (any, bool) {
	ctx, cancel := ApplyContext(r)
	defer cancel()
	v, err := a.d.Proposer.Propose(ctx, c)
	if err != nil {
		writeError(w, err)
		return nil, false
	}
	return v, true
}

// Bootstrap creates the first admin account and its token: POST
// /api/auth/bootstrap, cluster token only, refused (409) once done. The
// admin gets the run_as_root policy.
func (a *API) Bootstrap(w http.ResponseWriter, r *http.Request) {
	var req api.BootstrapRequest
	if err := a.decodeBody(w, r, &req, true); err != nil {
		writeError(w, err)
		return
	}
	if req.User == "" {
		req.User = "admin"
	}
	if !fsm.NameRE().MatchString(req.User) || fsm.ReservedName(req.User) {
		writeError(w, badRequest("user %q: want 1-32 characters a-z 0-9 _ . - starting with a letter or _, not anonymous or cluster", req.User))
		return
	}
	if req.Token != "" && !auth.LooksLikeSecret(req.Token) {
		writeError(w, badRequest("token: want %s followed by 43 base64url characters (256 random bits), or none", auth.SecretPrefix))
		return
	}
	if a.d.Accounts.Bootstrapped() {
		writeError(w, &httpError{status: http.StatusConflict, msg: "accounts were bootstrapped already: ask an admin for a token"})
		return
	}
	now := a.now().UTC()
	secret, tok, err := auth.NewToken(req.User, "bootstrap", now, 0)
	if req.Token != "" {
		secret = req.Token
		tok, err = auth.TokenFromSecret(req.User, "bootstrap", secret, now)
	}
	if err != nil {
		writeError(w, err)
		return
	}
	// The first admin is the cluster's operator, whose tasks ran as the
	// runner's user before accounts existed: it gets run_as_root (an admin
	// may grant it to themselves anyway), recorded and revocable.
	admin := &fsm.User{Name: req.User, Role: fsm.RoleAdmin, CreatedAt: now, Policy: fsm.Policy{RunAsRoot: true}}
	if _, ok := a.propose(w, r, &fsm.BootstrapAuth{Admin: admin, Token: tok}); !ok {
		return
	}
	a.log.Info("accounts bootstrapped", "admin", req.User, "token_id", tok.ID)
	writeJSON(w, http.StatusCreated, api.TokenResponse{User: req.User, Role: fsm.RoleAdmin, TokenID: tok.ID, Token: secret})
}

// WhoAmI answers GET /api/auth/whoami.
func (a *API) WhoAmI(w http.ResponseWriter, r *http.Request) {
	p := principal(r)
	writeJSON(w, http.StatusOK, api.WhoAmI{User: p.Name, Role: p.Role, TokenID: p.TokenID, Anonymous: p.Kind == auth.Anonymous})
}

// Login trades a token for the dashboard's session cookie (HttpOnly,
// SameSite=Strict) and a CSRF cookie whose value every write repeats in
// the X-Hakuriver-CSRF header.
func (a *API) Login(w http.ResponseWriter, r *http.Request) {
	// A page of another origin (even another port of this host, which
	// SameSite counts as the same site) may not log a browser in.
	if !auth.SameOrigin(r) {
		writeError(w, forbidden("forbidden: login from another origin"))
		return
	}
	var req api.LoginRequest
	if err := a.decodeBody(w, r, &req, false); err != nil {
		writeError(w, err)
		return
	}
	now := a.now()
	unknown := &httpError{status: http.StatusUnauthorized, msg: "unknown, revoked or expired token"}
	tok, user, ok := a.d.Accounts.TokenByHash(auth.Hash(req.Token))
	if req.Token == "" || !ok || tok.Expired(now) {
		writeError(w, unknown)
		return
	}
	// The cookie holds a session token of its own, not the typed one:
	// signing out revokes it, and revoking the typed token ends it (the
	// session names it; auth refuses a session whose token is gone). A
	// session typed in makes a session of the token it came from.
	parent := tok
	if id, session := auth.SessionParent(tok); session {
		if parent, ok = a.d.Accounts.TokenByID(id); !ok || parent.User != tok.User || parent.Expired(now) {
			writeError(w, unknown)
			return
		}
	}
	if !a.logins.allow(user.Name, now) {
		writeError(w, &httpError{status: http.StatusTooManyRequests, msg: fmt.Sprintf("too many sign-ins of %s: at most %d at once, then one per %s", user.Name, loginBurst, loginInterval)})
		return
	}
	ttl := auth.SessionTTL
	for _, t := range []fsm.Token{tok, parent} {
		if t.ExpiresAt != nil {
			ttl = min(ttl, t.ExpiresAt.Sub(now))
		}
	}
	if ttl <= 0 { // NewToken would make it never expire
		writeError(w, unknown)
		return
	}
	secret, session, err := auth.NewToken(user.Name, auth.SessionTokenName(parent.ID), now, ttl)
	if err != nil {
		writeError(w, err)
		return
	}
	// Audited as the user who signs in (the route is public).
	r = r.WithContext(auth.WithPrincipal(r.Context(), accountPrincipal(user, tok.ID)))
	if _, ok := a.propose(w, r, &fsm.CreateToken{Token: session}); !ok {
		return
	}
	a.pruneSessions(r, user.Name, session.ID, now)
	secure := r.TLS != nil
	csrf := auth.CSRFToken(secret)
	http.SetCookie(w, &http.Cookie{Name: auth.SessionCookie, Value: secret, Path: "/", HttpOnly: true, Secure: secure, SameSite: http.SameSiteStrictMode})
	http.SetCookie(w, &http.Cookie{Name: auth.CSRFCookie, Value: csrf, Path: "/", Secure: secure, SameSite: http.SameSiteStrictMode})
	writeJSON(w, http.StatusOK, api.LoginResponse{User: user.Name, Role: user.Role, CSRF: csrf})
}

// accountPrincipal is user acting with token tokenID, for the audit of
// what a public route (login, logout) does on their behalf.
func accountPrincipal(user fsm.User, tokenID string) auth.Principal {
	return auth.Principal{Kind: auth.Account, Name: user.Name, Role: user.Role, TokenID: tokenID, User: &user}
}

// ExpireSessionCookies makes the answer w expire the dashboard's cookies.
// The route of POST /api/auth/logout calls it before it forwards, so that
// even an answer that never reaches Logout (no leader) signs out.
func ExpireSessionCookies(w http.ResponseWriter) {
	for _, name := range []string{auth.SessionCookie, auth.CSRFCookie} {
		http.SetCookie(w, &http.Cookie{Name: name, Value: "", Path: "/", MaxAge: -1, HttpOnly: name == auth.SessionCookie, SameSite: http.SameSiteStrictMode})
	}
}

// maxSessions is how many live dashboard sessions a user keeps: a login
// beyond revokes the oldest.
const maxSessions = 16

// maxPrunedSessions bounds the sessions one login revokes.
const maxPrunedSessions = 16

// pruneSessions revokes user's expired dashboard sessions and the oldest
// live ones beyond maxSessions (keep, the one just made, stays), so that
// logins do not pile tokens up in the state; best effort.
func (a *API) pruneSessions(r *http.Request, user, keep string, now time.Time) {
	var live, gone []fsm.Token
	for _, t := range a.d.Accounts.Tokens(user) {
		if _, ok := auth.SessionParent(t); !ok || t.ID == keep {
			continue
		}
		if t.Expired(now) {
			gone = append(gone, t)
		} else {
			live = append(live, t)
		}
	}
	slices.SortFunc(live, func(x, y fsm.Token) int { return x.CreatedAt.Compare(y.CreatedAt) })
	if extra := len(live) + 1 - maxSessions; extra > 0 {
		gone = append(gone, live[:extra]...)
	}
	for i, t := range gone {
		if i == maxPrunedSessions {
			return
		}
		ctx, cancel := ApplyContext(r)
		_, err := a.d.Proposer.Propose(ctx, &fsm.RevokeToken{ID: t.ID})
		cancel()
		if err != nil {
			a.log.Debug("revoke a dashboard session", "token_id", t.ID, "err", err)
			return
		}
	}
}

// loginInterval is how often, sustained, one user may sign in to the
// dashboard on one leader (each sign-in is a write, and an audit record),
// after a burst of loginBurst.
const (
	loginInterval = time.Second
	loginBurst    = 8
)

// loginPacer is a token bucket per user for dashboard logins.
type loginPacer struct {
	mu sync.Mutex
	// left is each user's bucket: sign-ins left as of at.
	left map[string]loginBucket
}

type loginBucket struct {
	n  float64
	at time.Time
}

// allow reports whether user may sign in at now, and if so takes one
// sign-in from their bucket.
func (p *loginPacer) allow(user string, now time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.left == nil || len(p.left) > 4096 {
		p.left = map[string]loginBucket{} // forgetting gives full buckets: a bound, not an exact count
	}
	b, ok := p.left[user]
	if !ok {
		b = loginBucket{n: loginBurst, at: now}
	}
	if d := now.Sub(b.at); d > 0 {
		b.n = min(loginBurst, b.n+d.Seconds()/loginInterval.Seconds())
	}
	b.at = now
	if b.n < 1 {
		p.left[user] = b
		return false
	}
	b.n--
	p.left[user] = b
	return true
}

// Logout revokes the session the cookie holds (a session token the login
// made; a cookie holding another token, set before sessions had tokens of
// their own, is only cleared).
//
// The route expires the cookies before this runs (ExpireSessionCookies),
// whatever happens next: a browser never stays signed in after asking to
// sign out.
func (a *API) Logout(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(auth.SessionCookie); err == nil && c.Value != "" {
		if t, user, ok := a.d.Accounts.TokenByHash(auth.Hash(c.Value)); ok {
			if _, session := auth.SessionParent(t); session {
				r = r.WithContext(auth.WithPrincipal(r.Context(), accountPrincipal(user, t.ID)))
				if _, ok := a.propose(w, r, &fsm.RevokeToken{ID: t.ID}); !ok {
					return // the error says the session was not revoked
				}
			}
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

// Users lists the accounts.
func (a *API) Users(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, a.d.Accounts.Users())
}

// GetUser answers one account.
func (a *API) GetUser(w http.ResponseWriter, r *http.Request) {
	u, ok := a.d.Accounts.User(chi.URLParam(r, "name"))
	if !ok {
		writeError(w, notFound("no user %q", chi.URLParam(r, "name")))
		return
	}
	writeJSON(w, http.StatusOK, u)
}

// CreateUser adds an account (admin).
func (a *API) CreateUser(w http.ResponseWriter, r *http.Request) {
	var req api.UserRequest
	if err := a.decodeBody(w, r, &req, false); err != nil {
		writeError(w, err)
		return
	}
	u := &fsm.User{Name: req.Name, Role: req.Role, UnixUser: req.UnixUser, SSHKeys: req.SSHKeys, Groups: req.Groups,
		Quota: req.Quota, Policy: req.Policy, CreatedAt: a.now().UTC()}
	if err := a.checkUser(u); err != nil {
		writeError(w, err)
		return
	}
	if _, exists := a.d.Accounts.User(u.Name); exists {
		writeError(w, conflict("conflict: user %q exists", u.Name))
		return
	}
	if _, ok := a.propose(w, r, &fsm.PutUser{User: u, Create: true}); ok {
		writeJSON(w, http.StatusCreated, u)
	}
}

// checkUser validates u before it is proposed: the same check Apply makes,
// plus keys that must parse (sshKeyCheck) — a 400 naming the field.
func (a *API) checkUser(u *fsm.User) error {
	if err := fsm.CheckUser(u); err != nil {
		return badRequest("%s", stripInvalid(err))
	}
	for i, k := range u.SSHKeys {
		if a.cfg.CheckSSHKey != nil {
			if err := a.cfg.CheckSSHKey(k); err != nil {
				return badRequest("ssh_keys[%d]: %v", i, err)
			}
		}
	}
	return nil
}

func stripInvalid(err error) string {
	s := err.Error()
	const p = "invalid: "
	if len(s) > len(p) && s[:len(p)] == p {
		return s[len(p):]
	}
	return s
}

// PatchUser changes the fields given of an account (admin).
func (a *API) PatchUser(w http.ResponseWriter, r *http.Request) {
	var req api.UserPatch
	if err := a.decodeBody(w, r, &req, false); err != nil {
		writeError(w, err)
		return
	}
	u, ok := a.d.Accounts.User(chi.URLParam(r, "name"))
	if !ok {
		writeError(w, notFound("no user %q", chi.URLParam(r, "name")))
		return
	}
	if req.Role != nil {
		u.Role = *req.Role
	}
	if req.UnixUser != nil {
		u.UnixUser = *req.UnixUser
	}
	if req.SSHKeys != nil {
		u.SSHKeys = *req.SSHKeys
	}
	if req.Groups != nil {
		u.Groups = *req.Groups
	}
	if req.Quota != nil {
		u.Quota = *req.Quota
	}
	if req.Policy != nil {
		u.Policy = *req.Policy
	}
	if err := a.checkUser(&u); err != nil {
		writeError(w, err)
		return
	}
	if u.Role != fsm.RoleAdmin && a.lastAdmin(u.Name) {
		writeError(w, conflict("conflict: %q is the last admin: make another admin first", u.Name))
		return
	}
	if _, ok := a.propose(w, r, &fsm.PutUser{User: &u}); ok {
		writeJSON(w, http.StatusOK, u)
	}
}

// DeleteUser removes an account and its tokens (admin).
func (a *API) DeleteUser(w http.ResponseWriter, r *http.Request) {
	name := chi.URLParam(r, "name")
	if _, ok := a.d.Accounts.User(name); !ok {
		writeError(w, notFound("no user %q", name))
		return
	}
	if a.lastAdmin(name) {
		writeError(w, conflict("conflict: %q is the last admin: make another admin first", name))
		return
	}
	if _, ok := a.propose(w, r, &fsm.RemoveUser{Name: name}); ok {
		w.WriteHeader(http.StatusNoContent)
	}
}

// Groups lists the groups.
func (a *API) Groups(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, a.d.Accounts.Groups())
}

// CreateGroup adds a group (admin).
func (a *API) CreateGroup(w http.ResponseWriter, r *http.Request) {
	var req api.GroupRequest
	if err := a.decodeBody(w, r, &req, false); err != nil {
		writeError(w, err)
		return
	}
	g := &fsm.Group{Name: req.Name, Quota: req.Quota, Policy: req.Policy, CreatedAt: a.now().UTC()}
	if err := checkGroup(g); err != nil {
		writeError(w, err)
		return
	}
	if _, exists := a.d.Accounts.Group(g.Name); exists {
		writeError(w, conflict("conflict: group %q exists", g.Name))
		return
	}
	if _, ok := a.propose(w, r, &fsm.PutGroup{Group: g, Create: true}); ok {
		writeJSON(w, http.StatusCreated, g)
	}
}

// PatchGroup changes a group's quota or policy (admin).
func (a *API) PatchGroup(w http.ResponseWriter, r *http.Request) {
	var req api.GroupPatch
	if err := a.decodeBody(w, r, &req, false); err != nil {
		writeError(w, err)
		return
	}
	g, ok := a.d.Accounts.Group(chi.URLParam(r, "name"))
	if !ok {
		writeError(w, notFound("no group %q", chi.URLParam(r, "name")))
		return
	}
	if req.Quota != nil {
		g.Quota = *req.Quota
	}
	if req.Policy != nil {
		g.Policy = *req.Policy
	}
	if err := checkGroup(&g); err != nil {
		writeError(w, err)
		return
	}
	if _, ok := a.propose(w, r, &fsm.PutGroup{Group: &g}); ok {
		writeJSON(w, http.StatusOK, g)
	}
}

// DeleteGroup removes a group (admin).
func (a *API) DeleteGroup(w http.ResponseWriter, r *http.Request) {
	name := chi.URLParam(r, "name")
	if _, ok := a.d.Accounts.Group(name); !ok {
		writeError(w, notFound("no group %q", name))
		return
	}
	if _, ok := a.propose(w, r, &fsm.RemoveGroup{Name: name}); ok {
		w.WriteHeader(http.StatusNoContent)
	}
}

func tokenInfo(t fsm.Token, now time.Time) api.TokenInfo {
	return api.TokenInfo{ID: t.ID, User: t.User, Name: t.Name, CreatedAt: t.CreatedAt, ExpiresAt: t.ExpiresAt, Expired: t.Expired(now)}
}

// Tokens lists the caller's tokens; an admin sees everyone's (or one
// user's with ?user=).
func (a *API) Tokens(w http.ResponseWriter, r *http.Request) {
	p := principal(r)
	user := r.URL.Query().Get("user")
	switch {
	case p.Can(fsm.RoleAdmin):
	case user != "" && user != p.Name:
		writeError(w, forbidden("forbidden: only an admin lists another user's tokens"))
		return
	default:
		user = p.Name
	}
	now := a.now()
	out := []api.TokenInfo{}
	for _, t := range a.d.Accounts.Tokens(user) {
		out = append(out, tokenInfo(t, now))
	}
	writeJSON(w, http.StatusOK, out)
}

// CreateTokenFor makes a token: a user for themselves, an admin for anyone.
func (a *API) CreateTokenFor(w http.ResponseWriter, r *http.Request) {
	var req api.TokenRequest
	if err := a.decodeBody(w, r, &req, true); err != nil {
		writeError(w, err)
		return
	}
	p := principal(r)
	if p.Kind != auth.Account {
		writeError(w, forbidden("forbidden: tokens belong to accounts; authenticate with an account token"))
		return
	}
	if req.User == "" {
		req.User = p.Name
	}
	if req.User != p.Name && !p.Can(fsm.RoleAdmin) {
		writeError(w, forbidden("forbidden: needs role admin to create another user's token"))
		return
	}
	if len(req.Name) > fsm.MaxTokenName || strings.ContainsAny(req.Name, "\r\n\x00") {
		writeError(w, badRequest("name: at most %d characters on one line", fsm.MaxTokenName))
		return
	}
	if auth.SessionName(req.Name) {
		writeError(w, badRequest("name %q: the names of dashboard sessions are the dashboard's", req.Name))
		return
	}
	if cur, ok := a.d.Accounts.TokenByID(p.TokenID); ok {
		if _, session := auth.SessionParent(cur); session {
			// A token made by a session would outlive the revocation of
			// the token the session came from.
			writeError(w, forbidden("forbidden: create tokens with an API token, not a dashboard session"))
			return
		}
	}
	var ttl time.Duration
	if req.TTL != "" {
		d, err := time.ParseDuration(req.TTL)
		if err != nil || d <= 0 || d > maxTokenTTL {
			writeError(w, badRequest("ttl %q: want a positive Go duration up to %s, like 720h", req.TTL, maxTokenTTL))
			return
		}
		ttl = d
	}
	u, ok := a.d.Accounts.User(req.User)
	if !ok {
		writeError(w, notFound("no user %q", req.User))
		return
	}
	now := a.now()
	// A token never outlives the one that made it (an admin's aside): a
	// short-lived or stolen session cannot mint itself a permanent one.
	if cur, ok := a.d.Accounts.TokenByID(p.TokenID); ok && cur.ExpiresAt != nil && !p.Can(fsm.RoleAdmin) {
		if left := cur.ExpiresAt.Sub(now); ttl == 0 || ttl > left {
			ttl = left
		}
		if ttl <= 0 {
			writeError(w, &httpError{status: http.StatusUnauthorized, msg: "the token you used has expired"})
			return
		}
	}
	secret, tok, err := auth.NewToken(req.User, req.Name, now, ttl)
	if err != nil {
		writeError(w, err)
		return
	}
	if _, ok := a.propose(w, r, &fsm.CreateToken{Token: tok}); ok {
		writeJSON(w, http.StatusCreated, api.TokenResponse{User: u.Name, Role: u.Role, TokenID: tok.ID, Token: secret, ExpiresAt: tok.ExpiresAt})
	}
}

// RevokeToken deletes a token: the caller's own, or anyone's for an admin.
func (a *API) RevokeToken(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	p := principal(r)
	t, ok := a.d.Accounts.TokenByID(id)
	if !ok || t.User != p.Name && !p.Can(fsm.RoleAdmin) {
		// Another user's token is reported as missing: its ID says nothing.
		writeError(w, notFound("no token %q of yours", id))
		return
	}
	// Its dashboard sessions are refused from the moment it is gone
	// (auth checks a session's token at each use); they are revoked too,
	// so that they leave the state, first, so that a revocation cut short
	// leaves the token to revoke again.
	for _, s := range a.d.Accounts.Tokens(t.User) {
		if parent, ok := auth.SessionParent(s); !ok || parent != id {
			continue
		}
		if _, ok := a.propose(w, r, &fsm.RevokeToken{ID: s.ID}); !ok {
			return
		}
	}
	if _, ok := a.propose(w, r, &fsm.RevokeToken{ID: id}); ok {
		w.WriteHeader(http.StatusNoContent)
	}
}

// maxAuditPage caps one page of GET /api/audit.
const maxAuditPage = 1000

// Audit answers GET /api/audit?user=&since=&after=&limit=, oldest first.
func (a *API) Audit(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := fsm.AuditFilter{User: q.Get("user")}
	if s := q.Get("since"); s != "" {
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			d, derr := time.ParseDuration(s)
			if derr != nil || d <= 0 {
				writeError(w, badRequest("since %q: want an RFC 3339 time or a duration like 24h", s))
				return
			}
			t = a.now().Add(-d)
		}
		f.Since = t
	}
	if s := q.Get("after"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			writeError(w, badRequest("after %q: want a record seq", s))
			return
		}
		f.After = n
	}
	limit := 100
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 || n > maxAuditPage {
			writeError(w, badRequest("limit %q: want 1 to %d", s, maxAuditPage))
			return
		}
		limit = n
	}
	recs, more := a.d.Accounts.Audit(f, limit)
	page := api.AuditPage{Records: recs}
	if more && len(recs) > 0 {
		page.NextAfter = strconv.FormatUint(recs[len(recs)-1].Seq, 10)
	}
	writeJSON(w, http.StatusOK, page)
}
