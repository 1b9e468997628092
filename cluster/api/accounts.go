package api

import (
	"time"

	"github.com/hakuriver/hakuriver-ha/fsm"
)

// BootstrapRequest is the body of POST /api/auth/bootstrap (cluster token
// only, accepted once in a cluster's life).
type BootstrapRequest struct {
	// User names the first admin account ("admin" when empty).
	User string `json:"user,omitempty"`
	// Token, when set, is the secret to use (hkr_ and 43 base64url
	// characters, 256 random bits), chosen by the caller so that a retry
	// after a lost answer knows it; otherwise the cluster makes one.
	Token string `json:"token,omitempty"`
}

// TokenResponse answers the creation of a token: the secret is in Token,
// shown this once.
type TokenResponse struct {
	User      string     `json:"user"`
	Role      fsm.Role   `json:"role"`
	TokenID   string     `json:"token_id"`
	Token     string     `json:"token"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
}

// WhoAmI answers GET /api/auth/whoami.
type WhoAmI struct {
	User    string   `json:"user"`
	Role    fsm.Role `json:"role"`
	TokenID string   `json:"token_id,omitempty"`
	// Anonymous is set when the caller sent no credentials.
	Anonymous bool `json:"anonymous,omitempty"`
}

// LoginRequest is the body of POST /api/auth/login: the dashboard trades a
// token for a session cookie.
type LoginRequest struct {
	Token string `json:"token"`
}

// LoginResponse answers a login; CSRF must be sent in the
// X-Hakuriver-CSRF header of every write of the session.
type LoginResponse struct {
	User string   `json:"user"`
	Role fsm.Role `json:"role"`
	CSRF string   `json:"csrf"`
}

// UserRequest is the body of POST /api/users.
type UserRequest struct {
	Name     string     `json:"name"`
	Role     fsm.Role   `json:"role"`
	UnixUser string     `json:"unix_user,omitempty"`
	SSHKeys  []string   `json:"ssh_keys,omitempty"`
	Groups   []string   `json:"groups,omitempty"`
	Quota    fsm.Quota  `json:"quota,omitempty"`
	Policy   fsm.Policy `json:"policy,omitempty"`
}

// UserPatch is the body of PATCH /api/users/{name}: the fields given
// replace the user's.
type UserPatch struct {
	Role     *fsm.Role   `json:"role,omitempty"`
	UnixUser *string     `json:"unix_user,omitempty"`
	SSHKeys  *[]string   `json:"ssh_keys,omitempty"`
	Groups   *[]string   `json:"groups,omitempty"`
	Quota    *fsm.Quota  `json:"quota,omitempty"`
	Policy   *fsm.Policy `json:"policy,omitempty"`
}

// GroupRequest is the body of POST /api/groups.
type GroupRequest struct {
	Name   string     `json:"name"`
	Quota  fsm.Quota  `json:"quota,omitempty"`
	Policy fsm.Policy `json:"policy,omitempty"`
}

// GroupPatch is the body of PATCH /api/groups/{name}.
type GroupPatch struct {
	Quota  *fsm.Quota  `json:"quota,omitempty"`
	Policy *fsm.Policy `json:"policy,omitempty"`
}

// TokenRequest is the body of POST /api/tokens.
type TokenRequest struct {
	// User is whose token it is (default: the caller; only an admin may
	// name another user).
	User string `json:"user,omitempty"`
	Name string `json:"name,omitempty"`
	// TTL is a Go duration ("720h"); empty means the token never expires.
	TTL string `json:"ttl,omitempty"`
}

// TokenInfo is a token as lists show it: never the secret nor its hash.
type TokenInfo struct {
	ID        string     `json:"id"`
	User      string     `json:"user"`
	Name      string     `json:"name,omitempty"`
	CreatedAt time.Time  `json:"created_at"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	Expired   bool       `json:"expired,omitempty"`
}

// AuditPage answers GET /api/audit.
type AuditPage struct {
	Records []fsm.AuditRecord `json:"records"`
	// NextAfter, when set, is the ?after= of the next page.
	NextAfter string `json:"next_after,omitempty"`
}

// QuotaResource is one resource of a quota in GET /api/quota: what the
// tasks holding resources (assigning, running, paused) hold, against the
// limit (0: no limit).
type QuotaResource struct {
	// Resource is cores, memory_bytes, gpus, running_tasks or vps.
	Resource string `json:"resource"`
	Used     int64  `json:"used"`
	Limit    int64  `json:"limit"`
}

// QuotaEntry is one user's or group's quota in GET /api/quota. A group's
// use is the sum over all its members.
type QuotaEntry struct {
	// Kind is "user" or "group".
	Kind string `json:"kind"`
	Name string `json:"name"`
	// Groups are a user's groups that set a limit.
	Groups []string `json:"groups,omitempty"`
	// Members are a group's users.
	Members   []string        `json:"members,omitempty"`
	Resources []QuotaResource `json:"resources"`
}
