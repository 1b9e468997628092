//go:build integration

package harness

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
)

// Timeouts of single API calls made by the harness.
const (
	// ReadTimeout bounds a read served from a replica's local FSM; a
	// SIGSTOPped replica never answers, so it must stay short.
	ReadTimeout = 2 * time.Second
	// WriteTimeout bounds a write, which may wait for a leader and an fsync.
	WriteTimeout = 15 * time.Second
	// pollInterval is the pause between two polls of a condition.
	pollInterval = 100 * time.Millisecond
)

// Answer is one HTTP exchange with a replica.
type Answer struct {
	Status  int
	Header  http.Header
	Body    []byte
	Elapsed time.Duration
}

// Decode unmarshals the body into out.
func (a Answer) Decode(out any) error {
	if err := json.Unmarshal(a.Body, out); err != nil {
		return fmt.Errorf("decode answer %d %q: %w", a.Status, truncate(a.Body, 200), err)
	}
	return nil
}

// String describes the answer for failure messages.
func (a Answer) String() string {
	return fmt.Sprintf("HTTP %d in %s: %s", a.Status, a.Elapsed.Round(time.Millisecond), truncate(a.Body, 300))
}

func truncate(b []byte, n int) string {
	s := strings.TrimSpace(string(b))
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// Call sends one request to replica i with body (nil: none) encoded as JSON.
// The error is a transport error (refused, reset, timeout); every HTTP
// status is an Answer. ctx bounds the exchange.
func (c *Cluster) Call(ctx context.Context, i int, method, path string, body any) (Answer, error) {
	return c.CallURL(ctx, c.Replica(i).API, method, path, body)
}

// CallURL is Call against a base URL.
func (c *Cluster) CallURL(ctx context.Context, base, method, path string, body any) (Answer, error) {
	return c.callURL(ctx, base, method, path, body, false)
}

// CallInternal is Call with the cluster token, as runners make their
// calls (register, heartbeat, update).
func (c *Cluster) CallInternal(ctx context.Context, i int, method, path string, body any) (Answer, error) {
	return c.callURL(ctx, c.Replica(i).API, method, path, body, true)
}

// CallInternalURL is CallInternal against a base URL (a runner's API too).
func (c *Cluster) CallInternalURL(ctx context.Context, base, method, path string, body any) (Answer, error) {
	return c.callURL(ctx, base, method, path, body, true)
}

// CallWithToken is Call with token in the cluster token header ("" sends
// none): a wrong token, as an attacker would send.
func (c *Cluster) CallWithToken(ctx context.Context, i int, method, path, token string, body any) (Answer, error) {
	return c.callTokenURL(ctx, c.Replica(i).API, method, path, token, body)
}

func (c *Cluster) callURL(ctx context.Context, base, method, path string, body any, token bool) (Answer, error) {
	if token {
		return c.callTokenURL(ctx, base, method, path, c.opts.Token, body)
	}
	return c.CallAsURL(ctx, base, method, path, c.admin, body)
}

// CallAs is Call with an account's API token ("" sends none: an
// anonymous caller).
func (c *Cluster) CallAs(ctx context.Context, i int, method, path, bearer string, body any) (Answer, error) {
	return c.CallAsURL(ctx, c.Replica(i).API, method, path, bearer, body)
}

// CallAsURL is CallAs against a base URL.
func (c *Cluster) CallAsURL(ctx context.Context, base, method, path, bearer string, body any) (Answer, error) {
	return c.send(ctx, base, method, path, body, func(h http.Header) {
		if bearer != "" {
			h.Set("Authorization", "Bearer "+bearer)
		}
	})
}

func (c *Cluster) callTokenURL(ctx context.Context, base, method, path, token string, body any) (Answer, error) {
	return c.send(ctx, base, method, path, body, func(h http.Header) {
		if token != "" {
			h.Set(api.TokenHeader, token)
		}
	})
}

func (c *Cluster) send(ctx context.Context, base, method, path string, body any, auth func(http.Header)) (Answer, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return Answer{}, fmt.Errorf("encode body: %w", err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, base+path, rd)
	if err != nil {
		return Answer{}, fmt.Errorf("build request: %w", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	auth(req.Header)
	start := time.Now()
	resp, err := c.hc.Do(req)
	if err != nil {
		return Answer{Elapsed: time.Since(start)}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	a := Answer{Status: resp.StatusCode, Header: resp.Header, Body: b, Elapsed: time.Since(start)}
	if err != nil {
		return a, fmt.Errorf("read answer of %s %s: %w", method, path, err)
	}
	return a, nil
}

func (c *Cluster) callTimeout(i int, d time.Duration, method, path string, body any) (Answer, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return c.Call(ctx, i, method, path, body)
}

// Status returns replica i's GET /api/cluster (its local view).
func (c *Cluster) Status(i int) (api.ClusterStatus, error) {
	// With the cluster token: it works before the accounts exist.
	ctx, cancel := context.WithTimeout(context.Background(), ReadTimeout)
	defer cancel()
	a, err := c.CallInternal(ctx, i, http.MethodGet, "/api/cluster", nil)
	if err != nil {
		return api.ClusterStatus{}, err
	}
	if a.Status != http.StatusOK {
		return api.ClusterStatus{}, fmt.Errorf("GET /api/cluster on %s: %s", c.Replica(i).ID, a)
	}
	var st api.ClusterStatus
	return st, a.Decode(&st)
}

// Submit posts req to replica i. A transport error is returned as error;
// any HTTP answer (202, 503, ...) as Answer, with the decoded 202 body.
func (c *Cluster) Submit(ctx context.Context, i int, req api.SubmitRequest) (Answer, api.SubmitResponse, error) {
	a, err := c.Call(ctx, i, http.MethodPost, "/api/submit", req)
	var out api.SubmitResponse
	if err == nil && a.Status == http.StatusAccepted {
		err = a.Decode(&out)
	}
	return a, out, err
}

// SubmitOK submits req through replica i and fails unless it answers 202
// within WriteTimeout. It returns the created task IDs.
func (c *Cluster) SubmitOK(i int, req api.SubmitRequest) []string {
	c.tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), WriteTimeout)
	defer cancel()
	a, out, err := c.Submit(ctx, i, req)
	if err != nil {
		c.tb.Fatalf("submit through %s: %v", c.Replica(i).ID, err)
	}
	if a.Status != http.StatusAccepted {
		c.tb.Fatalf("submit through %s: want 202, got %s", c.Replica(i).ID, a)
	}
	if len(out.TaskIDs) == 0 {
		c.tb.Fatalf("submit through %s: 202 without task IDs: %s", c.Replica(i).ID, a)
	}
	return out.TaskIDs
}

// TaskRef is the part of a listed task the tests compare.
type TaskRef struct {
	TaskID    string `json:"task_id"`
	Status    string `json:"status"`
	RequestID string `json:"request_id"`
}

// maxPages bounds the pagination of one Tasks call.
const maxPages = 1000

// Tasks lists every task replica i holds in its local FSM, newest first,
// following the pagination headers.
func (c *Cluster) Tasks(i int) ([]TaskRef, error) {
	var all []TaskRef
	after := ""
	for range maxPages {
		q := url.Values{"limit": {"100000"}}
		if after != "" {
			q.Set("after", after)
		}
		a, err := c.callTimeout(i, 30*time.Second, http.MethodGet, "/api/tasks?"+q.Encode(), nil)
		if err != nil {
			return nil, err
		}
		if a.Status != http.StatusOK {
			return nil, fmt.Errorf("GET /api/tasks on %s: %s", c.Replica(i).ID, a)
		}
		var page []TaskRef
		if err := a.Decode(&page); err != nil {
			return nil, err
		}
		all = append(all, page...)
		if a.Header.Get(api.MoreHeader) != "true" {
			return all, nil
		}
		after = a.Header.Get(api.NextAfterHeader)
		if after == "" {
			return nil, fmt.Errorf("GET /api/tasks on %s: more pages but no %s", c.Replica(i).ID, api.NextAfterHeader)
		}
	}
	return nil, fmt.Errorf("GET /api/tasks on %s: more than %d pages", c.Replica(i).ID, maxPages)
}

// TaskIDSet lists replica i's tasks as a set, and fails on a duplicate ID.
func (c *Cluster) TaskIDSet(i int) (map[string]TaskRef, error) {
	tasks, err := c.Tasks(i)
	if err != nil {
		return nil, err
	}
	out := make(map[string]TaskRef, len(tasks))
	for _, t := range tasks {
		if _, dup := out[t.TaskID]; dup {
			return nil, fmt.Errorf("%s lists task %s twice", c.Replica(i).ID, t.TaskID)
		}
		out[t.TaskID] = t
	}
	return out, nil
}

// Leader asks every running replica for its view and returns the index of
// the replica that reports itself leader with the highest term (a replica
// resumed after SIGCONT may briefly still believe it leads an old term).
func (c *Cluster) Leader() (int, api.ClusterStatus, bool) {
	best, bestSt := -1, api.ClusterStatus{}
	for _, i := range c.Running() {
		st, err := c.Status(i)
		if err != nil {
			continue
		}
		if strings.EqualFold(st.State, "leader") && st.LeaderID == st.NodeID && (best < 0 || st.Term > bestSt.Term) {
			best, bestSt = i, st
		}
	}
	return best, bestSt, best >= 0
}

// WaitLeader waits until a running replica leads and at least one other
// running replica (when there is one) names it leader, and returns it.
func (c *Cluster) WaitLeader(timeout time.Duration) int {
	c.tb.Helper()
	leader := -1
	c.Poll(timeout, "a leader among the running replicas", func() (bool, string) {
		i, st, ok := c.Leader()
		if !ok {
			return false, "no running replica reports itself leader"
		}
		running := c.Running()
		if len(running) == 1 {
			leader = i
			return true, ""
		}
		for _, j := range running {
			if j == i {
				continue
			}
			if o, err := c.Status(j); err == nil && o.LeaderID == st.NodeID && o.Term == st.Term {
				leader = i
				return true, ""
			}
		}
		return false, fmt.Sprintf("%s leads term %d but no other running replica follows it yet", st.NodeID, st.Term)
	})
	return leader
}

// WaitStableLeader waits until one replica has led one term, with every
// running replica following it, for settle without interruption (Raft may
// re-elect right after bootstrap on a loaded machine), and returns it.
func (c *Cluster) WaitStableLeader(timeout, settle time.Duration) int {
	c.tb.Helper()
	leader, since := -1, time.Time{}
	var term uint64
	c.Poll(timeout, fmt.Sprintf("a leader stable for %s", settle), func() (bool, string) {
		i, st, ok := c.Leader()
		if !ok {
			leader = -1
			return false, "no running replica reports itself leader"
		}
		for _, j := range c.Running() {
			o, err := c.Status(j)
			if err != nil || o.LeaderID != st.NodeID || o.Term != st.Term {
				leader = -1
				return false, fmt.Sprintf("%s leads term %d; replica %d: %+v %v", st.NodeID, st.Term, j, o.LeaderID, err)
			}
		}
		if i != leader || st.Term != term {
			leader, term, since = i, st.Term, time.Now()
		}
		return time.Since(since) >= settle, fmt.Sprintf("%s leads term %d since %s", st.NodeID, st.Term, time.Since(since).Round(time.Millisecond))
	})
	return leader
}

// WaitNewLeader waits for a leader other than the replica old.
func (c *Cluster) WaitNewLeader(old int, timeout time.Duration) int {
	c.tb.Helper()
	leader := -1
	c.Poll(timeout, "a new leader", func() (bool, string) {
		i, st, ok := c.Leader()
		if !ok || i == old {
			return false, fmt.Sprintf("leader index %d (ok=%v, term %d)", i, ok, st.Term)
		}
		leader = i
		return true, ""
	})
	return leader
}

// Followers returns the running replicas other than the current leader.
func (c *Cluster) Followers() []int {
	c.tb.Helper()
	leader := c.WaitLeader(LeaderTimeout)
	var out []int
	for _, i := range c.Running() {
		if i != leader {
			out = append(out, i)
		}
	}
	return out
}

// WaitVoters waits until the leader's configuration holds n voters, each
// with a Raft and an API address.
func (c *Cluster) WaitVoters(n int, timeout time.Duration) api.ClusterStatus {
	c.tb.Helper()
	var last api.ClusterStatus
	c.Poll(timeout, fmt.Sprintf("%d voters", n), func() (bool, string) {
		_, st, ok := c.Leader()
		if !ok {
			return false, "no leader"
		}
		last = st
		voters := 0
		for _, r := range st.Replicas {
			if r.Suffrage == "Voter" && r.Raft != "" && r.API != "" {
				voters++
			}
		}
		return voters == n && len(st.Replicas) == n, fmt.Sprintf("leader %s lists %+v", st.NodeID, st.Replicas)
	})
	return last
}

// WaitSameApplied waits until every replica in idxs reports the same
// applied_index, and returns it.
func (c *Cluster) WaitSameApplied(timeout time.Duration, idxs ...int) uint64 {
	c.tb.Helper()
	var idx uint64
	c.Poll(timeout, "equal applied_index", func() (bool, string) {
		var seen []string
		var first uint64
		same := true
		for k, i := range idxs {
			st, err := c.Status(i)
			if err != nil {
				return false, err.Error()
			}
			if k == 0 {
				first = st.AppliedIndex
			}
			same = same && st.AppliedIndex == first
			seen = append(seen, fmt.Sprintf("%s=%d", st.NodeID, st.AppliedIndex))
		}
		idx = first
		return same, strings.Join(seen, " ")
	})
	return idx
}

// Poll calls cond every pollInterval until it returns true, and fails the
// test with what and cond's last message when timeout passes first.
func (c *Cluster) Poll(timeout time.Duration, what string, cond func() (bool, string)) {
	c.tb.Helper()
	if err := Eventually(timeout, cond); err != nil {
		c.tb.Fatalf("waiting for %s: %v", what, err)
	}
}

// Eventually calls cond every pollInterval until it returns true, or
// returns an error carrying cond's last message once timeout has passed.
// The number of calls is bounded by timeout/pollInterval + 1.
func Eventually(timeout time.Duration, cond func() (bool, string)) error {
	deadline := time.Now().Add(timeout)
	msg := ""
	for n := 0; n <= int(timeout/pollInterval)+1; n++ {
		ok, m := cond()
		if ok {
			return nil
		}
		msg = m
		if !time.Now().Before(deadline) {
			break
		}
		time.Sleep(min(pollInterval, time.Until(deadline)+time.Millisecond))
	}
	return fmt.Errorf("not true after %s; last: %s", timeout, msg)
}

// RSS returns replica i's resident set size in bytes (VmRSS).
func (c *Cluster) RSS(i int) (int64, error) {
	pid := c.Replica(i).PID()
	if pid == 0 {
		return 0, fmt.Errorf("rss of %s: not running", c.Replica(i).ID)
	}
	f, err := os.Open(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return 0, fmt.Errorf("rss: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			fields := strings.Fields(v)
			if len(fields) == 0 {
				break
			}
			kb, err := strconv.ParseInt(fields[0], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("rss: parse %q: %w", v, err)
			}
			return kb * 1024, nil
		}
	}
	return 0, fmt.Errorf("rss: no VmRSS in /proc/%d/status", pid)
}

// File is a file in a replica's data dir.
type File struct {
	Path string
	Size int64
}

// DataFiles lists the files under replica i's data dir, sorted by path.
func (c *Cluster) DataFiles(i int) ([]File, error) {
	root := c.Replica(i).DataDir()
	var out []File
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p) //nolint:errcheck // p is under root
		out = append(out, File{Path: rel, Size: info.Size()})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list data dir of %s: %w", c.Replica(i).ID, err)
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Path < out[b].Path })
	return out, nil
}
