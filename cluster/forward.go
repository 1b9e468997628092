package cluster

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/cluster/auth"
	"github.com/hakuriver/hakuriver-ha/cluster/httpapi"
)

// requestIDHeader carries an idempotency key that the first replica a write
// reaches attaches, so that its own retries through a new leader never create
// a second task.
const requestIDHeader = api.RequestIDHeader

// leaderInfo returns the current leader's ID and API base URL ("" when
// unknown).
func (h *Host) leaderInfo() (id, apiURL string) {
	_, lid := h.raft.r.LeaderWithID()
	id = string(lid)
	if id == "" {
		return "", ""
	}
	if id == h.cfg.NodeID {
		return id, h.apiURL
	}
	if m, ok := h.pool.Member(id); ok {
		return id, m.Meta.API
	}
	return id, ""
}

// onLeader runs next on the leader. On a follower the request is proxied to
// the leader and the leader's answer is returned unchanged. While no leader
// is known (or it is unreachable) the request waits, bounded by LeaderWait,
// and then gets 503 with Retry-After.
func (h *Host) onLeader(next http.HandlerFunc) http.HandlerFunc {
	return h.leaderRoute(next, false)
}

// onLeaderStream is onLeader for a route whose answer is a long stream (a
// backup of the state): a forward to the leader has no overall deadline,
// only an idle one (forwardIdle).
func (h *Host) onLeaderStream(next http.HandlerFunc) http.HandlerFunc {
	return h.leaderRoute(next, true)
}

// Bounds of a forward to the leader (Host.fwdLimits).
const (
	// forwardTimeout bounds a whole forwarded exchange.
	forwardTimeout = 30 * time.Second
	// forwardIdle bounds a streamed forward (onLeaderStream) while no
	// bytes of the answer move, the wait for its header included.
	forwardIdle = 30 * time.Second
)

// forwardLimits are the bounds of a forward to the leader: total for
// every route, idle instead for a streamed one.
type forwardLimits struct {
	total, idle time.Duration
}

// leaderRoute is onLeader; stream selects the idle bound of the forward.
func (h *Host) leaderRoute(next http.HandlerFunc, stream bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 16<<20))
		if err != nil {
			writeError(w, badRequest("read request body: %v", err))
			return
		}
		if r.Header.Get(requestIDHeader) == "" {
			r.Header.Set(requestIDHeader, api.NewRequestID())
		}
		// The answer names the key this write carries, so a client that sent
		// none can replay it (through any replica) without a second effect.
		w.Header().Set(requestIDHeader, r.Header.Get(requestIDHeader))
		forwarded := r.Header.Get(api.ForwardedHeader) != ""
		deadline := time.Now().Add(h.cfg.LeaderWait)
		for {
			if h.IsLeader() {
				r.Body = io.NopCloser(bytes.NewReader(body))
				next(&indexWriter{ResponseWriter: w, h: h}, h.withOrigin(r))
				return
			}
			if forwarded {
				// A stale forward: let the origin replica find the new leader.
				writeError(w, ErrNotLeader)
				return
			}
			if id, url := h.leaderInfo(); id != "" && id != h.cfg.NodeID && url != "" {
				if h.forwardTo(w, r, id, url, body, stream) {
					return
				}
			}
			if time.Now().After(deadline) {
				writeError(w, ErrNoLeader)
				return
			}
			select {
			case <-r.Context().Done():
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
}

// forward proxies r to the leader at base. It returns false, writing
// nothing, when the leader could not answer (unreachable, or itself no
// longer leader), so that the caller may retry.
func (h *Host) forward(w http.ResponseWriter, r *http.Request, base string, body []byte) bool {
	return h.forwardTo(w, r, "", base, body, false)
}

// forwardTo is forward to the leader leaderID. When leaderID is set it also
// gives up (returns false) once this replica's view of the leader changes
// while the request is in flight. The exchange is bounded by
// fwdLimits.total, or, when stream is set, only while no bytes of the
// answer arrive for fwdLimits.idle.
func (h *Host) forwardTo(w http.ResponseWriter, r *http.Request, leaderID, base string, body []byte, stream bool) bool {
	client := h.fwd
	var ctx context.Context
	var cancel context.CancelFunc
	var idle *time.Timer
	if stream {
		c := *h.fwd
		c.Timeout = 0 // bounded by the idle timer below
		client = &c
		var cancelCause context.CancelCauseFunc
		ctx, cancelCause = context.WithCancelCause(r.Context())
		cancel = func() { cancelCause(nil) }
		idle = time.AfterFunc(h.fwdLimits.idle, func() {
			cancelCause(fmt.Errorf("no bytes from the leader for %s", h.fwdLimits.idle))
		})
		defer idle.Stop()
	} else {
		ctx, cancel = context.WithTimeout(r.Context(), h.fwdLimits.total)
	}
	defer cancel()
	answered := func() {}
	if leaderID != "" {
		// A frozen or partitioned leader accepts the connection and never
		// answers: give up on it as soon as Raft stops following it, so the
		// write goes to its successor or ends in 503 after LeaderWait. The
		// request ID header makes the retry harmless.
		answered = h.cancelOnLeaderChange(ctx, leaderID, cancel)
	}
	req, err := http.NewRequestWithContext(ctx, r.Method, base+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		return false
	}
	for k, v := range r.Header {
		req.Header[k] = v
	}
	req.Header.Set(api.ForwardedHeader, h.cfg.NodeID)
	resp, err := client.Do(req)
	answered()
	if err != nil {
		h.log.Debug("forward to leader", "url", base, "err", err)
		return false
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusServiceUnavailable {
		io.Copy(io.Discard, resp.Body) //nolint:errcheck // draining only
		return false
	}
	for k, v := range resp.Header {
		if k != requestIDHeader { // the key is the one this replica attached
			w.Header()[k] = v
		}
	}
	h.waitApplied(ctx, resp.Header.Get(appliedHeader))
	w.WriteHeader(resp.StatusCode)
	var src io.Reader = resp.Body
	if idle != nil {
		src = &idleReader{r: resp.Body, t: idle, d: h.fwdLimits.idle}
	}
	if _, err := io.Copy(w, src); err != nil {
		// The status is sent: the client sees a truncated answer.
		h.log.Info("forwarded answer ended early", "url", base+r.URL.Path, "err", err, "cause", context.Cause(ctx))
	}
	return true
}

// idleReader re-arms t for d after every read that moved bytes.
type idleReader struct {
	r io.Reader
	t *time.Timer
	d time.Duration
}

// Read reads from the wrapped reader and re-arms the timer on progress.
func (ir *idleReader) Read(p []byte) (int, error) {
	n, err := ir.r.Read(p)
	if n > 0 {
		ir.t.Reset(ir.d)
	}
	return n, err
}

// cancelOnLeaderChange calls cancel once this replica's view of the leader
// is no longer leaderID, until the returned function is called; that
// function waits for the watcher to end, and cancel is never called after it
// returns.
func (h *Host) cancelOnLeaderChange(ctx context.Context, leaderID string, cancel context.CancelFunc) (stop func()) {
	var mu sync.Mutex
	stopped := false
	done, exited := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(exited)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			if id, _ := h.leaderInfo(); id != leaderID {
				mu.Lock()
				if !stopped {
					cancel()
				}
				mu.Unlock()
				return
			}
		}
	}()
	return func() {
		mu.Lock()
		stopped = true
		mu.Unlock()
		close(done)
		<-exited
	}
}

// leaderHeader sets X-Hakuriver-Leader on every answer.
func (h *Host) leaderHeader(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, _ := h.leaderInfo()
		w.Header().Set(api.LeaderHeader, id)
		next.ServeHTTP(w, r)
	})
}

// consistentRead forwards a read to the leader when ?consistent=1, where it
// is served after a Barrier; otherwise it is served from the local FSM.
func (h *Host) consistentRead(next http.HandlerFunc) http.HandlerFunc {
	leader := h.onLeader(func(w http.ResponseWriter, r *http.Request) {
		if err := h.raft.r.Barrier(h.cfg.LeaderWait).Error(); err != nil {
			writeError(w, ErrNotLeader)
			return
		}
		next(w, r)
	})
	return func(w http.ResponseWriter, r *http.Request) {
		if v := r.URL.Query().Get("consistent"); v == "1" || v == "true" {
			leader(w, r)
			return
		}
		next(w, r)
	}
}

// leaderView serves a read from the leader when one is known, because only
// the leader holds live runner figures; it falls back to the local replica.
func (h *Host) leaderView(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !h.IsLeader() && r.Header.Get(api.ForwardedHeader) == "" {
			if id, url := h.leaderInfo(); id != "" && id != h.cfg.NodeID && url != "" {
				if h.forward(w, r, url, nil) {
					return
				}
			}
		}
		next(w, r)
	}
}

// appliedHeader carries the leader's applied index when it answers a
// write: the replica that forwarded the write waits until it has applied
// that much before it answers, so that a caller reads its own writes
// through the replica it wrote through (a token just created authenticates
// there at once; a task just submitted is there).
const appliedHeader = "X-Hakuriver-Applied-Index"

// maxReadYourWritesWait bounds that wait: a lagging replica answers anyway.
const maxReadYourWritesWait = 2 * time.Second

// indexWriter sets appliedHeader on the leader's answer to a write.
type indexWriter struct {
	http.ResponseWriter
	h       *Host
	written bool
}

// WriteHeader stamps the applied index, then writes the header.
func (iw *indexWriter) WriteHeader(code int) {
	if !iw.written {
		iw.written = true
		iw.Header().Set(appliedHeader, strconv.FormatUint(iw.h.machine.AppliedIndex(), 10))
	}
	iw.ResponseWriter.WriteHeader(code)
}

// Write writes the header first if the handler did not.
func (iw *indexWriter) Write(b []byte) (int, error) {
	if !iw.written {
		iw.WriteHeader(http.StatusOK)
	}
	return iw.ResponseWriter.Write(b)
}

// waitApplied waits, bounded, until this replica has applied the index in
// v (an appliedHeader value).
func (h *Host) waitApplied(ctx context.Context, v string) {
	want, err := strconv.ParseUint(v, 10, 64)
	if err != nil || h.machine.AppliedIndex() >= want {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, maxReadYourWritesWait)
	defer cancel()
	for {
		applied := h.raft.watch.next()
		if h.machine.AppliedIndex() >= want {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-applied:
		}
	}
}

// maxAskLeaderBody bounds the body askLeader reads for a caller not yet
// authenticated.
const maxAskLeaderBody = 1 << 20

// askLeader serves a request carrying a token this replica does not know
// by proxying it to the leader, which holds every committed token: a
// replica that lags (restarted, just joined) must not refuse a valid
// token. While no leader is known (a replica that has just started has not
// heard from it yet) it waits, bounded by LeaderWait, and then answers 503
// with Retry-After: a 401 would tell the client that its valid token is
// wrong. It returns false, writing nothing, when this replica is (or
// becomes) the leader, the request was already forwarded, is a WebSocket
// upgrade or carries a large body; the caller then judges the token itself.
func (h *Host) askLeader(w http.ResponseWriter, r *http.Request) bool {
	if h.IsLeader() || r.Header.Get(api.ForwardedHeader) != "" || r.Header.Get("Upgrade") != "" {
		return false
	}
	// Before authentication: only small bodies are carried to the leader.
	if r.ContentLength > maxAskLeaderBody {
		return false
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxAskLeaderBody+1))
	if err != nil || len(body) > maxAskLeaderBody {
		r.Body = io.NopCloser(io.MultiReader(bytes.NewReader(body), r.Body)) // as it came
		return false
	}
	deadline := time.Now().Add(h.cfg.LeaderWait)
	for {
		if h.IsLeader() {
			r.Body = io.NopCloser(bytes.NewReader(body))
			return false
		}
		if id, url := h.leaderInfo(); id != "" && id != h.cfg.NodeID && url != "" {
			r.Body = io.NopCloser(bytes.NewReader(body))
			if h.forwardTo(w, r, id, url, body, false) {
				return true
			}
		}
		if time.Now().After(deadline) {
			writeError(w, ErrNoLeader)
			return true
		}
		select {
		case <-r.Context().Done():
			return true
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// originChecked refuses a browser request from a page of another origin
// than the Host it was sent to (auth.SameOrigin), then passes it on
// without its Origin header: a forward to the leader (whose Host differs)
// would otherwise fail the leader's own check, and a leader of an earlier
// version checks the same way.
func originChecked(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !auth.SameOrigin(r) {
			writeError(w, &httpError{status: http.StatusForbidden, msg: "forbidden: a call from a page of another origin"})
			return
		}
		r.Header.Del("Origin")
		next(w, r)
	}
}

// signingOut expires the dashboard's cookies on the answer before next
// runs: a sign-out that no leader answers still signs the browser out
// (a forwarded answer sets them again, alike).
func signingOut(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		httpapi.ExpireSessionCookies(w)
		next(w, r)
	}
}
