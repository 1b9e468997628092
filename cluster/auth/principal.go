package auth

import (
	"context"

	"github.com/hakuriver/hakuriver-ha/fsm"
)

// Kind says how a caller authenticated.
type Kind int

// The kinds of callers.
const (
	// Anonymous callers sent no credentials; they act with the configured
	// anonymous role (none by default).
	Anonymous Kind = iota
	// Account callers sent an API token of a user account.
	Account
	// Cluster callers sent the cluster token: runners, other replicas and
	// the host's own tools. They may call internal routes only, never the
	// account-protected ones.
	Cluster
)

// AnonymousName is the owner recorded on what anonymous callers submit.
const AnonymousName = "anonymous"

// Principal is an authenticated caller.
type Principal struct {
	Kind Kind
	// Name is the account name (AnonymousName for anonymous callers,
	// "cluster" for the cluster token).
	Name string
	// Role is the account's role, or the anonymous role ("" when
	// anonymous callers may do nothing).
	Role fsm.Role
	// TokenID names the token used.
	TokenID string
	// User is the account record (Kind Account only).
	User *fsm.User
	// ViaCookie is set when the token came in the dashboard's session
	// cookie: writes must then carry the CSRF header.
	ViaCookie bool
	// csrf is the CSRF token a cookie-authenticated write must carry.
	csrf string
}

// Can reports whether p's role is at least need.
func (p Principal) Can(need fsm.Role) bool {
	return p.Kind != Cluster && p.Role.AtLeast(need)
}

// Owns reports whether p may act on something owned by owner as its owner:
// the same account, or an anonymous caller on anonymous work.
func (p Principal) Owns(owner string) bool {
	switch p.Kind {
	case Account:
		return owner == p.Name
	case Anonymous:
		return owner == "" || owner == AnonymousName
	}
	return false
}

type principalKey struct{}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// FromContext returns the principal the request was authenticated as.
func FromContext(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}
