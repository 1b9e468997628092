// Package notify is what a webhook notification is on the wire: its JSON
// payload, its HMAC-SHA256 signature, the exponential backoff between
// attempts and one signed POST with a deadline. It knows nothing of Raft or
// of which replica sends: the leader's notifier (package cluster) decides
// what to deliver and records the outcomes in the replicated state.
package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Header names of a delivery.
const (
	// SignatureHeader carries "sha256=<hex HMAC-SHA256 of the body>".
	SignatureHeader = "X-HakuRiver-Signature"
	// DeliveryHeader carries the idempotency key: the same for every
	// redelivery of one event ("<task ID>-<attempt>-<status>").
	DeliveryHeader = "X-HakuRiver-Delivery"
	// EventHeader carries the event name (EventTaskStatus).
	EventHeader = "X-HakuRiver-Event"
)

// EventTaskStatus is the event of a task status change.
const EventTaskStatus = "task.status"

// Sign returns the signature header value of body under secret:
// "sha256=" and the hex HMAC-SHA256.
func Sign(secret, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// Verify reports whether header is body's signature under secret, in
// constant time. Receivers do this before trusting a delivery.
func Verify(secret, body []byte, header string) bool {
	want := Sign(secret, body)
	return hmac.Equal([]byte(want), []byte(header))
}

// Backoff returns the wait before attempt n+1 after n failed attempts
// (n >= 1): base, 2×base, 4×base, … capped at max. It is deterministic: the
// attempts of many deliveries spread out because their events do.
func Backoff(n int, base, max time.Duration) time.Duration {
	if n < 1 {
		n = 1
	}
	d := base
	for i := 1; i < n; i++ {
		d *= 2
		if d >= max || d <= 0 {
			return max
		}
	}
	return min(d, max)
}

// Payload is the JSON body of a delivery.
type Payload struct {
	// Event is EventTaskStatus.
	Event string `json:"event"`
	// Delivery is the idempotency key (also in DeliveryHeader).
	Delivery     string     `json:"delivery"`
	TaskID       string     `json:"task_id"`
	BatchID      string     `json:"batch_id,omitempty"`
	Name         string     `json:"name,omitempty"`
	Owner        string     `json:"owner,omitempty"`
	Status       string     `json:"status"`
	Final        bool       `json:"final"`
	ExitCode     *int       `json:"exit_code,omitempty"`
	ErrorMessage string     `json:"error_message,omitempty"`
	Node         string     `json:"node,omitempty"`
	SubmittedAt  time.Time  `json:"submitted_at"`
	StartedAt    *time.Time `json:"started_at,omitempty"`
	CompletedAt  *time.Time `json:"completed_at,omitempty"`
	// SentAt is when this attempt was made (by the leader's clock).
	SentAt time.Time `json:"sent_at"`
}

// MaxURLLen bounds a webhook URL.
const MaxURLLen = 512

// CheckURL checks the syntax of a webhook URL: absolute http or https with
// a host, no credentials, at most MaxURLLen bytes.
func CheckURL(raw string) error {
	if len(raw) > MaxURLLen {
		return fmt.Errorf("longer than %d bytes", MaxURLLen)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("not a URL: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("scheme %q: want http or https", u.Scheme)
	}
	if u.Host == "" {
		return errors.New("no host")
	}
	if u.User != nil {
		return errors.New("credentials in a URL are not accepted")
	}
	if strings.ContainsAny(raw, " \t\r\n\\") {
		return errors.New("contains white space or a backslash")
	}
	// A dot segment could climb out of an allowed path prefix
	// ("https://h/hooks/../admin") on a receiver that resolves it.
	for _, seg := range strings.Split(strings.ToLower(u.EscapedPath()), "/") {
		switch strings.ReplaceAll(seg, "%2e", ".") {
		case ".", "..":
			return errors.New("dot segments (. or ..) in the path are not accepted")
		}
	}
	return nil
}

// Allowed reports whether raw starts with one of the prefixes. A prefix
// that names only an origin ("https://hooks.lab") matches only that origin,
// never "https://hooks.lab.evil.example".
func Allowed(raw string, prefixes []string) bool {
	for _, p := range prefixes {
		if p == "" || !strings.HasPrefix(raw, p) {
			continue
		}
		if strings.HasSuffix(p, "/") || len(raw) == len(p) {
			return true
		}
		switch raw[len(p)] {
		case '/', '?', '#':
			return true
		}
		if strings.Count(p, "/") > 2 { // a path prefix: "https://h/hooks" allows "https://h/hooks-x"
			return true
		}
	}
	return false
}

// Sender POSTs signed deliveries.
type Sender struct {
	// Client makes the requests; its Timeout is not relied on (Timeout is).
	Client *http.Client
	// Secret signs every body.
	Secret []byte
	// Timeout bounds one attempt.
	Timeout time.Duration
	// UserAgent names the sender.
	UserAgent string
}

// StatusError is the error of a delivery the receiver answered with a
// status other than 2xx.
type StatusError struct{ Code int }

func (e *StatusError) Error() string { return fmt.Sprintf("HTTP %d", e.Code) }

// Send makes one attempt: a POST of body to target with the signature and
// the idempotency key. It returns nil when the receiver answered 2xx.
func (s *Sender) Send(ctx context.Context, target, key string, body []byte) error {
	ctx, cancel := context.WithTimeout(ctx, s.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(SignatureHeader, Sign(s.Secret, body))
	req.Header.Set(DeliveryHeader, key)
	req.Header.Set(EventHeader, EventTaskStatus)
	if s.UserAgent != "" {
		req.Header.Set("User-Agent", s.UserAgent)
	}
	resp, err := s.Client.Do(req)
	if err != nil {
		return fmt.Errorf("post: %w", err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) //nolint:errcheck // only to reuse the connection
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return &StatusError{Code: resp.StatusCode}
	}
	return nil
}
