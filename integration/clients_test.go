//go:build integration

package integration

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/integration/harness"
)

// perRequestBudget bounds the retries of one request; it must outlast a
// leader election plus a frozen replica's client timeout several times over.
const perRequestBudget = 60 * time.Second

// acks records, per request_id, the task IDs of its acknowledged submit.
type acks struct {
	mu   sync.Mutex
	byID map[string][]string
	errs []error
}

func newAcks() *acks { return &acks{byID: map[string][]string{}} }

// add records an acknowledgement; a request_id acknowledged again must name
// the same tasks.
func (a *acks) add(reqID string, ids []string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	ids = slices.Sorted(slices.Values(ids))
	if prev, ok := a.byID[reqID]; ok && !slices.Equal(prev, ids) {
		return fmt.Errorf("request %s acknowledged twice with different tasks: %v then %v", reqID, prev, ids)
	}
	a.byID[reqID] = ids
	return nil
}

func (a *acks) fail(err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.errs = append(a.errs, err)
}

// errString describes the submitters' failures so far ("" when none).
func (a *acks) errString() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.errs) == 0 {
		return ""
	}
	return fmt.Sprintf("; failures: %v", errors.Join(a.errs...))
}

func (a *acks) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.byID)
}

// snapshot returns a copy of the acknowledgements and the failures.
func (a *acks) snapshot() (map[string][]string, []error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return maps.Clone(a.byID), slices.Clone(a.errs)
}

// submitter is one client that submits tasks one after the other, each with
// its own request_id, through api.Client (which moves to the next replica on
// a connection error, a timeout or a 503), and retries a request with the
// same request_id until it is acknowledged.
type submitter struct {
	name   string
	client *api.Client
	acks   *acks
	sent   atomic.Int64
	acked  atomic.Int64
}

// maxRequestsPerClient bounds one submitter's requests.
const maxRequestsPerClient = 100000

// run submits until stop is closed (or maxRequestsPerClient were sent); a
// request in flight at that moment is still retried until acknowledged (or
// its budget ends, which is a failure).
func (s *submitter) run(stop <-chan struct{}) {
	for n := range maxRequestsPerClient {
		select {
		case <-stop:
			return
		default:
		}
		s.sent.Add(1)
		if err := s.submitOne(fmt.Sprintf("%s-%d", s.name, n)); err != nil {
			s.acks.fail(err)
			return
		}
	}
}

func (s *submitter) submitOne(reqID string) error {
	deadline := time.Now().Add(perRequestBudget)
	var lastErr error
	for attempt := 0; attempt < 1000 && time.Now().Before(deadline); attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		out, err := s.client.Submit(ctx, api.SubmitRequest{Command: "echo", Arguments: []string{reqID}, RequestID: reqID})
		cancel()
		if err == nil {
			if len(out.TaskIDs) != 1 {
				return fmt.Errorf("request %s: want 1 task ID, got %v", reqID, out.TaskIDs)
			}
			s.acked.Add(1)
			return s.acks.add(reqID, out.TaskIDs)
		}
		var ae *api.APIError
		if errors.As(err, &ae) && ae.StatusCode != http.StatusServiceUnavailable {
			return fmt.Errorf("request %s attempt %d: %w", reqID, attempt, err)
		}
		lastErr = err
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("request %s not acknowledged within %s: %w", reqID, perRequestBudget, lastErr)
}

// fleet is a set of submitters running concurrently against every replica.
type fleet struct {
	t    *testing.T
	c    *harness.Cluster
	acks *acks
	subs []*submitter
	stop chan struct{}
	once sync.Once
	done chan struct{}
}

// startFleet starts n submitters; each knows every replica, in an order
// rotated so that they start on different replicas. They run until halt
// (called at cleanup at the latest).
func startFleet(t *testing.T, c *harness.Cluster, n int) *fleet {
	t.Helper()
	f := &fleet{t: t, c: c, acks: newAcks(), stop: make(chan struct{}), done: make(chan struct{})}
	var hosts []string
	for i := range c.N() {
		hosts = append(hosts, c.Replica(i).API)
	}
	for w := range n {
		rot := append(slices.Clone(hosts[w%len(hosts):]), hosts[:w%len(hosts)]...)
		cl, err := api.NewClient(api.ClientConfig{
			Hosts:        rot,
			Bearer:       c.AdminToken(),
			Timeout:      2 * time.Second, // a SIGSTOPped replica never answers
			DialTimeout:  time.Second,
			MaxRetryWait: 500 * time.Millisecond,
			RetryBudget:  3 * time.Second,
		})
		if err != nil {
			t.Fatalf("api client: %v", err)
		}
		t.Cleanup(cl.Close)
		f.subs = append(f.subs, &submitter{name: fmt.Sprintf("c%d", w), client: cl, acks: f.acks})
	}
	var wg sync.WaitGroup
	for _, s := range f.subs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.run(f.stop)
		}()
	}
	go func() {
		wg.Wait()
		close(f.done)
	}()
	t.Cleanup(f.halt)
	return f
}

// halt stops the submitters and waits for them: each finishes (or fails)
// the request it has in flight.
func (f *fleet) halt() {
	f.once.Do(func() { close(f.stop) })
	select {
	case <-f.done:
	case <-time.After(perRequestBudget + 10*time.Second):
		f.t.Errorf("submitters did not finish within %s", perRequestBudget+10*time.Second)
	}
}

// waitAcks waits until n more requests than now are acknowledged.
func (f *fleet) waitAcks(more int, what string) {
	f.t.Helper()
	n := f.acks.count() + more
	f.c.Poll(30*time.Second, fmt.Sprintf("%d acknowledged requests (%s)", n, what), func() (bool, string) {
		got := f.acks.count()
		return got >= n, fmt.Sprintf("%d acknowledged", got) + f.acks.errString()
	})
}

// waitEachProgress waits until every submitter has more requests
// acknowledged than now.
func (f *fleet) waitEachProgress(more int64, what string) {
	f.t.Helper()
	base := make([]int64, len(f.subs))
	for w, s := range f.subs {
		base[w] = s.acked.Load()
	}
	f.c.Poll(30*time.Second, fmt.Sprintf("every client to get %d more requests acknowledged (%s)", more, what), func() (bool, string) {
		var progress []string
		ok := true
		for w, s := range f.subs {
			d := s.acked.Load() - base[w]
			ok = ok && d >= more
			progress = append(progress, fmt.Sprintf("%s+%d", s.name, d))
		}
		return ok, strings.Join(progress, " ") + f.acks.errString()
	})
}

// result halts the fleet, reports its failures, and returns the
// acknowledged request_ids with their tasks.
func (f *fleet) result() map[string][]string {
	f.t.Helper()
	f.halt()
	got, errs := f.acks.snapshot()
	for _, err := range errs {
		f.t.Error(err)
	}
	var sent, acked int64
	for _, s := range f.subs {
		sent += s.sent.Load()
		acked += s.acked.Load()
	}
	f.t.Logf("%d clients sent %d requests, %d acknowledged", len(f.subs), sent, acked)
	return got
}

// checkTasks checks invariants 3 and 4 on the replicas idxs once they
// converged: each holds exactly the acknowledged tasks (those of the
// request_ids in reqs, and the plain task IDs acknowledged without a client
// request_id), no task twice, every request_id's tasks are exactly those
// acknowledged, and all replicas hold the same tasks.
func checkTasks(t *testing.T, c *harness.Cluster, reqs map[string][]string, plain map[string]bool, idxs ...int) {
	t.Helper()
	want := maps.Clone(plain)
	if want == nil {
		want = map[string]bool{}
	}
	for reqID, ids := range reqs {
		for _, id := range ids {
			if want[id] {
				t.Errorf("task %s acknowledged twice (request %s)", id, reqID)
			}
			want[id] = true
		}
	}
	l := c.WaitLeader(harness.LeaderTimeout)
	c.WaitSameApplied(catchUpTimeout, append([]int{l}, idxs...)...)
	var first map[string]harness.TaskRef
	for k, i := range idxs {
		waitTaskSet(t, c, i, want)
		got, err := c.TaskIDSet(i)
		if err != nil {
			t.Fatal(err)
		}
		byReq := map[string][]string{}
		for id, task := range got {
			if !plain[id] {
				byReq[task.RequestID] = append(byReq[task.RequestID], id)
			}
		}
		for reqID, ids := range reqs {
			if g := slices.Sorted(slices.Values(byReq[reqID])); !slices.Equal(g, ids) {
				t.Errorf("%s: request %s holds tasks %v, acknowledged %v", c.Replica(i).ID, reqID, g, ids)
			}
		}
		for reqID, ids := range byReq {
			if _, ok := reqs[reqID]; !ok {
				t.Errorf("%s: tasks %v of request %q were never acknowledged", c.Replica(i).ID, ids, reqID)
			}
		}
		if k == 0 {
			first = got
			continue
		}
		for id, task := range first {
			if o := got[id]; o != task {
				t.Errorf("task %s: %+v on %s, %+v on %s", id, task, c.Replica(idxs[0]).ID, o, c.Replica(i).ID)
			}
		}
	}
	t.Logf("%d tasks (%d request_ids) identical on %d replicas", len(want), len(reqs), len(idxs))
}

// waitTaskSet waits until replica i holds exactly the task IDs in want, no
// more, no fewer, and none twice.
func waitTaskSet(t *testing.T, c *harness.Cluster, i int, want map[string]bool) {
	t.Helper()
	c.Poll(catchUpTimeout, fmt.Sprintf("the %d acknowledged tasks on %s", len(want), c.Replica(i).ID), func() (bool, string) {
		got, err := c.TaskIDSet(i)
		if err != nil {
			return false, err.Error()
		}
		return sameKeys(got, want)
	})
}

// sameKeys compares two sets of task IDs and describes the difference.
func sameKeys[A, B any](got map[string]A, want map[string]B) (bool, string) {
	var missing, extra []string
	for id := range want {
		if _, ok := got[id]; !ok {
			missing = append(missing, id)
		}
	}
	for id := range got {
		if _, ok := want[id]; !ok {
			extra = append(extra, id)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	return len(missing) == 0 && len(extra) == 0,
		fmt.Sprintf("%d tasks, want %d; missing %s; unexpected %s", len(got), len(want), head(missing), head(extra))
}

func head(ids []string) string {
	if len(ids) > 5 {
		return fmt.Sprintf("%v... (%d)", ids[:5], len(ids))
	}
	return fmt.Sprint(ids)
}
