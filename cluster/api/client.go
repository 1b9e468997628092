package api

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hakuriver/hakuriver-ha/fsm"
)

// ErrNoReplica is returned (wrapped, together with the last transport error)
// when no configured host replica could be reached at all.
var ErrNoReplica = errors.New("no host replica reachable")

// Client defaults, used by DefaultClientConfig and for zero fields of a
// ClientConfig passed to NewClient.
const (
	DefaultClientTimeout      = 30 * time.Second
	DefaultClientDialTimeout  = 3 * time.Second
	DefaultClientMaxRetryWait = 2 * time.Second
	DefaultClientRetryBudget  = 15 * time.Second
)

// maxResponseBytes bounds how much of an answer the client reads.
const maxResponseBytes = 64 << 20

// defaultRetryAfter is the wait after a 503 round when no replica sent a
// usable Retry-After header.
const defaultRetryAfter = 500 * time.Millisecond

// ClientConfig configures a Client. Zero durations take the Default* values.
type ClientConfig struct {
	// Hosts are the replicas' base URLs ("http://10.0.0.1:8000"). A bare
	// "host:port" gets "http://"; one entry may hold a comma-separated list.
	Hosts []string
	// Token, when set, is sent in TokenHeader on every request: the
	// cluster token of internal calls and bootstrap.
	Token string
	// Bearer, when set, is an account's API token, sent as
	// "Authorization: Bearer" on every request.
	Bearer string
	// Timeout bounds one HTTP exchange with one replica, body included.
	Timeout time.Duration
	// DialTimeout bounds opening a TCP connection to one replica.
	DialTimeout time.Duration
	// MaxRetryWait caps a single wait, taken from Retry-After, after every
	// replica answered 503 (no leader) or was unreachable.
	MaxRetryWait time.Duration
	// RetryBudget caps the total time one call spends waiting out 503s; the
	// call's ctx bounds it too.
	RetryBudget time.Duration
	// UserAgent is sent as User-Agent when set.
	UserAgent string
	// TLS verifies https:// replicas (nil: the system roots); set it to
	// trust the cluster CA (--ca-file).
	TLS *tls.Config
}

// DefaultClientConfig returns a ClientConfig for the local default replica.
func DefaultClientConfig() ClientConfig {
	return ClientConfig{
		Hosts:        []string{"http://127.0.0.1:8000"},
		Timeout:      DefaultClientTimeout,
		DialTimeout:  DefaultClientDialTimeout,
		MaxRetryWait: DefaultClientMaxRetryWait,
		RetryBudget:  DefaultClientRetryBudget,
	}
}

// Validate reports the first invalid setting of c.
func (c ClientConfig) Validate() error {
	if _, err := ParseHosts(c.Hosts...); err != nil {
		return err
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"timeout", c.Timeout},
		{"dial timeout", c.DialTimeout},
		{"max retry wait", c.MaxRetryWait},
		{"retry budget", c.RetryBudget},
	} {
		if d.v < 0 {
			return fmt.Errorf("client config: %s must not be negative, got %s", d.name, d.v)
		}
	}
	return nil
}

// ParseHosts normalises replica addresses: each value may be a
// comma-separated list; entries are trimmed, blank ones skipped, "http://"
// is added when the scheme is missing, a trailing "/" is removed and
// duplicates are dropped. It fails on an unparsable entry or an empty result.
func ParseHosts(values ...string) ([]string, error) {
	var out []string
	seen := make(map[string]bool)
	for _, v := range values {
		for _, h := range strings.Split(v, ",") {
			h = strings.TrimSpace(h)
			if h == "" {
				continue
			}
			if !strings.Contains(h, "://") {
				h = "http://" + h
			}
			u, err := url.Parse(h)
			if err != nil {
				return nil, fmt.Errorf("parse host %q: %w", h, err)
			}
			if u.Scheme != "http" && u.Scheme != "https" {
				return nil, fmt.Errorf("parse host %q: scheme must be http or https", h)
			}
			if u.Host == "" {
				return nil, fmt.Errorf("parse host %q: missing host name", h)
			}
			if u.RawQuery != "" || u.Fragment != "" {
				return nil, fmt.Errorf("parse host %q: a base URL takes no query or fragment", h)
			}
			h = strings.TrimRight(u.String(), "/")
			if !seen[h] {
				seen[h] = true
				out = append(out, h)
			}
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no host given: want a base URL such as http://127.0.0.1:8000")
	}
	return out, nil
}

// APIError is a non-2xx answer of a host replica. Message comes from the
// {"error": ...} (or the original's {"detail": ...}) body, else the body text.
type APIError struct {
	StatusCode int
	Message    string
	Host       string
}

// Error implements error.
func (e *APIError) Error() string {
	msg := e.Message
	if msg == "" {
		msg = http.StatusText(e.StatusCode)
	}
	return fmt.Sprintf("%s (HTTP %d from %s)", msg, e.StatusCode, e.Host)
}

// TaskQuery filters GET /api/tasks. Zero fields are not sent.
type TaskQuery struct {
	Status string
	Node   string
	Batch  string
	Limit  int
	After  string
	// User lists the tasks of one owner.
	User string
	// Type is "command" or "vps" ("" for both).
	Type string
	// Text lists the tasks whose command line contains it
	// (fsm.Filter.Text).
	Text string
	// Name lists the tasks of that name.
	Name string
}

// Page says whether GET /api/tasks has more results and where they start.
type Page struct {
	More      bool
	NextAfter string
}

// Client calls the host REST API through any of several replicas. On a
// connection error it tries the next replica; when replicas answer 503 (no
// leader) it moves on and, once every replica was tried, waits a short
// bounded time (Retry-After) before another round. Any other answer is
// final. A Client is safe for concurrent use; it remembers the replica that
// answered last and starts there.
type Client struct {
	caller
	cfg   ClientConfig
	hosts []string
	next  atomic.Int64 // index into hosts of the last replica that answered
}

// NewClient builds a Client with its own http.Client and transport.
func NewClient(cfg ClientConfig) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	hosts, err := ParseHosts(cfg.Hosts...)
	if err != nil {
		return nil, err
	}
	def := DefaultClientConfig()
	if cfg.Timeout == 0 {
		cfg.Timeout = def.Timeout
	}
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = def.DialTimeout
	}
	if cfg.MaxRetryWait == 0 {
		cfg.MaxRetryWait = def.MaxRetryWait
	}
	if cfg.RetryBudget == 0 {
		cfg.RetryBudget = def.RetryBudget
	}
	cfg.Hosts = hosts
	dialer := &net.Dialer{Timeout: cfg.DialTimeout, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           dialer.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          32,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   cfg.DialTimeout + 5*time.Second,
		ExpectContinueTimeout: time.Second,
		TLSClientConfig:       cfg.TLS,
	}
	return &Client{
		caller: caller{
			hc:        &http.Client{Transport: tr, Timeout: cfg.Timeout},
			token:     cfg.Token,
			bearer:    cfg.Bearer,
			userAgent: cfg.UserAgent,
			maxBytes:  maxResponseBytes,
		},
		cfg:   cfg,
		hosts: append([]string(nil), hosts...),
	}, nil
}

// TLS returns the TLS config https:// replicas are verified with (nil: the
// system roots), for connections the Client does not make itself (a
// WebSocket).
func (c *Client) TLS() *tls.Config { return c.cfg.TLS }

// Hosts returns the normalised replica base URLs, in configured order.
func (c *Client) Hosts() []string { return append([]string(nil), c.hosts...) }

// Close releases idle connections. The Client stays usable.
func (c *Client) Close() { c.hc.CloseIdleConnections() }

// Do sends one request to path (which may carry a query) with body encoded
// as JSON (nil: no body) and decodes a 2xx answer into out (nil: discarded).
// It returns the answer's headers. A non-2xx answer is an *APIError; when no
// replica answered it returns an error wrapping ErrNoReplica, or ctx's error
// when ctx ended first.
func (c *Client) Do(ctx context.Context, method, path string, body, out any) (http.Header, error) {
	a, err := c.exchange(ctx, method, path, body, "application/json")
	if a == nil {
		return nil, err
	}
	return a.header, a.decode(method, path, out)
}

// DoRaw is Do for an answer that is not JSON (a log file): it returns a 2xx
// answer's body as is, with its headers. Failover, retries and errors are
// those of Do; the headers of a non-2xx answer are returned too.
func (c *Client) DoRaw(ctx context.Context, method, path string, body any) ([]byte, http.Header, error) {
	a, err := c.exchange(ctx, method, path, body, "text/plain, application/json")
	if a == nil {
		return nil, nil, err
	}
	if err := a.decode(method, path, nil); err != nil {
		return nil, a.header, err
	}
	return a.body, a.header, nil
}

// exchange encodes body and runs rounds over the replicas until one gives a
// final answer, waiting out 503 rounds within MaxRetryWait, RetryBudget and
// ctx. It returns the final answer, or nil and the error of the last round.
func (c *Client) exchange(ctx context.Context, method, path string, body any, accept string) (*answer, error) {
	payload, err := encodeBody(method, path, body)
	if err != nil {
		return nil, err
	}
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	var budget time.Duration
	var prev error // the previous round's 503, kept when ctx ends a later round
	for {
		resp, wait, err := c.round(ctx, method, path, payload, accept)
		if resp != nil {
			return resp, nil
		}
		if prev != nil && ctx.Err() != nil {
			return nil, fmt.Errorf("%s %s: %w; last answer: %w", method, path, ctx.Err(), prev)
		}
		if wait <= 0 {
			return nil, err
		}
		prev = err
		// No replica had a leader (or was reachable): wait out the
		// election, bounded by MaxRetryWait, RetryBudget and ctx.
		wait = min(wait, c.cfg.MaxRetryWait, c.cfg.RetryBudget-budget)
		if wait <= 0 {
			return nil, err
		}
		budget += wait
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("%s %s: %w; last answer: %w", method, path, ctx.Err(), err)
		case <-t.C:
		}
	}
}

// round tries every replica once, starting with the last one that answered.
// It returns the first final answer. Otherwise, when some replica answered
// 503, it returns that *APIError and the wait its Retry-After asked for;
// when none answered at all, an error wrapping ErrNoReplica and no wait.
func (c *Client) round(ctx context.Context, method, path string, payload []byte, accept string) (*answer, time.Duration, error) {
	start := int(c.next.Load())
	var lastErr error
	var unavailable *APIError
	var wait time.Duration
	for i := range c.hosts {
		idx := (start + i) % len(c.hosts)
		a, err := c.send(ctx, c.hosts[idx], method, path, payload, accept)
		if err != nil {
			if ctx.Err() != nil {
				return nil, 0, fmt.Errorf("%s %s: %w", method, path, ctx.Err())
			}
			lastErr = err
			continue
		}
		if a.status == http.StatusServiceUnavailable {
			unavailable = &APIError{StatusCode: a.status, Message: errorMessage(a.body), Host: a.host}
			wait = max(wait, retryAfter(a.header.Get("Retry-After")))
			continue
		}
		c.next.Store(int64(idx))
		return a, 0, nil
	}
	if unavailable != nil {
		return nil, wait, unavailable
	}
	return nil, 0, fmt.Errorf("%s %s: %w (tried %s): %w", method, path, ErrNoReplica,
		strings.Join(c.hosts, ", "), lastErr)
}

// retryAfter parses a Retry-After header (seconds or HTTP date); a missing
// or unusable value yields defaultRetryAfter.
func retryAfter(v string) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return defaultRetryAfter
	}
	if n, err := strconv.Atoi(v); err == nil {
		if n <= 0 {
			return defaultRetryAfter
		}
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := time.Until(t); d > 0 {
			return d
		}
	}
	return defaultRetryAfter
}

// Submit creates one task per target (POST /api/submit). An empty
// req.RequestID is filled with NewRequestID, and the same ID is sent on
// every retry, so a submit that fails over to another replica never creates
// tasks twice.
func (c *Client) Submit(ctx context.Context, req SubmitRequest) (SubmitResponse, error) {
	if req.RequestID == "" {
		req.RequestID = NewRequestID()
	}
	var out SubmitResponse
	if _, err := c.Do(ctx, http.MethodPost, "/api/submit", req, &out); err != nil {
		return SubmitResponse{}, fmt.Errorf("submit: %w", err)
	}
	return out, nil
}

// Status returns one task (GET /api/status/{id}); an unknown ID is an
// *APIError with StatusCode 404.
func (c *Client) Status(ctx context.Context, id string) (fsm.Task, error) {
	var out fsm.Task
	if err := checkID("task", id); err != nil {
		return out, err
	}
	if _, err := c.Do(ctx, http.MethodGet, "/api/status/"+url.PathEscape(id), nil, &out); err != nil {
		return fsm.Task{}, fmt.Errorf("get task %s: %w", id, err)
	}
	return out, nil
}

// MaxStatusWait is the longest wait a blocking GET /api/status accepts:
// below DefaultClientTimeout and the 30 s a follower gives a call it
// forwards to the leader (?consistent=1).
const MaxStatusWait = 20 * time.Second

// StatusChange returns task id once its status is no longer unless, or
// as it is after wait (at most MaxStatusWait): GET /api/status/{id} as a
// blocking query. A replica of an earlier version answers at once, so the
// task may come back unchanged before wait has passed.
func (c *Client) StatusChange(ctx context.Context, id string, unless fsm.Status, wait time.Duration) (fsm.Task, error) {
	var out fsm.Task
	if err := checkID("task", id); err != nil {
		return out, err
	}
	v := url.Values{"wait": {wait.String()}, "unless": {string(unless)}}
	if _, err := c.Do(ctx, http.MethodGet, "/api/status/"+url.PathEscape(id)+"?"+v.Encode(), nil, &out); err != nil {
		return fsm.Task{}, fmt.Errorf("get task %s: %w", id, err)
	}
	return out, nil
}

// Tasks lists tasks newest first (GET /api/tasks) and says whether another
// page exists; pass Page.NextAfter as TaskQuery.After to fetch it.
func (c *Client) Tasks(ctx context.Context, q TaskQuery) ([]fsm.Task, Page, error) {
	v := url.Values{}
	for _, kv := range [][2]string{{"status", q.Status}, {"node", q.Node}, {"batch", q.Batch}, {"after", q.After}, {"user", q.User}, {"type", q.Type}, {"text", q.Text}, {"name", q.Name}} {
		if kv[1] != "" {
			v.Set(kv[0], kv[1])
		}
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	path := "/api/tasks"
	if len(v) > 0 {
		path += "?" + v.Encode()
	}
	var out []fsm.Task
	h, err := c.Do(ctx, http.MethodGet, path, nil, &out)
	if err != nil {
		return nil, Page{}, fmt.Errorf("list tasks: %w", err)
	}
	p := Page{
		More:      strings.EqualFold(h.Get(MoreHeader), "true"),
		NextAfter: h.Get(NextAfterHeader),
	}
	return out, p, nil
}

// Nodes lists the runner nodes (GET /api/nodes).
func (c *Client) Nodes(ctx context.Context) ([]NodeView, error) {
	var out []NodeView
	if _, err := c.Do(ctx, http.MethodGet, "/api/nodes", nil, &out); err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	return out, nil
}

// Health returns the recent health samples (GET /api/health), of every
// node or, when hostname is set, of that node only; an unknown hostname is
// an *APIError with StatusCode 404.
func (c *Client) Health(ctx context.Context, hostname string) (HealthResponse, error) {
	path := "/api/health"
	if hostname != "" {
		path += "?" + url.Values{"hostname": {hostname}}.Encode()
	}
	var out HealthResponse
	if _, err := c.Do(ctx, http.MethodGet, path, nil, &out); err != nil {
		return HealthResponse{}, fmt.Errorf("get health: %w", err)
	}
	return out, nil
}

// Queue lists the pending tasks in queue order (GET /api/queue), each with
// the reason it waits. It is a consistent read: the answering replica
// forwards it to the leader.
func (c *Client) Queue(ctx context.Context) ([]QueueEntry, error) {
	var out []QueueEntry
	if _, err := c.Do(ctx, http.MethodGet, "/api/queue", nil, &out); err != nil {
		return nil, fmt.Errorf("list queue: %w", err)
	}
	return out, nil
}

// Drain stops new placements on a node (POST /api/nodes/{name}/drain); its
// running tasks finish. Draining a drained node succeeds. An unknown node is
// an *APIError with StatusCode 404.
func (c *Client) Drain(ctx context.Context, name string) (MessageResponse, error) {
	return c.DrainWithReason(ctx, name, "")
}

// DrainWithReason is Drain with a reason (one printable line, at most 200
// bytes) that node listings and the dashboard show until the node is
// undrained; an empty reason sends no body. A reason the cluster refuses is
// an *APIError with StatusCode 400.
func (c *Client) DrainWithReason(ctx context.Context, name, reason string) (MessageResponse, error) {
	if strings.TrimSpace(name) == "" {
		return MessageResponse{}, errors.New("empty node name")
	}
	var body any
	if reason != "" {
		body = DrainRequest{Reason: reason}
	}
	return c.message(ctx, http.MethodPost, "/api/nodes/"+url.PathEscape(name)+"/drain", body, "drain node "+name)
}

// Undrain lets the scheduler place tasks on a drained node again
// (POST /api/nodes/{name}/undrain). An unknown node is an *APIError with
// StatusCode 404.
func (c *Client) Undrain(ctx context.Context, name string) (MessageResponse, error) {
	if strings.TrimSpace(name) == "" {
		return MessageResponse{}, errors.New("empty node name")
	}
	return c.message(ctx, http.MethodPost, "/api/nodes/"+url.PathEscape(name)+"/undrain", nil, "undrain node "+name)
}

// Log streams of a command task, for Logs.
const (
	StreamStdout = "stdout"
	StreamStderr = "stderr"
)

// LogOffsetHeader is set on GET /api/task/{id}/stdout|stderr to the offset
// to ask for next (?offset=).
const LogOffsetHeader = "X-Hakuriver-Offset"

// TaskStatusHeader is set on GET /api/task/{id}/stdout|stderr to the task's
// status when the bytes were read.
const TaskStatusHeader = "X-Hakuriver-Task-Status"

// Logs reads a command task's stdout or stderr (GET
// /api/task/{id}/{stream}) from byte offset on. It returns the bytes, the
// offset to pass next time and the task's status at the time of the read.
// A log file not written yet, or an unknown task, is an *APIError with
// StatusCode 404; a VPS task one with 400.
func (c *Client) Logs(ctx context.Context, id, stream string, offset int64) (data []byte, next int64, status string, err error) {
	if err := checkID("task", id); err != nil {
		return nil, offset, "", err
	}
	if stream != StreamStdout && stream != StreamStderr {
		return nil, offset, "", fmt.Errorf("invalid log stream %q: want %s or %s", stream, StreamStdout, StreamStderr)
	}
	if offset < 0 {
		return nil, offset, "", fmt.Errorf("invalid log offset %d: must not be negative", offset)
	}
	path := "/api/task/" + url.PathEscape(id) + "/" + stream
	if offset > 0 {
		path += "?offset=" + strconv.FormatInt(offset, 10)
	}
	data, h, err := c.DoRaw(ctx, http.MethodGet, path, nil)
	if err != nil {
		return nil, offset, "", fmt.Errorf("read %s of task %s: %w", stream, id, err)
	}
	next = offset + int64(len(data))
	if v := h.Get(LogOffsetHeader); v != "" {
		n, perr := strconv.ParseInt(v, 10, 64)
		if perr != nil || n < 0 {
			return nil, offset, "", fmt.Errorf("read %s of task %s: bad %s header %q", stream, id, LogOffsetHeader, v)
		}
		next = n
	}
	return data, next, h.Get(TaskStatusHeader), nil
}

// Pause asks to pause a running task (POST /api/command/{id}/pause); a task
// that is not running is an *APIError with StatusCode 409, an offline
// runner one with 503.
func (c *Client) Pause(ctx context.Context, id string) (MessageResponse, error) {
	return c.command(ctx, id, "pause")
}

// Resume asks to resume a paused task (POST /api/command/{id}/resume); a
// task that is not paused is an *APIError with StatusCode 409, an offline
// runner one with 503.
func (c *Client) Resume(ctx context.Context, id string) (MessageResponse, error) {
	return c.command(ctx, id, "resume")
}

// command runs POST /api/command/{id}/{action}.
func (c *Client) command(ctx context.Context, id, action string) (MessageResponse, error) {
	if err := checkID("task", id); err != nil {
		return MessageResponse{}, err
	}
	return c.message(ctx, http.MethodPost, "/api/command/"+url.PathEscape(id)+"/"+action, nil, action+" task "+id)
}

// Kill asks to kill a task (POST /api/kill/{id}); a finished task is an
// *APIError with StatusCode 409.
func (c *Client) Kill(ctx context.Context, id string) (MessageResponse, error) {
	// The same request ID on every replica tried makes a retried kill that
	// already committed answer 202 again instead of 409.
	ctx = context.WithValue(ctx, requestIDKey{}, NewRequestID())
	if err := checkID("task", id); err != nil {
		return MessageResponse{}, err
	}
	return c.message(ctx, http.MethodPost, "/api/kill/"+url.PathEscape(id), nil, "kill task "+id)
}

// Cluster describes the Raft group (GET /api/cluster). With consistent the
// answering replica forwards the read to the leader.
func (c *Client) Cluster(ctx context.Context, consistent bool) (ClusterStatus, error) {
	path := "/api/cluster"
	if consistent {
		path += "?consistent=1"
	}
	var out ClusterStatus
	if _, err := c.Do(ctx, http.MethodGet, path, nil, &out); err != nil {
		return ClusterStatus{}, fmt.Errorf("get cluster status: %w", err)
	}
	return out, nil
}

// Replicas returns every replica of the Raft configuration with its own
// term, indexes and lag, as the answering replica collected them (GET
// /api/cluster/replicas).
func (c *Client) Replicas(ctx context.Context) ([]ReplicaStatus, error) {
	var out []ReplicaStatus
	if _, err := c.Do(ctx, http.MethodGet, "/api/cluster/replicas", nil, &out); err != nil {
		return nil, fmt.Errorf("get replica status: %w", err)
	}
	return out, nil
}

// Join adds a host replica to the Raft group as a voter
// (POST /api/cluster/join; needs the cluster token, ClientConfig.Token).
func (c *Client) Join(ctx context.Context, req JoinRequest) (MessageResponse, error) {
	return c.message(ctx, http.MethodPost, "/api/cluster/join", req, "join "+req.ID)
}

// RemovePeer removes a replica from the Raft group
// (DELETE /api/cluster/peers/{id}; needs the cluster token).
func (c *Client) RemovePeer(ctx context.Context, id string) (MessageResponse, error) {
	if err := checkID("peer", id); err != nil {
		return MessageResponse{}, err
	}
	return c.message(ctx, http.MethodDelete, "/api/cluster/peers/"+url.PathEscape(id), nil, "remove peer "+id)
}

// TransferLeadership asks the leader to hand leadership to replica id, or
// to a replica of Raft's choice when id is empty
// (POST /api/cluster/leadership-transfer; needs the cluster token).
func (c *Client) TransferLeadership(ctx context.Context, id string) (MessageResponse, error) {
	return c.message(ctx, http.MethodPost, "/api/cluster/leadership-transfer", TransferRequest{ID: id}, "transfer leadership")
}

// message runs a call whose answer is a MessageResponse.
func (c *Client) message(ctx context.Context, method, path string, body any, what string) (MessageResponse, error) {
	var out MessageResponse
	if _, err := c.Do(ctx, method, path, body, &out); err != nil {
		return MessageResponse{}, fmt.Errorf("%s: %w", what, err)
	}
	return out, nil
}

// checkID rejects an empty or blank ID before it becomes a wrong path.
func checkID(kind, id string) error {
	if strings.TrimSpace(id) == "" {
		return fmt.Errorf("empty %s ID", kind)
	}
	return nil
}

// RequestIDHeader carries the idempotency key of a write; replicas keep it
// when forwarding, so a retry of a committed write is recognised.
const RequestIDHeader = "X-Hakuriver-Request-Id"

// requestIDKey is the context key of the request ID send attaches.
type requestIDKey struct{}

// BatchAction kills, pauses or resumes every task of a batch (POST
// /api/batch/{id}/{action}, action "kill", "pause" or "resume"); an unknown
// batch is an *APIError with StatusCode 404.
func (c *Client) BatchAction(ctx context.Context, id, action string) (BatchActionResponse, error) {
	if err := checkID("batch", id); err != nil {
		return BatchActionResponse{}, err
	}
	ctx = context.WithValue(ctx, requestIDKey{}, NewRequestID())
	var out BatchActionResponse
	if _, err := c.Do(ctx, http.MethodPost, "/api/batch/"+url.PathEscape(id)+"/"+url.PathEscape(action), nil, &out); err != nil {
		return BatchActionResponse{}, fmt.Errorf("%s batch %s: %w", action, id, err)
	}
	return out, nil
}
