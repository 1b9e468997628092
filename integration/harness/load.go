//go:build integration

package harness

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
)

// LoadOptions configures a Load.
type LoadOptions struct {
	// Clients is the number of concurrent clients.
	Clients int
	// Pace is each client's pause between two acknowledged submits.
	Pace time.Duration
	// MaxPerClient bounds each client's submits (required, > 0).
	MaxPerClient int
	// Request builds client k's n-th submit; its RequestID must be unique
	// and not empty.
	Request func(client, n int) api.SubmitRequest
	// AttemptTimeout bounds one attempt (10 s when 0).
	AttemptTimeout time.Duration
	// Budget bounds all the attempts of one submit (60 s when 0).
	Budget time.Duration
}

// Ack is an acknowledged submit.
type Ack struct {
	Client    int
	RequestID string
	TaskIDs   []string
	// At is when the 202 arrived.
	At time.Time
}

// RetryableError is one failed attempt a client retried: a transport
// error (refused, reset, timeout) or a 502/503/504 answer.
type RetryableError struct {
	Client    int
	RequestID string
	Host      string
	At        time.Time
	Err       string
}

// LoadResult is what a Load's clients saw.
type LoadResult struct {
	Acks      []Ack
	Retryable []RetryableError
	// Failures are submits that got an answer that is not retryable, or
	// were not acknowledged within the budget.
	Failures []error
	// Sent counts the submits begun.
	Sent int
}

// Load is a set of clients submitting tasks concurrently, each with its own
// request_ids, as a simple client would: it sends each submit to the
// replica it used last and, on a retryable error, moves to the next replica
// in its list and sends the same request_id again. Every failed attempt is
// recorded with its time, so a test can tell which fault caused it.
type Load struct {
	c    *Cluster
	opts LoadOptions
	stop chan struct{}
	done chan struct{}
	once sync.Once

	mu    sync.Mutex
	res   LoadResult
	acked []int
}

// StartLoad starts opts.Clients clients against every replica (client k
// starts at replica k mod N). They run until Stop.
func (c *Cluster) StartLoad(opts LoadOptions) *Load {
	c.tb.Helper()
	if opts.Clients <= 0 || opts.MaxPerClient <= 0 || opts.Request == nil {
		c.tb.Fatalf("harness: LoadOptions need Clients, MaxPerClient and Request: %+v", opts)
	}
	if opts.AttemptTimeout <= 0 {
		opts.AttemptTimeout = 10 * time.Second
	}
	if opts.Budget <= 0 {
		opts.Budget = 60 * time.Second
	}
	l := &Load{c: c, opts: opts, stop: make(chan struct{}), done: make(chan struct{}), acked: make([]int, opts.Clients)}
	var hosts []string
	for i := range c.N() {
		hosts = append(hosts, c.Replica(i).API)
	}
	var wg sync.WaitGroup
	for k := range opts.Clients {
		rot := append(slices.Clone(hosts[k%len(hosts):]), hosts[:k%len(hosts)]...)
		wg.Add(1)
		go func() {
			defer wg.Done()
			l.client(k, rot)
		}()
	}
	go func() {
		wg.Wait()
		close(l.done)
	}()
	c.tb.Cleanup(func() { l.Stop() })
	return l
}

// client is client k's loop.
func (l *Load) client(k int, hosts []string) {
	cur := 0
	for n := range l.opts.MaxPerClient {
		select {
		case <-l.stop:
			return
		default:
		}
		req := l.opts.Request(k, n)
		l.mu.Lock()
		l.res.Sent++
		l.mu.Unlock()
		var err error
		if cur, err = l.submit(k, hosts, cur, req); err != nil {
			l.mu.Lock()
			l.res.Failures = append(l.res.Failures, fmt.Errorf("client %d: %w", k, err))
			l.mu.Unlock()
			return
		}
		select {
		case <-l.stop:
			return
		case <-time.After(l.opts.Pace):
		}
	}
}

// submit sends req until it is acknowledged, starting at hosts[cur], and
// returns the index of the replica that acknowledged it.
func (l *Load) submit(k int, hosts []string, cur int, req api.SubmitRequest) (int, error) {
	deadline := time.Now().Add(l.opts.Budget)
	var last string
	for attempt := 0; attempt < 1000 && time.Now().Before(deadline); attempt++ {
		host := hosts[cur]
		ctx, cancel := context.WithTimeout(context.Background(), l.opts.AttemptTimeout)
		a, err := l.c.CallAsURL(ctx, host, http.MethodPost, "/api/submit", l.c.admin, req)
		cancel()
		if err == nil && a.Status == http.StatusAccepted {
			var out api.SubmitResponse
			if err := a.Decode(&out); err != nil {
				return cur, fmt.Errorf("request %s: %w", req.RequestID, err)
			}
			l.mu.Lock()
			l.res.Acks = append(l.res.Acks, Ack{Client: k, RequestID: req.RequestID, TaskIDs: out.TaskIDs, At: time.Now()})
			l.acked[k]++
			l.mu.Unlock()
			return cur, nil
		}
		if err == nil && a.Status != http.StatusServiceUnavailable && a.Status != http.StatusBadGateway && a.Status != http.StatusGatewayTimeout {
			return cur, fmt.Errorf("request %s through %s: %s", req.RequestID, host, a)
		}
		last = a.String()
		if err != nil {
			last = err.Error()
		}
		l.mu.Lock()
		l.res.Retryable = append(l.res.Retryable, RetryableError{Client: k, RequestID: req.RequestID, Host: host, At: time.Now(), Err: last})
		l.mu.Unlock()
		cur = (cur + 1) % len(hosts)
		time.Sleep(50 * time.Millisecond)
	}
	return cur, fmt.Errorf("request %s not acknowledged within %s: %s", req.RequestID, l.opts.Budget, last)
}

// Acked returns how many submits each client got acknowledged so far.
func (l *Load) Acked() []int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.acked)
}

// WaitEach waits until every client has more acknowledged submits than
// now; it returns an error naming the clients that did not, or the first
// failure.
func (l *Load) WaitEach(more int, timeout time.Duration) error {
	base := l.Acked()
	return Eventually(timeout, func() (bool, string) {
		now := l.Acked()
		var behind []string
		for k := range now {
			if now[k]-base[k] < more {
				behind = append(behind, fmt.Sprintf("client %d +%d", k, now[k]-base[k]))
			}
		}
		l.mu.Lock()
		fails := errors.Join(l.res.Failures...)
		l.mu.Unlock()
		if fails != nil {
			return false, fails.Error()
		}
		return len(behind) == 0, fmt.Sprintf("behind: %v", behind)
	})
}

// Stop stops the clients, waits until each has finished the submit it has
// in flight (bounded by the budget) and returns what they saw, the
// acknowledgements in time order.
func (l *Load) Stop() LoadResult {
	l.once.Do(func() { close(l.stop) })
	select {
	case <-l.done:
	case <-time.After(l.opts.Budget + 10*time.Second):
		l.mu.Lock()
		l.res.Failures = append(l.res.Failures, fmt.Errorf("clients still busy %s after Stop", l.opts.Budget+10*time.Second))
		l.mu.Unlock()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.res
	out.Acks = slices.Clone(out.Acks)
	sort.Slice(out.Acks, func(a, b int) bool { return out.Acks[a].At.Before(out.Acks[b].At) })
	out.Retryable = slices.Clone(out.Retryable)
	out.Failures = slices.Clone(out.Failures)
	return out
}

// MaxGap returns the longest time within [from, to] during which no
// client had a submit acknowledged, and when it began.
func (r LoadResult) MaxGap(from, to time.Time) (time.Duration, time.Time) {
	prev, gap, at := from, time.Duration(0), from
	for _, a := range r.Acks {
		if a.At.Before(from) || a.At.After(to) {
			continue
		}
		if d := a.At.Sub(prev); d > gap {
			gap, at = d, prev
		}
		prev = a.At
	}
	if d := to.Sub(prev); d > gap {
		gap, at = d, prev
	}
	return gap, at
}
