package api

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// ErrAnswerTooLarge is returned (wrapped) when a 2xx answer's body is larger
// than the client's limit; nothing of it is decoded.
var ErrAnswerTooLarge = errors.New("answer too large")

// NewRequestID returns a random idempotency key (crypto/rand), for
// RequestIDHeader and SubmitRequest.RequestID.
func NewRequestID() string { return rand.Text() }

// WriteJSON writes v as a JSON answer with status. An encoding error after
// the header is sent is dropped: the client went away.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v) //nolint:errcheck // the client went away; nothing to do
}

// WriteError writes the error body {"error": msg, "detail": msg} (the
// original's field and ours) with status.
func WriteError(w http.ResponseWriter, status int, msg string) {
	WriteJSON(w, status, ErrorResponse{Error: msg, Detail: msg})
}

// caller sends one HTTP exchange to one base URL. It is the one place that
// sets the cluster token and the other common headers, bounds how much of an
// answer is read and turns a non-2xx answer into an *APIError; Client,
// RunnerClient and ReplicaClient are built on it. Safe for concurrent use.
type caller struct {
	hc        *http.Client
	token     string
	bearer    string
	userAgent string
	maxBytes  int64
	// header is sent on every request (e.g. ForwardedHeader).
	header http.Header
}

// answer is one replica's (or runner's) whole answer.
type answer struct {
	host   string
	status int
	header http.Header
	body   []byte
}

// send performs one exchange with host and reads the whole answer. A
// transport error (refused, reset, timeout) or a 2xx body over the limit is
// returned as an error; any status, 2xx or not, is an answer.
func (c *caller) send(ctx context.Context, host, method, path string, payload []byte, accept string) (*answer, error) {
	var rd io.Reader
	if payload != nil {
		rd = bytes.NewReader(payload)
	}
	req, err := c.newRequest(ctx, host, method, path, rd, accept)
	if err != nil {
		return nil, err
	}
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // drop the repeated method and URL
		}
		return nil, fmt.Errorf("%s: %w", host, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, c.maxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read answer from %s: %w", host, err)
	}
	if int64(len(b)) > c.maxBytes {
		if resp.StatusCode/100 == 2 {
			return nil, fmt.Errorf("read answer from %s: %w: more than %d bytes", host, ErrAnswerTooLarge, c.maxBytes)
		}
		b = b[:c.maxBytes] // an error body: its start still has the message
	}
	return &answer{host: host, status: resp.StatusCode, header: resp.Header, body: b}, nil
}

// newRequest builds a request to host+path with the common headers: the
// caller's fixed ones, Accept, the cluster token, User-Agent and the request
// ID attached to ctx.
func (c *caller) newRequest(ctx context.Context, host, method, path string, body io.Reader, accept string) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, host+path, body)
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	for k, v := range c.header {
		req.Header[k] = v
	}
	req.Header.Set("Accept", accept)
	if c.token != "" {
		req.Header.Set(TokenHeader, c.token)
	}
	if c.bearer != "" {
		req.Header.Set("Authorization", "Bearer "+c.bearer)
	}
	if c.userAgent != "" {
		req.Header.Set("User-Agent", c.userAgent)
	}
	if id, ok := ctx.Value(requestIDKey{}).(string); ok {
		req.Header.Set(RequestIDHeader, id)
	}
	return req, nil
}

// errorAnswer reads the start of a non-2xx answer's body into an *APIError.
func (c *caller) errorAnswer(host string, resp *http.Response) *APIError {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, min(c.maxBytes, 1<<20))) //nolint:errcheck // a partial body still has the message
	return &APIError{StatusCode: resp.StatusCode, Message: errorMessage(b), Host: host}
}

// call encodes body as JSON (nil: no body), sends it to host and decodes a
// 2xx answer into out (nil: discarded). A non-2xx answer is an *APIError.
func (c *caller) call(ctx context.Context, host, method, path string, body, out any) error {
	payload, err := encodeBody(method, path, body)
	if err != nil {
		return err
	}
	a, err := c.send(ctx, strings.TrimRight(host, "/"), method, path, payload, "application/json")
	if err != nil {
		return err
	}
	return a.decode(method, path, out)
}

// encodeBody encodes a request body as JSON; a nil body is no body.
func encodeBody(method, path string, body any) ([]byte, error) {
	if body == nil {
		return nil, nil
	}
	b, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("encode %s %s body: %w", method, path, err)
	}
	return b, nil
}

// decode turns a 2xx answer into out and any other into an *APIError.
func (a *answer) decode(method, path string, out any) error {
	if a.status < 200 || a.status > 299 {
		return &APIError{StatusCode: a.status, Message: errorMessage(a.body), Host: a.host}
	}
	if out == nil || len(bytes.TrimSpace(a.body)) == 0 {
		return nil
	}
	if err := json.Unmarshal(a.body, out); err != nil {
		return fmt.Errorf("decode %s %s answer from %s: %w", method, path, a.host, err)
	}
	return nil
}

// errorMessage extracts the message of an error body: {"error"}, the
// original's {"detail"} (a string or FastAPI's validation list), or the text.
func errorMessage(body []byte) string {
	var e struct {
		Error  string          `json:"error"`
		Detail json.RawMessage `json:"detail"`
	}
	if json.Unmarshal(body, &e) == nil {
		if e.Error != "" {
			return e.Error
		}
		var s string
		if json.Unmarshal(e.Detail, &s) == nil && s != "" {
			return s
		}
		if len(e.Detail) > 0 && string(e.Detail) != "null" {
			return string(e.Detail)
		}
	}
	msg := strings.TrimSpace(string(body))
	if len(msg) > 512 {
		msg = msg[:512] + "..."
	}
	return msg
}
