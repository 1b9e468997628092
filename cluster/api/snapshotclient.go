package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// SnapshotPath is the endpoint of a backup of the cluster state.
const SnapshotPath = "/api/cluster/snapshot"

// Snapshot streams a backup of the cluster state (GET
// /api/cluster/snapshot, admin only) into w, through the first replica that
// answers; a follower relays the leader's stream. Replicas that cannot be
// reached or answer 503 are skipped as in Do, within the retry budget; once
// bytes reached w nothing is retried. The exchange is bounded by ctx only
// (not by the client's per-call Timeout): a large state takes a while. It
// returns the number of bytes written. Whether the stream is complete is
// for the caller to check (the file's trailer and checksum).
func (c *Client) Snapshot(ctx context.Context, w io.Writer) (int64, error) {
	hc := &http.Client{Transport: c.hc.Transport, CheckRedirect: c.hc.CheckRedirect}
	var budget time.Duration
	for {
		var lastErr error
		var wait time.Duration
		start := int(c.next.Load())
		for i := range c.hosts {
			idx := (start + i) % len(c.hosts)
			host := c.hosts[idx]
			resp, err := c.open(ctx, hc, host)
			if err != nil {
				if ctx.Err() != nil {
					return 0, fmt.Errorf("GET %s: %w", SnapshotPath, ctx.Err())
				}
				lastErr = err
				continue
			}
			if resp.StatusCode == http.StatusServiceUnavailable {
				lastErr = c.errorAnswer(host, resp)
				wait = max(wait, retryAfter(resp.Header.Get("Retry-After")))
				resp.Body.Close()
				continue
			}
			c.next.Store(int64(idx))
			defer resp.Body.Close()
			if resp.StatusCode/100 != 2 {
				return 0, c.errorAnswer(host, resp)
			}
			n, err := io.Copy(w, resp.Body)
			if err != nil {
				return n, fmt.Errorf("read snapshot from %s after %d bytes: %w", host, n, err)
			}
			return n, nil
		}
		var ae *APIError
		if !errors.As(lastErr, &ae) {
			return 0, fmt.Errorf("GET %s: %w: %w", SnapshotPath, ErrNoReplica, lastErr)
		}
		wait = min(wait, c.cfg.MaxRetryWait, c.cfg.RetryBudget-budget)
		if wait <= 0 {
			return 0, lastErr
		}
		budget += wait
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("GET %s: %w; last answer: %w", SnapshotPath, ctx.Err(), lastErr)
		case <-time.After(wait):
		}
	}
}

// open sends GET SnapshotPath to host and returns the answer unread.
func (c *Client) open(ctx context.Context, hc *http.Client, host string) (*http.Response, error) {
	req, err := c.newRequest(ctx, host, http.MethodGet, SnapshotPath, nil, "application/octet-stream, application/json")
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("%s: %w", host, err)
	}
	return resp, nil
}
