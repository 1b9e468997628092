package cluster

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/fsm"
)

// sseEvent is one parsed Server-Sent Event.
type sseEvent struct {
	name string
	data string
}

// readSSE parses the stream of body into ch until it ends.
func readSSE(body io.Reader, ch chan<- sseEvent) {
	defer close(ch)
	sc := bufio.NewScanner(body)
	var ev sseEvent
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if ev.name != "" || ev.data != "" {
				ch <- ev
			}
			ev = sseEvent{}
		case strings.HasPrefix(line, "event: "):
			ev.name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			ev.data += strings.TrimPrefix(line, "data: ")
		}
	}
}

// openFeed opens GET /api/events on base as the bearer of secret.
func openFeed(t *testing.T, ctx context.Context, base, secret string) (*http.Response, chan sseEvent) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/events", nil)
	if err != nil {
		t.Fatal(err)
	}
	if secret != "" {
		req.Header.Set("Authorization", "Bearer "+secret)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET /api/events: %v", err)
	}
	ch := make(chan sseEvent, 64)
	if resp.StatusCode == http.StatusOK {
		go readSSE(resp.Body, ch)
	} else {
		close(ch)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp, ch
}

// TestEventsFeedAfterSubmit opens the change feed on a follower (with the
// session cookie, as a browser's EventSource does) and checks that a submit
// on the leader reaches it as an "applied" event whose index and counts
// include the new task; a "live" event follows; anonymous callers are
// refused.
func TestEventsFeedAfterSubmit(t *testing.T) {
	hosts := startClusterWith(t, 3, func(_ int, cfg *Config) { cfg.AnonymousRole = "" })
	leader, follower := matrixLeader(t, hosts)
	admin := bootstrapAdmin(t, leader)
	target := leader.Machine().AppliedIndex()
	waitFor(t, 10*time.Second, func() bool { return follower.Machine().AppliedIndex() >= target })

	// Anonymous: 401, no stream.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if resp, _ := openFeed(t, ctx, follower.APIURL(), ""); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("anonymous feed: %d, want 401", resp.StatusCode)
	}

	// The dashboard's way: a session cookie from POST /api/auth/login.
	resp, body := do(t, "POST", follower.APIURL()+"/api/auth/login", api.LoginRequest{Token: admin})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("login: %d %s", resp.StatusCode, body)
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, follower.APIURL()+"/api/events", nil)
	for _, c := range resp.Cookies() {
		req.AddCookie(c)
	}
	sresp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer sresp.Body.Close()
	if sresp.StatusCode != http.StatusOK || !strings.HasPrefix(sresp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("feed with the session cookie: %d %q", sresp.StatusCode, sresp.Header.Get("Content-Type"))
	}
	ch := make(chan sseEvent, 64)
	go readSSE(sresp.Body, ch)

	first := waitEvent(t, ch, "applied", func(AppliedEvent) bool { return true })
	if first.NodeID != follower.NodeID() || first.Leader != leader.NodeID() {
		t.Fatalf("first event %+v: want node %s, leader %s", first, follower.NodeID(), leader.NodeID())
	}
	var sr api.SubmitResponse
	adminCall(t, "POST", leader.APIURL()+"/api/submit", admin, api.SubmitRequest{Command: "true"}, &sr)
	after := leader.Machine().AppliedIndex()
	got := waitEvent(t, ch, "applied", func(e AppliedEvent) bool { return e.AppliedIndex >= after })
	if got.Counts[fsm.StatusPending]+got.Counts[fsm.StatusAssigning]+got.Counts[fsm.StatusFailed] < 1 {
		t.Fatalf("event after the submit of %v counts no task: %+v", sr.TaskIDs, got)
	}
	// The "live" events come every few seconds.
	deadline := time.After(10 * time.Second)
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				t.Fatal("the feed ended")
			}
			if ev.name == "live" {
				var l LiveEvent
				if err := json.Unmarshal([]byte(ev.data), &l); err != nil || l.Leader != leader.NodeID() {
					t.Fatalf("live event %s: %v", ev.data, err)
				}
				return
			}
		case <-deadline:
			t.Fatal("no live event in 10s")
		}
	}
}

// waitEvent waits up to 10 s for an event named name whose data matches.
func waitEvent(t *testing.T, ch <-chan sseEvent, name string, match func(AppliedEvent) bool) AppliedEvent {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				t.Fatal("the feed ended")
			}
			if ev.name != name {
				continue
			}
			var a AppliedEvent
			if err := json.Unmarshal([]byte(ev.data), &a); err != nil {
				t.Fatalf("event %s: %v", ev.data, err)
			}
			if match(a) {
				return a
			}
		case <-deadline:
			t.Fatalf("no matching %s event in 10s", name)
		}
	}
}

// TestEventsStreamCap opens more streams than a replica serves: the one
// beyond the cap is refused with 503 and Retry-After, and a closed stream
// frees its place.
func TestEventsStreamCap(t *testing.T) {
	h := startCluster(t, 1)[0]
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	resps := make([]*http.Response, maxFeedStreams)
	errs := make(chan error, maxFeedStreams)
	for i := range resps {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, h.APIURL()+"/api/events", nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				errs <- err
				return
			}
			if resp.StatusCode != http.StatusOK {
				errs <- fmt.Errorf("stream %d: %d", i, resp.StatusCode)
			}
			resps[i] = resp
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	resp, body := do(t, "GET", h.APIURL()+"/api/events", nil)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("stream %d: %d %s, want 503 with Retry-After", maxFeedStreams+1, resp.StatusCode, body)
	}
	resps[0].Body.Close()
	waitFor(t, 5*time.Second, func() bool {
		ctx1, cancel1 := context.WithTimeout(ctx, 2*time.Second)
		defer cancel1()
		req, _ := http.NewRequestWithContext(ctx1, http.MethodGet, h.APIURL()+"/api/events", nil)
		r, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		defer r.Body.Close()
		return r.StatusCode == http.StatusOK
	})
	for _, r := range resps[1:] {
		r.Body.Close()
	}
}

// TestConditionalReads checks the ETags of the lists the dashboard
// re-reads: an unchanged state answers 304 without a body, a change
// answers 200 with a new tag; tags differ by query and by caller.
func TestConditionalReads(t *testing.T) {
	hosts := startCluster(t, 3)
	leader, follower := matrixLeader(t, hosts)
	get := func(url, inm string) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		if inm != "" {
			req.Header.Set("If-None-Match", inm)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}
	for _, path := range []string{"/api/tasks", "/api/tasks?status=pending", "/api/queue", "/api/nodes", "/api/cluster"} {
		for _, h := range []*Host{leader, follower} {
			url := h.APIURL() + path
			var r1 *http.Response
			var r2 *http.Response
			var b2 []byte
			// The cluster's status moves by itself for a moment after
			// the start (commit index, gossip): retry until it is stable.
			waitFor(t, 10*time.Second, func() bool {
				r1, _ = get(url, "")
				if r1.StatusCode != http.StatusOK || r1.Header.Get("ETag") == "" {
					t.Fatalf("%s: %d, ETag %q", url, r1.StatusCode, r1.Header.Get("ETag"))
				}
				r2, b2 = get(url, r1.Header.Get("ETag"))
				return r2.StatusCode == http.StatusNotModified
			})
			if len(b2) != 0 || r2.Header.Get("ETag") != r1.Header.Get("ETag") {
				t.Fatalf("%s: 304 with %d bytes, tag %q", url, len(b2), r2.Header.Get("ETag"))
			}
		}
	}
	// A submit changes the tasks' tag on every replica.
	r1, _ := get(follower.APIURL()+"/api/tasks", "")
	tag := r1.Header.Get("ETag")
	if other, _ := get(follower.APIURL()+"/api/tasks?status=running", ""); other.Header.Get("ETag") == tag {
		t.Fatalf("two queries share the tag %s", tag)
	}
	resp, body := do(t, "POST", leader.APIURL()+"/api/submit", api.SubmitRequest{Command: "true"})
	if resp.StatusCode/100 != 2 {
		t.Fatalf("submit: %d %s", resp.StatusCode, body)
	}
	target := leader.Machine().AppliedIndex()
	waitFor(t, 10*time.Second, func() bool { return follower.Machine().AppliedIndex() >= target })
	r2, b2 := get(follower.APIURL()+"/api/tasks", tag)
	if r2.StatusCode != http.StatusOK || r2.Header.Get("ETag") == tag || !strings.Contains(string(b2), `"command":"true"`) {
		t.Fatalf("after a submit: %d tag %q (was %q) %.200s", r2.StatusCode, r2.Header.Get("ETag"), tag, b2)
	}
	// An error is never tagged.
	if r, _ := get(follower.APIURL()+"/api/tasks?status=nonsense", ""); r.StatusCode == http.StatusOK || r.Header.Get("ETag") != "" {
		t.Fatalf("bad query: %d, ETag %q", r.StatusCode, r.Header.Get("ETag"))
	}
}

// TestReplicasStatus asks a follower for every replica's own figures: all
// three answer with their term and indexes, exactly one is the leader, and
// a stopped replica shows as unreachable with the reason.
func TestReplicasStatus(t *testing.T) {
	hosts := startCluster(t, 3)
	leader, follower := matrixLeader(t, hosts)
	var third *Host
	for _, h := range hosts {
		if h != leader && h != follower {
			third = h
		}
	}
	read := func() []api.ReplicaStatus {
		t.Helper()
		resp, body := do(t, "GET", follower.APIURL()+"/api/cluster/replicas", nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("replicas: %d %s", resp.StatusCode, body)
		}
		var out []api.ReplicaStatus
		if err := json.Unmarshal(body, &out); err != nil {
			t.Fatal(err)
		}
		return out
	}
	waitFor(t, 10*time.Second, func() bool {
		leaders, ok := 0, 0
		for _, r := range read() {
			if r.State == "leader" && r.ID == leader.NodeID() {
				leaders++
			}
			if r.Error == "" && r.Term > 0 && r.AppliedIndex > 0 {
				ok++
			}
		}
		return leaders == 1 && ok == 3
	})
	if err := third.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, func() bool {
		for _, r := range read() {
			if r.ID == third.NodeID() {
				return r.State == "unreachable" && r.Error != ""
			}
		}
		return false
	})
}
