package fsm

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"
)

// Role is what an account may do. Roles are ordered: admin > operator >
// user > viewer; a role may do everything a lower one may.
type Role string

// The roles, lowest first.
const (
	RoleViewer   Role = "viewer"
	RoleUser     Role = "user"
	RoleOperator Role = "operator"
	RoleAdmin    Role = "admin"
)

// Roles returns every role, lowest first.
func Roles() []Role { return []Role{RoleViewer, RoleUser, RoleOperator, RoleAdmin} }

// Rank orders roles: 1 for viewer up to 4 for admin, 0 for anything else.
func (r Role) Rank() int {
	switch r {
	case RoleViewer:
		return 1
	case RoleUser:
		return 2
	case RoleOperator:
		return 3
	case RoleAdmin:
		return 4
	}
	return 0
}

// Valid reports whether r is one of the four roles.
func (r Role) Valid() bool { return r.Rank() > 0 }

// AtLeast reports whether r may do what need may.
func (r Role) AtLeast(need Role) bool { return r.Valid() && r.Rank() >= need.Rank() }

// Quota caps what an account (or all the members of a group together) may
// hold at once. Zero means no limit.
type Quota struct {
	Cores        int   `json:"cores,omitempty"`
	MemoryBytes  int64 `json:"memory_bytes,omitempty"`
	GPUs         int   `json:"gpus,omitempty"`
	RunningTasks int   `json:"running_tasks,omitempty"`
	VPS          int   `json:"vps,omitempty"`
}

// Valid reports whether no limit is negative.
func (q Quota) Valid() bool {
	return q.Cores >= 0 && q.MemoryBytes >= 0 && q.GPUs >= 0 && q.RunningTasks >= 0 && q.VPS >= 0
}

// Policy is what an administrator allows an account (or every member of a
// group): a request alone never grants any of it.
type Policy struct {
	// Privileged allows privileged Docker containers.
	Privileged bool `json:"privileged,omitempty"`
	// Mounts allows additional bind mounts named in a request.
	Mounts bool `json:"mounts,omitempty"`
	// RunAsRoot allows tasks to run as root: a unix_user of root, and,
	// for an account without a unix_user, the runner's own user (native
	// tasks) or the image's user (Docker tasks) instead of runner_user or
	// nobody (Task.AllowRoot).
	RunAsRoot bool `json:"run_as_root,omitempty"`
}

// Or returns the union of two policies.
func (p Policy) Or(o Policy) Policy {
	return Policy{Privileged: p.Privileged || o.Privileged, Mounts: p.Mounts || o.Mounts, RunAsRoot: p.RunAsRoot || o.RunAsRoot}
}

// User is an account.
type User struct {
	Name string `json:"name"`
	Role Role   `json:"role"`
	// UnixUser is the Unix account (name or numeric UID[:GID]) the user's
	// tasks run as; empty means the runner's runner_user.
	UnixUser string `json:"unix_user,omitempty"`
	// SSHKeys are authorized_keys lines the SSH jump host accepts.
	SSHKeys   []string  `json:"ssh_keys,omitempty"`
	Groups    []string  `json:"groups,omitempty"`
	Quota     Quota     `json:"quota,omitempty"`
	Policy    Policy    `json:"policy,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

// Group is a named set of users sharing a quota and a policy.
type Group struct {
	Name      string    `json:"name"`
	Quota     Quota     `json:"quota,omitempty"`
	Policy    Policy    `json:"policy,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

// Token is an API token. Only the SHA-256 of its secret is kept: the secret
// is shown once, to whoever created it, and appears nowhere in the state,
// the log or a snapshot.
type Token struct {
	// ID is public: it names the token in lists and revocations.
	ID   string `json:"id"`
	User string `json:"user"`
	// Name is a free-form label ("laptop", "ci").
	Name string `json:"name,omitempty"`
	// Hash is the lower-case hex SHA-256 of the secret.
	Hash      string     `json:"hash"`
	CreatedAt time.Time  `json:"created_at"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
}

// Expired reports whether the token has expired at now.
func (t Token) Expired(now time.Time) bool { return t.ExpiresAt != nil && !now.Before(*t.ExpiresAt) }

// NameRE is what user and group names look like: a Unix-style name.
var NameRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z_][a-z0-9_.-]{0,31}$`) })

// ReservedName reports whether name belongs to callers without an
// account: "anonymous" (callers without a token) and "cluster" (the cluster
// token). No account may take it, or it would share their work and audit
// records.
func ReservedName(name string) bool { return name == "anonymous" || name == "cluster" }

// tokenIDRE is what a token ID looks like.
var tokenIDRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[0-9a-f]{8,64}$`) })

// Limits on account fields, so that one account cannot bloat the state.
const (
	MaxSSHKeys      = 32
	MaxSSHKeyLen    = 16 << 10
	MaxGroupsOfUser = 64
	MaxTokenName    = 64
	MaxUnixUserLen  = 64
)

// unixUserRE accepts a Unix user name or UID[:GID].
var unixUserRE = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^([a-z_][a-z0-9_.-]{0,31}\$?|[0-9]{1,10}(:[0-9]{1,10})?)$`)
})

// ValidUnixUser reports whether s is a Unix user name or UID[:GID], as
// User.UnixUser and Task.RunAs hold.
func ValidUnixUser(s string) bool { return len(s) <= MaxUnixUserLen && unixUserRE().MatchString(s) }

// CheckUser validates a user record's fields, naming the first bad one.
func CheckUser(u *User) error {
	switch {
	case u == nil:
		return fmt.Errorf("%w: no user", ErrInvalid)
	case !NameRE().MatchString(u.Name):
		return fmt.Errorf("%w: name %q: want 1-32 characters a-z 0-9 _ . - starting with a letter or _", ErrInvalid, u.Name)
	case ReservedName(u.Name):
		return fmt.Errorf("%w: name %q is reserved (it names callers without an account)", ErrInvalid, u.Name)
	case !u.Role.Valid():
		return fmt.Errorf("%w: role %q: want viewer, user, operator or admin", ErrInvalid, u.Role)
	case u.UnixUser != "" && !unixUserRE().MatchString(u.UnixUser):
		return fmt.Errorf("%w: unix_user %q: want a Unix user name or UID[:GID]", ErrInvalid, u.UnixUser)
	case len(u.SSHKeys) > MaxSSHKeys:
		return fmt.Errorf("%w: ssh_keys: at most %d keys", ErrInvalid, MaxSSHKeys)
	case len(u.Groups) > MaxGroupsOfUser:
		return fmt.Errorf("%w: groups: at most %d", ErrInvalid, MaxGroupsOfUser)
	case !u.Quota.Valid():
		return fmt.Errorf("%w: quota: limits must not be negative", ErrInvalid)
	}
	for _, k := range u.SSHKeys {
		if len(k) > MaxSSHKeyLen || strings.ContainsAny(k, "\r\n\x00") || strings.TrimSpace(k) == "" {
			return fmt.Errorf("%w: ssh_keys: one key per entry, on one line, at most %d bytes", ErrInvalid, MaxSSHKeyLen)
		}
	}
	for _, g := range u.Groups {
		if !NameRE().MatchString(g) {
			return fmt.Errorf("%w: groups: %q is not a group name", ErrInvalid, g)
		}
	}
	return nil
}

// BootstrapAuth creates the first administrator and its token. It is
// accepted once in a cluster's life: afterwards (even if every account was
// removed since) it is ErrConflict.
type BootstrapAuth struct {
	Admin *User  `json:"admin"`
	Token *Token `json:"token"`
}

// PutUser creates a user (Create) or replaces an existing one.
type PutUser struct {
	User   *User `json:"user"`
	Create bool  `json:"create,omitempty"`
}

// RemoveUser deletes a user and every token of theirs. Their tasks keep
// their owner's name.
type RemoveUser struct {
	Name string `json:"name"`
}

// PutGroup creates a group (Create) or replaces an existing one.
type PutGroup struct {
	Group  *Group `json:"group"`
	Create bool   `json:"create,omitempty"`
}

// RemoveGroup deletes a group; users keep the name in their Groups, which
// then means nothing until a group of that name exists again.
type RemoveGroup struct {
	Name string `json:"name"`
}

// CreateToken adds an API token of an existing user.
type CreateToken struct {
	Token *Token `json:"token"`
}

// RevokeToken deletes a token; it fails on every replica from the moment
// this entry is applied there.
type RevokeToken struct {
	ID string `json:"id"`
}

// Type implements Command.
func (*BootstrapAuth) Type() CommandType { return CmdBootstrapAuth }

// Type implements Command.
func (*PutUser) Type() CommandType { return CmdPutUser }

// Type implements Command.
func (*RemoveUser) Type() CommandType { return CmdRemoveUser }

// Type implements Command.
func (*PutGroup) Type() CommandType { return CmdPutGroup }

// Type implements Command.
func (*RemoveGroup) Type() CommandType { return CmdRemoveGroup }

// Type implements Command.
func (*CreateToken) Type() CommandType { return CmdCreateToken }

// Type implements Command.
func (*RevokeToken) Type() CommandType { return CmdRevokeToken }

// accounts is the account part of the state.
type accounts struct {
	bootstrapped bool
	users        map[string]*User
	groups       map[string]*Group
	tokens       map[string]*Token // by ID
	byHash       map[string]string // token hash -> ID
}

func newAccounts() accounts {
	return accounts{users: map[string]*User{}, groups: map[string]*Group{}, tokens: map[string]*Token{}, byHash: map[string]string{}}
}

func checkToken(t *Token) error {
	switch {
	case t == nil:
		return fmt.Errorf("%w: no token", ErrInvalid)
	case !tokenIDRE().MatchString(t.ID):
		return fmt.Errorf("%w: token id %q", ErrInvalid, t.ID)
	case !sha256RE().MatchString(t.Hash):
		return fmt.Errorf("%w: token hash is not a SHA-256", ErrInvalid)
	case len(t.Name) > MaxTokenName || strings.ContainsAny(t.Name, "\r\n\x00"):
		return fmt.Errorf("%w: token name: at most %d characters on one line", ErrInvalid, MaxTokenName)
	}
	return nil
}

func (m *Machine) addToken(t *Token) Result {
	if err := checkToken(t); err != nil {
		return Result{Err: err}
	}
	if _, ok := m.acct.users[t.User]; !ok {
		return Result{Err: fmt.Errorf("%w: user %q", ErrNotFound, t.User)}
	}
	if _, dup := m.acct.tokens[t.ID]; dup {
		return Result{Err: fmt.Errorf("%w: token %s already exists", ErrConflict, t.ID)}
	}
	if _, dup := m.acct.byHash[t.Hash]; dup {
		return Result{Err: fmt.Errorf("%w: token already exists", ErrConflict)}
	}
	c := *t
	m.acct.tokens[c.ID] = &c
	m.acct.byHash[c.Hash] = c.ID
	return Result{Value: c.ID}
}

func (m *Machine) applyBootstrap(c *BootstrapAuth) Result {
	if m.acct.bootstrapped {
		return Result{Err: fmt.Errorf("%w: accounts were bootstrapped already", ErrConflict)}
	}
	if err := CheckUser(c.Admin); err != nil {
		return Result{Err: err}
	}
	if c.Admin.Role != RoleAdmin {
		return Result{Err: fmt.Errorf("%w: the bootstrap account must be an admin", ErrInvalid)}
	}
	if c.Token == nil || c.Token.User != c.Admin.Name {
		return Result{Err: fmt.Errorf("%w: the bootstrap token must belong to the admin", ErrInvalid)}
	}
	if err := checkToken(c.Token); err != nil {
		return Result{Err: err}
	}
	u := c.Admin.clone()
	old, had := m.acct.users[u.Name]
	m.acct.users[u.Name] = u
	if r := m.addToken(c.Token); r.Err != nil {
		// A refused entry changes nothing: put back what was there.
		if had {
			m.acct.users[u.Name] = old
		} else {
			delete(m.acct.users, u.Name)
		}
		return r
	}
	m.acct.bootstrapped = true
	return Result{Value: c.Token.ID}
}

func (m *Machine) applyPutUser(c *PutUser) Result {
	if err := CheckUser(c.User); err != nil {
		return Result{Err: err}
	}
	_, exists := m.acct.users[c.User.Name]
	switch {
	case c.Create && exists:
		return Result{Err: fmt.Errorf("%w: user %q exists", ErrConflict, c.User.Name)}
	case !c.Create && !exists:
		return Result{Err: fmt.Errorf("%w: user %q", ErrNotFound, c.User.Name)}
	}
	if exists && m.lastAdmin(c.User.Name) && c.User.Role != RoleAdmin {
		return Result{Err: fmt.Errorf("%w: %q is the last admin", ErrConflict, c.User.Name)}
	}
	m.acct.users[c.User.Name] = c.User.clone()
	return Result{}
}

// lastAdmin reports whether name is the only admin account.
func (m *Machine) lastAdmin(name string) bool {
	u, ok := m.acct.users[name]
	if !ok || u.Role != RoleAdmin {
		return false
	}
	for n, o := range m.acct.users {
		if n != name && o.Role == RoleAdmin {
			return false
		}
	}
	return true
}

func (m *Machine) applyRemoveUser(c *RemoveUser) Result {
	if _, ok := m.acct.users[c.Name]; !ok {
		return Result{Err: fmt.Errorf("%w: user %q", ErrNotFound, c.Name)}
	}
	if m.lastAdmin(c.Name) {
		return Result{Err: fmt.Errorf("%w: %q is the last admin", ErrConflict, c.Name)}
	}
	delete(m.acct.users, c.Name)
	for id, t := range m.acct.tokens {
		if t.User == c.Name {
			delete(m.acct.byHash, t.Hash)
			delete(m.acct.tokens, id)
		}
	}
	return Result{}
}

func (m *Machine) applyPutGroup(c *PutGroup) Result {
	g := c.Group
	switch {
	case g == nil || !NameRE().MatchString(g.Name):
		return Result{Err: fmt.Errorf("%w: group name: want 1-32 characters a-z 0-9 _ . - starting with a letter or _", ErrInvalid)}
	case !g.Quota.Valid():
		return Result{Err: fmt.Errorf("%w: quota: limits must not be negative", ErrInvalid)}
	}
	_, exists := m.acct.groups[g.Name]
	switch {
	case c.Create && exists:
		return Result{Err: fmt.Errorf("%w: group %q exists", ErrConflict, g.Name)}
	case !c.Create && !exists:
		return Result{Err: fmt.Errorf("%w: group %q", ErrNotFound, g.Name)}
	}
	cp := *g
	m.acct.groups[g.Name] = &cp
	return Result{}
}

func (m *Machine) applyRemoveGroup(c *RemoveGroup) Result {
	if _, ok := m.acct.groups[c.Name]; !ok {
		return Result{Err: fmt.Errorf("%w: group %q", ErrNotFound, c.Name)}
	}
	delete(m.acct.groups, c.Name)
	return Result{}
}

func (m *Machine) applyRevokeToken(c *RevokeToken) Result {
	t, ok := m.acct.tokens[c.ID]
	if !ok {
		return Result{Err: fmt.Errorf("%w: token %q", ErrNotFound, c.ID)}
	}
	delete(m.acct.byHash, t.Hash)
	delete(m.acct.tokens, c.ID)
	return Result{}
}

func (u *User) clone() *User {
	c := *u
	c.SSHKeys = append([]string(nil), u.SSHKeys...)
	c.Groups = append([]string(nil), u.Groups...)
	return &c
}

// Bootstrapped reports whether BootstrapAuth has been applied.
func (m *Machine) Bootstrapped() bool {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.acct.bootstrapped
}

// TokenByHash returns the token whose secret hashes to hash, and its user.
// It is the per-request check: two map lookups under a read lock.
func (m *Machine) TokenByHash(hash string) (Token, User, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	id, ok := m.acct.byHash[hash]
	if !ok {
		return Token{}, User{}, false
	}
	t := m.acct.tokens[id]
	u, ok := m.acct.users[t.User]
	if !ok {
		return Token{}, User{}, false
	}
	return *t, *u.clone(), true
}

// User returns one user.
func (m *Machine) User(name string) (User, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	u, ok := m.acct.users[name]
	if !ok {
		return User{}, false
	}
	return *u.clone(), true
}

// Users returns every user, sorted by name.
func (m *Machine) Users() []User {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]User, 0, len(m.acct.users))
	for _, u := range m.acct.users {
		out = append(out, *u.clone())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Group returns one group.
func (m *Machine) Group(name string) (Group, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	g, ok := m.acct.groups[name]
	if !ok {
		return Group{}, false
	}
	return *g, true
}

// Groups returns every group, sorted by name.
func (m *Machine) Groups() []Group {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]Group, 0, len(m.acct.groups))
	for _, g := range m.acct.groups {
		out = append(out, *g)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Tokens returns the tokens of user (every token when user is ""), sorted
// by ID. The records carry hashes, never secrets.
func (m *Machine) Tokens(user string) []Token {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := []Token{}
	for _, t := range m.acct.tokens {
		if user == "" || t.User == user {
			out = append(out, *t)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// TokenByID returns one token.
func (m *Machine) TokenByID(id string) (Token, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	t, ok := m.acct.tokens[id]
	if !ok {
		return Token{}, false
	}
	return *t, true
}

// EffectivePolicy is what user u may do beyond a plain request: their own
// policy joined with that of each of their groups.
func (m *Machine) EffectivePolicy(u User) Policy {
	m.mu.RLock()
	defer m.mu.RUnlock()
	p := u.Policy
	for _, name := range u.Groups {
		if g, ok := m.acct.groups[name]; ok {
			p = p.Or(g.Policy)
		}
	}
	return p
}

// accountsState is the account part of a snapshot.
type accountsState struct {
	Bootstrapped bool     `json:"bootstrapped"`
	Users        []*User  `json:"users"`
	Groups       []*Group `json:"groups"`
	Tokens       []*Token `json:"tokens"`
}

func (a *accounts) state() *accountsState {
	if !a.bootstrapped && len(a.users) == 0 && len(a.groups) == 0 {
		return nil
	}
	s := &accountsState{Bootstrapped: a.bootstrapped, Users: []*User{}, Groups: []*Group{}, Tokens: []*Token{}}
	for _, u := range a.users {
		s.Users = append(s.Users, u)
	}
	for _, g := range a.groups {
		s.Groups = append(s.Groups, g)
	}
	for _, t := range a.tokens {
		s.Tokens = append(s.Tokens, t)
	}
	sort.Slice(s.Users, func(i, j int) bool { return s.Users[i].Name < s.Users[j].Name })
	sort.Slice(s.Groups, func(i, j int) bool { return s.Groups[i].Name < s.Groups[j].Name })
	sort.Slice(s.Tokens, func(i, j int) bool { return s.Tokens[i].ID < s.Tokens[j].ID })
	return s
}

func (a *accounts) restore(s *accountsState) error {
	*a = newAccounts()
	a.bootstrapped = s.Bootstrapped
	for _, u := range s.Users {
		if u == nil || u.Name == "" {
			return fmt.Errorf("user without a name")
		}
		a.users[u.Name] = u
	}
	for _, g := range s.Groups {
		if g == nil || g.Name == "" {
			return fmt.Errorf("group without a name")
		}
		a.groups[g.Name] = g
	}
	for _, t := range s.Tokens {
		if t == nil || t.ID == "" || t.Hash == "" {
			return fmt.Errorf("token without an ID or hash")
		}
		a.tokens[t.ID] = t
		a.byHash[t.Hash] = t.ID
	}
	return nil
}
