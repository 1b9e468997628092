package sshproxy

import (
	"context"

	"golang.org/x/crypto/ssh"

	"github.com/hakuriver/hakuriver-ha/fsm"
)

// Accounts tells the proxy who holds a credential. The host implements it
// over the accounts of its replicated state machine, read on every request,
// so that a new token or key works, and a revoked one stops working, as
// soon as the change is applied on that replica. Its methods are called
// concurrently; only TokenCaller may block (on the network, within its
// ctx).
type Accounts interface {
	// TokenCaller returns the account API token secret belongs to; ok is
	// false for an unknown, revoked or expired token (or one whose user
	// was removed), and when it cannot tell within ctx: the proxy then
	// refuses without saying which. It may ask another replica about a
	// token this one does not know (yet), bounded by ctx.
	TokenCaller(ctx context.Context, secret string) (c Caller, ok bool)
	// KeyCallers returns every account that registered key among its SSH
	// keys (authorized_keys lines); none when no account did. Each of them
	// vouched for the key's holder, who may reach what any of them may.
	KeyCallers(key ssh.PublicKey) []Caller
	// Anonymous returns who a caller without credentials acts as: its Role
	// is "" when anonymous callers may do nothing.
	Anonymous() Caller
}

// Caller is who asks for a tunnel: an account, or an anonymous caller
// acting with the configured anonymous role.
type Caller struct {
	// Name is the account name, or the owner name anonymous work is
	// recorded under when Anonymous is set.
	Name string
	// Role is the account's role, or the anonymous role ("" = none).
	Role fsm.Role
	// Anonymous marks a caller without credentials: it owns the tasks
	// recorded under Name and those recorded without an owner (submitted
	// before accounts existed).
	Anonymous bool
}

// MayReach reports whether c may open a tunnel to task t: an operator or
// admin reaches every VPS, a user (or anonymous "user") only their own.
func (c Caller) MayReach(t *fsm.Task) bool {
	switch {
	case t == nil:
		return false
	case c.Role.AtLeast(fsm.RoleOperator):
		return true
	case !c.Role.AtLeast(fsm.RoleUser):
		return false
	case c.Anonymous:
		return t.Owner == "" || t.Owner == c.Name
	}
	return c.Name != "" && t.Owner == c.Name
}

// String names the caller in logs.
func (c Caller) String() string {
	if c.Anonymous {
		return "anonymous"
	}
	return c.Name
}

// anyMayReach reports whether one of cs may reach t.
func anyMayReach(cs []Caller, t *fsm.Task) bool {
	for _, c := range cs {
		if c.MayReach(t) {
			return true
		}
	}
	return false
}
