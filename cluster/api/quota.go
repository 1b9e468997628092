package api

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
)

// Quota lists every user's and group's quota that sets a limit, with what
// is used of each resource (GET /api/quota). A user name narrows it to
// that user (limited or not) and their groups with a limit; an unknown
// user is an *APIError with StatusCode 404.
func (c *Client) Quota(ctx context.Context, user string) ([]QuotaEntry, error) {
	path := "/api/quota"
	if user != "" {
		path += "?" + url.Values{"user": {user}}.Encode()
	}
	var out []QuotaEntry
	if _, err := c.Do(ctx, http.MethodGet, path, nil, &out); err != nil {
		return nil, fmt.Errorf("list quotas: %w", err)
	}
	return out, nil
}
