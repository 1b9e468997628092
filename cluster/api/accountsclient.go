package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/hakuriver/hakuriver-ha/fsm"
)

// Bootstrap creates the first admin account, named user ("admin" when
// empty), and returns its token (POST /api/auth/bootstrap). It needs the
// cluster token (ClientConfig.Token) and succeeds once in a cluster's life:
// afterwards it is an *APIError with StatusCode 409.
func (c *Client) Bootstrap(ctx context.Context, user string) (TokenResponse, error) {
	var out TokenResponse
	if _, err := c.Do(ctx, http.MethodPost, "/api/auth/bootstrap", BootstrapRequest{User: user}, &out); err != nil {
		return TokenResponse{}, fmt.Errorf("bootstrap the accounts: %w", err)
	}
	return out, nil
}

// WhoAmI returns the caller as the cluster sees it (GET /api/auth/whoami):
// the account of the token sent, or the anonymous caller.
func (c *Client) WhoAmI(ctx context.Context) (WhoAmI, error) {
	var out WhoAmI
	if _, err := c.Do(ctx, http.MethodGet, "/api/auth/whoami", nil, &out); err != nil {
		return WhoAmI{}, fmt.Errorf("who am i: %w", err)
	}
	return out, nil
}

// Login trades token for the dashboard's session (POST /api/auth/login).
// The cookies it sets are for browsers; the CLI uses it only to check a
// token without sending it as a bearer.
func (c *Client) Login(ctx context.Context, token string) (LoginResponse, error) {
	var out LoginResponse
	if _, err := c.Do(ctx, http.MethodPost, "/api/auth/login", LoginRequest{Token: token}, &out); err != nil {
		return LoginResponse{}, fmt.Errorf("log in: %w", err)
	}
	return out, nil
}

// Logout clears the dashboard's session cookies (POST /api/auth/logout).
func (c *Client) Logout(ctx context.Context) error {
	if _, err := c.Do(ctx, http.MethodPost, "/api/auth/logout", nil, nil); err != nil {
		return fmt.Errorf("log out: %w", err)
	}
	return nil
}

// The account reads below are consistent (?consistent=1): the answering
// replica reads through the leader, so that a change made a moment ago
// through any replica is seen, and "user set" merges into the latest
// account. Without a leader they fail like a write.

// Users lists the accounts, sorted by name (GET /api/users).
func (c *Client) Users(ctx context.Context) ([]fsm.User, error) {
	var out []fsm.User
	if _, err := c.Do(ctx, http.MethodGet, "/api/users?consistent=1", nil, &out); err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	return out, nil
}

// User returns one account (GET /api/users/{name}); an unknown name is an
// *APIError with StatusCode 404.
func (c *Client) User(ctx context.Context, name string) (fsm.User, error) {
	var out fsm.User
	if err := checkName("user", name); err != nil {
		return out, err
	}
	if _, err := c.Do(ctx, http.MethodGet, "/api/users/"+url.PathEscape(name)+"?consistent=1", nil, &out); err != nil {
		return fsm.User{}, fmt.Errorf("get user %s: %w", name, err)
	}
	return out, nil
}

// CreateUser adds an account (POST /api/users, admin) and returns it. An
// existing name is an *APIError with StatusCode 409.
func (c *Client) CreateUser(ctx context.Context, req UserRequest) (fsm.User, error) {
	var out fsm.User
	if err := checkName("user", req.Name); err != nil {
		return out, err
	}
	if _, err := c.Do(ctx, http.MethodPost, "/api/users", req, &out); err != nil {
		return fsm.User{}, fmt.Errorf("create user %s: %w", req.Name, err)
	}
	return out, nil
}

// PatchUser replaces the fields of an account that patch gives
// (PATCH /api/users/{name}, admin) and returns the account.
func (c *Client) PatchUser(ctx context.Context, name string, patch UserPatch) (fsm.User, error) {
	var out fsm.User
	if err := checkName("user", name); err != nil {
		return out, err
	}
	if _, err := c.Do(ctx, http.MethodPatch, "/api/users/"+url.PathEscape(name), patch, &out); err != nil {
		return fsm.User{}, fmt.Errorf("change user %s: %w", name, err)
	}
	return out, nil
}

// DeleteUser removes an account and its tokens (DELETE /api/users/{name},
// admin). Removing the last admin is an *APIError with StatusCode 409.
func (c *Client) DeleteUser(ctx context.Context, name string) error {
	if err := checkName("user", name); err != nil {
		return err
	}
	if _, err := c.Do(ctx, http.MethodDelete, "/api/users/"+url.PathEscape(name), nil, nil); err != nil {
		return fmt.Errorf("remove user %s: %w", name, err)
	}
	return nil
}

// Groups lists the groups, sorted by name (GET /api/groups).
func (c *Client) Groups(ctx context.Context) ([]fsm.Group, error) {
	var out []fsm.Group
	if _, err := c.Do(ctx, http.MethodGet, "/api/groups?consistent=1", nil, &out); err != nil {
		return nil, fmt.Errorf("list groups: %w", err)
	}
	return out, nil
}

// CreateGroup adds a group (POST /api/groups, admin) and returns it.
func (c *Client) CreateGroup(ctx context.Context, req GroupRequest) (fsm.Group, error) {
	var out fsm.Group
	if err := checkName("group", req.Name); err != nil {
		return out, err
	}
	if _, err := c.Do(ctx, http.MethodPost, "/api/groups", req, &out); err != nil {
		return fsm.Group{}, fmt.Errorf("create group %s: %w", req.Name, err)
	}
	return out, nil
}

// PatchGroup replaces a group's quota or policy when patch gives them
// (PATCH /api/groups/{name}, admin) and returns the group.
func (c *Client) PatchGroup(ctx context.Context, name string, patch GroupPatch) (fsm.Group, error) {
	var out fsm.Group
	if err := checkName("group", name); err != nil {
		return out, err
	}
	if _, err := c.Do(ctx, http.MethodPatch, "/api/groups/"+url.PathEscape(name), patch, &out); err != nil {
		return fsm.Group{}, fmt.Errorf("change group %s: %w", name, err)
	}
	return out, nil
}

// DeleteGroup removes a group (DELETE /api/groups/{name}, admin).
func (c *Client) DeleteGroup(ctx context.Context, name string) error {
	if err := checkName("group", name); err != nil {
		return err
	}
	if _, err := c.Do(ctx, http.MethodDelete, "/api/groups/"+url.PathEscape(name), nil, nil); err != nil {
		return fmt.Errorf("remove group %s: %w", name, err)
	}
	return nil
}

// Tokens lists API tokens, never their secrets (GET /api/tokens): the
// caller's own, or for an admin everyone's or user's when user is set.
func (c *Client) Tokens(ctx context.Context, user string) ([]TokenInfo, error) {
	v := url.Values{"consistent": {"1"}}
	if user != "" {
		v.Set("user", user)
	}
	path := "/api/tokens?" + v.Encode()
	var out []TokenInfo
	if _, err := c.Do(ctx, http.MethodGet, path, nil, &out); err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	return out, nil
}

// CreateToken makes an API token (POST /api/tokens): the caller's own, or
// an admin's for req.User. The answer holds the secret, shown this once.
func (c *Client) CreateToken(ctx context.Context, req TokenRequest) (TokenResponse, error) {
	var out TokenResponse
	if _, err := c.Do(ctx, http.MethodPost, "/api/tokens", req, &out); err != nil {
		return TokenResponse{}, fmt.Errorf("create token: %w", err)
	}
	return out, nil
}

// RevokeToken deletes an API token by its ID (DELETE /api/tokens/{id}): the
// caller's own, or anyone's for an admin. Calls with it fail from then on.
func (c *Client) RevokeToken(ctx context.Context, id string) error {
	if err := checkID("token", id); err != nil {
		return err
	}
	if _, err := c.Do(ctx, http.MethodDelete, "/api/tokens/"+url.PathEscape(id), nil, nil); err != nil {
		return fmt.Errorf("revoke token %s: %w", id, err)
	}
	return nil
}

// AuditQuery filters GET /api/audit. Zero fields are not sent.
type AuditQuery struct {
	// User keeps the records of one account.
	User string
	// Since is an RFC 3339 time or a Go duration back from now ("24h").
	Since string
	// After is the NextAfter of the previous page.
	After string
	// Limit caps the page (the server's default when 0, at most 1000).
	Limit int
}

// Audit returns one page of audit records, oldest first (GET /api/audit);
// pass its NextAfter as AuditQuery.After for the next page.
func (c *Client) Audit(ctx context.Context, q AuditQuery) (AuditPage, error) {
	v := url.Values{"consistent": {"1"}}
	for _, kv := range [][2]string{{"user", q.User}, {"since", q.Since}, {"after", q.After}} {
		if kv[1] != "" {
			v.Set(kv[0], kv[1])
		}
	}
	if q.Limit != 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	path := "/api/audit?" + v.Encode()
	var out AuditPage
	if _, err := c.Do(ctx, http.MethodGet, path, nil, &out); err != nil {
		return AuditPage{}, fmt.Errorf("read the audit log: %w", err)
	}
	return out, nil
}

// checkName rejects an empty name or one that would change the path.
func checkName(kind, name string) error {
	if strings.TrimSpace(name) == "" {
		return fmt.Errorf("empty %s name", kind)
	}
	if strings.ContainsAny(name, "/?#") {
		return errors.New(kind + " name " + strconv.Quote(name) + ": must not contain / ? or #")
	}
	return nil
}
