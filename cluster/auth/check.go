package auth

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/hakuriver/hakuriver-ha/fsm"
)

// Header and cookie names.
const (
	// ClusterTokenHeader carries the cluster token on internal calls
	// (the same header as api.TokenHeader).
	ClusterTokenHeader = "X-Hakuriver-Token"
	// SessionCookie holds the dashboard's token (HttpOnly, SameSite=Strict).
	SessionCookie = "hakuriver_session"
	// CSRFCookie holds the value a dashboard write must repeat in
	// CSRFHeader; the page's script can read it, another site cannot.
	CSRFCookie = "hakuriver_csrf"
	// CSRFHeader must carry CSRFToken(session) on every write that is
	// authenticated by the session cookie.
	CSRFHeader = "X-Hakuriver-CSRF"
)

// Accounts looks a token up by the hash of its secret, or by its ID
// (fsm.Machine).
type Accounts interface {
	TokenByHash(hash string) (fsm.Token, fsm.User, bool)
	TokenByID(id string) (fsm.Token, bool)
}

// Rule is who may call one route.
type Rule struct {
	// Role is the least account role that may call it; "" means no
	// account may.
	Role fsm.Role
	// Cluster accepts the cluster token too.
	Cluster bool
	// Public lets anyone call it, without credentials.
	Public bool
}

// Authenticator turns a request's credentials into a Principal.
type Authenticator struct {
	Accounts Accounts
	// ClusterToken authenticates internal calls. When it is empty and
	// InsecureNoToken is set, routes that accept the cluster token are
	// open to anyone.
	ClusterToken    string
	InsecureNoToken bool
	// AnonymousRole is what callers without credentials may do ("" =
	// nothing: they get 401 everywhere but the public routes).
	AnonymousRole fsm.Role
	// Now is the clock that expires tokens (time.Now when nil).
	Now func() time.Time
}

// Error is a rejection with its HTTP status (401 or 403).
type Error struct {
	Status int
	Msg    string
	// unknown marks a well-formed token this replica does not know.
	unknown bool
}

// IsUnknownToken reports whether err rejects a well-formed token that this
// replica's state does not hold: a replica that lags behind (just
// restarted, or just joined) may not have applied its creation yet, and
// may ask the leader instead.
func IsUnknownToken(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.unknown
}

func (e *Error) Error() string { return e.Msg }

// HTTPStatus is the status to answer with.
func (e *Error) HTTPStatus() int { return e.Status }

// errUnauthenticated never says whether the token or its user exists.
var errUnauthenticated = &Error{Status: http.StatusUnauthorized, Msg: "authentication required: missing, unknown, revoked or expired token (send Authorization: Bearer <token>; see hakuriver auth login)"}

// ErrWrongClusterToken answers a wrong cluster token.
var errWrongClusterToken = &Error{Status: http.StatusUnauthorized, Msg: "missing or wrong cluster token"}

// ClusterTokenOK reports whether got is the cluster token, in constant
// time. An empty configured token matches only in insecure mode.
func (a *Authenticator) ClusterTokenOK(got string) bool {
	if a.ClusterToken == "" {
		return a.InsecureNoToken
	}
	return subtle.ConstantTimeCompare([]byte(got), []byte(a.ClusterToken)) == 1
}

// Authenticate returns who sent r. Credentials that are present but wrong
// are an error (never a silent fall back to anonymous).
func (a *Authenticator) Authenticate(r *http.Request) (Principal, error) {
	if ct := r.Header.Get(ClusterTokenHeader); ct != "" {
		if a.ClusterToken != "" && subtle.ConstantTimeCompare([]byte(ct), []byte(a.ClusterToken)) == 1 {
			return Principal{Kind: Cluster, Name: "cluster"}, nil
		}
		return Principal{}, errWrongClusterToken
	}
	secret, viaCookie := "", false
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, s, ok := strings.Cut(h, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(s) == "" {
			return Principal{}, errUnauthenticated
		}
		secret = strings.TrimSpace(s)
	} else if c, err := r.Cookie(SessionCookie); err == nil && c.Value != "" {
		secret, viaCookie = c.Value, true
	}
	if secret == "" {
		return Principal{Kind: Anonymous, Name: AnonymousName, Role: a.AnonymousRole}, nil
	}
	if a.Accounts == nil {
		return Principal{}, errUnauthenticated
	}
	tok, user, ok := a.Accounts.TokenByHash(Hash(secret))
	if !ok && LooksLikeSecret(secret) {
		return Principal{}, &Error{Status: errUnauthenticated.Status, Msg: errUnauthenticated.Msg, unknown: true}
	}
	if !ok || tok.Expired(a.now()) || !a.parentValid(tok) {
		return Principal{}, errUnauthenticated
	}
	p := Principal{Kind: Account, Name: user.Name, Role: user.Role, TokenID: tok.ID, User: &user, ViaCookie: viaCookie}
	if viaCookie {
		p.csrf = CSRFToken(secret)
	}
	return p, nil
}

// parentValid reports whether tok, when it is a dashboard session's, was
// made from a token of the same user that is still valid: revoking (or
// the expiry of) the token a user signed in with ends the sessions made
// with it at once, whatever the state of their own revocation. A session
// is always made from a token that is none (Login): there is no chain.
func (a *Authenticator) parentValid(tok fsm.Token) bool {
	parentID, session := SessionParent(tok)
	if !session {
		return true
	}
	parent, ok := a.Accounts.TokenByID(parentID)
	if !ok || parent.User != tok.User || parent.Expired(a.now()) {
		return false
	}
	_, chained := SessionParent(parent)
	return !chained
}

func (a *Authenticator) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

// Check authenticates r and decides whether rule lets it through. The
// principal is returned for public routes too when the caller sent valid
// credentials.
func (a *Authenticator) Check(rule Rule, r *http.Request) (Principal, error) {
	if rule.Cluster && a.ClusterToken == "" && a.InsecureNoToken {
		if p, err := a.Authenticate(r); err == nil && p.Kind == Account {
			return p, nil
		}
		return Principal{Kind: Cluster, Name: "cluster"}, nil
	}
	p, err := a.Authenticate(r)
	if rule.Public {
		if err != nil {
			return Principal{Kind: Anonymous, Name: AnonymousName}, nil
		}
		return p, nil
	}
	if err != nil {
		return Principal{}, err
	}
	switch p.Kind {
	case Cluster:
		if !rule.Cluster {
			return Principal{}, &Error{Status: http.StatusForbidden, Msg: "the cluster token is for internal calls; use an account token here"}
		}
		return p, nil
	case Anonymous:
		if rule.Role != "" && p.Role.AtLeast(rule.Role) {
			return p, nil
		}
		switch {
		case rule.Role == "" && rule.Cluster:
			return Principal{}, errWrongClusterToken
		case rule.Cluster:
			return Principal{}, &Error{Status: http.StatusUnauthorized, Msg: "authentication required: send a " + string(rule.Role) + " account's token (Authorization: Bearer) or the cluster token"}
		}
		return Principal{}, errUnauthenticated
	}
	if rule.Role == "" {
		return Principal{}, &Error{Status: http.StatusForbidden, Msg: "this is an internal route: it needs the cluster token"}
	}
	if !p.Role.AtLeast(rule.Role) {
		return Principal{}, &Error{Status: http.StatusForbidden, Msg: "forbidden: needs role " + string(rule.Role) + " (your role is " + string(p.Role) + ")"}
	}
	if p.ViaCookie && !safeMethod(r.Method) {
		got := r.Header.Get(CSRFHeader)
		if got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(p.csrf)) != 1 {
			return Principal{}, &Error{Status: http.StatusForbidden, Msg: "missing or wrong " + CSRFHeader + " header on a write authenticated by the session cookie"}
		}
	}
	return p, nil
}

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

// CSRFToken is the value a cookie-authenticated write must carry in
// CSRFHeader: derived from the session secret, so nothing is stored.
func CSRFToken(secret string) string {
	sum := sha256.Sum256([]byte("hakuriver-csrf\x00" + secret))
	return hex.EncodeToString(sum[:16])
}

// SameOrigin reports whether a browser request (one with an Origin header)
// comes from the page this server served; requests without Origin (CLI
// tools, and a login a replica checked and forwards to the leader) pass.
// WebSocket upgrades check it before upgrading.
func SameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	u, err := url.Parse(o)
	if err != nil {
		return false
	}
	return strings.EqualFold(u.Host, r.Host)
}
