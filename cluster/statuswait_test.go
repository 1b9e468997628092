package cluster

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/fsm"
)

// TestStatusBlockingQuery asks a follower of a real three-replica cluster
// for a pending task's status with ?wait&unless=pending: the answer comes
// once the task is killed (through the leader), not before, with the new
// status. A task whose status is not the one named answers at once, and so
// does a done one; one whose status stays answers after the wait,
// unchanged. The client's WaitTasks wakes on the same change. A caller's
// 65th waiting query answers at once while another caller's still waits
// (TestWaiterBook: the 256 in all). Bad parameters are refused with a 400
// naming the parameter, an unknown task with a 404. A follower shutting
// down answers its waiting query and closes in time.
func TestStatusBlockingQuery(t *testing.T) {
	leader, followers := leaderAndFollowers(t, startCluster(t, 3))
	follower := followers[0]
	// submitPending submits a task no runner takes (it stays pending)
	// through the leader and returns its ID and its status URL on the
	// follower, once the follower has it.
	submitPending := func() (id, url string) {
		t.Helper()
		resp, body := do(t, "POST", leader.APIURL()+"/api/submit", api.SubmitRequest{Command: "sleep", Arguments: []string{"100"}})
		var sr api.SubmitResponse
		if resp.StatusCode != http.StatusAccepted || json.Unmarshal(body, &sr) != nil || len(sr.TaskIDs) != 1 {
			t.Fatalf("submit: %d %s", resp.StatusCode, body)
		}
		url = follower.APIURL() + "/api/status/" + sr.TaskIDs[0]
		waitFor(t, 10*time.Second, func() bool {
			resp, _ := do(t, "GET", url, nil)
			return resp.StatusCode == http.StatusOK
		})
		return sr.TaskIDs[0], url
	}
	kill := func(id string) {
		t.Helper()
		if resp, body := do(t, "POST", leader.APIURL()+"/api/kill/"+id, nil); resp.StatusCode/100 != 2 {
			t.Fatalf("kill: %d %s", resp.StatusCode, body)
		}
	}

	type answer struct {
		at     time.Time
		code   int
		status string
		err    error
	}
	get := func(url string) answer {
		resp, err := http.Get(url)
		if err != nil {
			return answer{at: time.Now(), err: err}
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		var task api.Task
		if err == nil && resp.StatusCode == http.StatusOK {
			err = json.Unmarshal(b, &task)
		}
		return answer{at: time.Now(), code: resp.StatusCode, status: string(task.Status), err: err}
	}
	// async reads url in the background.
	async := func(url string) <-chan answer {
		ch := make(chan answer, 1)
		go func() { ch <- get(url) }()
		return ch
	}
	// within returns the answer on ch, 200 with status want, failing with
	// late when none comes within d.
	within := func(ch <-chan answer, d time.Duration, want, late string) answer {
		t.Helper()
		select {
		case a := <-ch:
			if a.err != nil || a.code != http.StatusOK || a.status != want {
				t.Fatalf("answer %+v, want 200 %s", a, want)
			}
			return a
		case <-time.After(d):
			t.Fatal(late)
			return answer{}
		}
	}
	// silent fails if ch has an answer within d.
	silent := func(ch <-chan answer, d time.Duration, what string) {
		t.Helper()
		select {
		case a := <-ch:
			t.Fatalf("%s: %+v", what, a)
		case <-time.After(d):
		}
	}

	id, status := submitPending()
	got := async(status + "?wait=15s&unless=pending")
	silent(got, 300*time.Millisecond, "blocking query answered before any change")
	killedAt := time.Now()
	kill(id)
	if a := within(got, 20*time.Second, "killed", "blocking query still waiting 20 s after the kill"); a.at.Before(killedAt) {
		t.Fatalf("blocking query answered at %s, before the kill at %s", a.at, killedAt)
	}

	// Another status than the one named: at once (well within the wait).
	within(async(status+"?wait=15s&unless=running"), 10*time.Second, "killed",
		"query unless=running waited for a change although the status differs")
	// A task that is done never changes: at once, even for its own status.
	within(async(status+"?wait=15s&unless=killed"), 10*time.Second, "killed",
		"query unless=killed on a killed task waited: a done task never changes")
	// A task that stays pending: the answer comes after the wait, unchanged.
	pendingID, pendingStatus := submitPending()
	start := time.Now()
	if a := get(pendingStatus + "?wait=200ms&unless=pending"); a.err != nil || a.code != http.StatusOK || a.status != "pending" {
		t.Fatalf("query unless=pending on a pending task = %+v, want 200 pending", a)
	} else if a.at.Sub(start) < 200*time.Millisecond {
		t.Fatalf("query unless=pending answered after %s, before its 200ms wait", a.at.Sub(start))
	}

	// The client's WaitTasks waits on the same query between its rounds:
	// with a 30 s interval it still returns soon after the kill.
	waitedID, _ := submitPending()
	cc := api.DefaultClientConfig()
	cc.Hosts = []string{follower.APIURL()}
	client, err := api.NewClient(cc)
	if err != nil {
		t.Fatal(err)
	}
	type waited struct {
		tasks []api.Task
		err   error
	}
	wt := make(chan waited, 1)
	go func() {
		ts, err := client.WaitTasks(t.Context(), []string{waitedID}, api.PollOptions{Interval: 30 * time.Second}, nil)
		wt <- waited{ts, err}
	}()
	time.Sleep(300 * time.Millisecond) // the first round has seen it pending
	kill(waitedID)
	select {
	case w := <-wt:
		if w.err != nil || len(w.tasks) != 1 || w.tasks[0].Status != "killed" {
			t.Fatalf("WaitTasks = %+v, %v; want the task killed", w.tasks, w.err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("WaitTasks with a 30 s interval still waiting 20 s after the kill: it does not use the blocking query")
	}

	// One caller (here: the anonymous callers) may have 64 blocking
	// queries wait at once on a replica; its next is answered at once,
	// while another caller's query still waits. Once they are gone, one
	// waits again.
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	blocked := pendingStatus + "?wait=15s&unless=pending"
	for range maxStatusWaitersPerCaller {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, blocked, nil)
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
			}
		}()
	}
	waitFor(t, 10*time.Second, func() bool { return follower.statusWaiters.waiting() == maxStatusWaitersPerCaller })
	within(async(blocked), 10*time.Second, "pending", "an anonymous blocking query over the caller's 64 waits")
	boot, err := accountClient(t, follower.APIURL(), testToken, "").Bootstrap(t.Context(), "")
	if err != nil {
		t.Fatalf("bootstrap: %v", err)
	}
	admin := accountClient(t, follower.APIURL(), "", boot.Token)
	adminWait := make(chan error, 1)
	adminStart := time.Now()
	go func() {
		_, err := admin.StatusChange(t.Context(), pendingID, "pending", 400*time.Millisecond)
		adminWait <- err
	}()
	select {
	case err := <-adminWait:
		if err != nil {
			t.Fatalf("the admin's blocking query: %v", err)
		}
		if d := time.Since(adminStart); d < 300*time.Millisecond {
			t.Fatalf("the admin's blocking query answered after %s, while the anonymous callers held their 64 places: one caller took another's place", d)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the admin's blocking query got no answer")
	}
	cancel()
	wg.Wait()
	waitFor(t, 10*time.Second, func() bool { return follower.statusWaiters.waiting() == 0 })
	again := async(pendingStatus + "?wait=400ms&unless=pending")
	silent(again, 200*time.Millisecond, "blocking query answered at once after the others left")
	<-again

	for _, c := range []struct{ query, field string }{
		{"?wait=abc&unless=pending", "wait"},
		{"?wait=0s&unless=pending", "wait"},
		{"?wait=2m&unless=pending", "wait"},
		{"?wait=21s&unless=pending", "wait"},
		{"?wait=1s", "unless"},
		{"?unless=pending", "wait"},
		{"?wait=1s&unless=bogus", "unless"},
	} {
		resp, body := do(t, "GET", status+c.query, nil)
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), c.field) {
			t.Errorf("GET %s: %d %s, want 400 naming %s", c.query, resp.StatusCode, body, c.field)
		}
	}
	if resp, body := do(t, "GET", follower.APIURL()+"/api/status/999999?wait=1s&unless=pending", nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown task: %d %s, want 404", resp.StatusCode, body)
	}

	// A replica shutting down answers its waiting queries: the shutdown
	// does not wait out their 15 s.
	last := async(pendingStatus + "?wait=15s&unless=pending")
	waitFor(t, 10*time.Second, func() bool { return follower.statusWaiters.waiting() == 1 })
	closed := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		closed <- follower.Close(ctx)
	}()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatalf("close the follower with a query waiting: %v", err)
		}
	case <-time.After(12 * time.Second):
		t.Fatal("the follower's close still waiting 12 s on")
	}
	within(last, 10*time.Second, "pending", "the query waiting at the shutdown got no answer")
}

// TestWaiterBook checks the places for blocking status queries: 64 per
// caller, 256 in all, each given back on release.
func TestWaiterBook(t *testing.T) {
	var b waiterBook
	callers := []string{"account:a", "account:b", "account:c", "anonymous"}
	for _, c := range callers {
		for i := range maxStatusWaitersPerCaller {
			if !b.hold(c) {
				t.Fatalf("%s's query %d refused", c, i+1)
			}
		}
		if b.hold(c) {
			t.Fatalf("%s's query %d held: over the caller's %d", c, maxStatusWaitersPerCaller+1, maxStatusWaitersPerCaller)
		}
	}
	if n := b.waiting(); n != maxStatusWaiters {
		t.Fatalf("waiting = %d, want %d", n, maxStatusWaiters)
	}
	if b.hold("cluster") {
		t.Fatal("a fifth caller's query held with all 256 places taken")
	}
	b.release("account:a")
	if !b.hold("cluster") {
		t.Fatal("a place given back was not taken again")
	}
	if b.hold("account:a") {
		t.Fatal("a query held with all 256 places taken")
	}
	b.release("cluster")
	if !b.hold("account:a") {
		t.Fatal("account a could not take back its place")
	}
	for _, c := range callers {
		for range maxStatusWaitersPerCaller {
			b.release(c)
		}
	}
	if n, m := b.waiting(), len(b.perCaller); n != 0 || m != 0 {
		t.Fatalf("after every release: %d waiting, %d callers listed; want none", n, m)
	}
}

// TestWaitTasksFollowsWithoutRounds waits (WaitTasks, a 30 s interval)
// through a follower, behind a counting proxy, on 20 pending tasks (of no
// batch, so read one by one) that are then killed one by one in order: each end is seen at once, and costs
// one blocking query, not a new read of every unfinished task (which
// would make 20+19+…+1 = 210 plain reads).
func TestWaitTasksFollowsWithoutRounds(t *testing.T) {
	leader, followers := leaderAndFollowers(t, startCluster(t, 3))
	const n = 20
	var sr api.SubmitResponse // 20 tasks of no batch: read one by one
	for range n {
		resp, body := do(t, "POST", leader.APIURL()+"/api/submit", api.SubmitRequest{Command: "sleep", Arguments: []string{"100"}})
		var one api.SubmitResponse
		if resp.StatusCode != http.StatusAccepted || json.Unmarshal(body, &one) != nil || len(one.TaskIDs) != 1 {
			t.Fatalf("submit: %d %s", resp.StatusCode, body)
		}
		sr.TaskIDs = append(sr.TaskIDs, one.TaskIDs[0])
	}
	last := followers[0].APIURL() + "/api/status/" + sr.TaskIDs[n-1]
	waitFor(t, 10*time.Second, func() bool { resp, _ := do(t, "GET", last, nil); return resp.StatusCode == http.StatusOK })
	client, counts := countingClient(t, followers[0])
	plain, blocking := &counts.plain, &counts.blocking
	var mu sync.Mutex
	var ended []string
	endedCount := func() int { mu.Lock(); defer mu.Unlock(); return len(ended) }
	wt := make(chan error, 1)
	go func() {
		_, err := client.WaitTasks(t.Context(), sr.TaskIDs, api.PollOptions{Interval: 30 * time.Second}, func(id string, _ fsm.Task) {
			mu.Lock()
			ended = append(ended, id)
			mu.Unlock()
		})
		wt <- err
	}()
	waitFor(t, 10*time.Second, func() bool { return plain.Load() == n && blocking.Load() == 1 })
	for i, id := range sr.TaskIDs {
		if resp, body := do(t, "POST", leader.APIURL()+"/api/kill/"+id, nil); resp.StatusCode/100 != 2 {
			t.Fatalf("kill %s: %d %s", id, resp.StatusCode, body)
		}
		waitFor(t, 10*time.Second, func() bool { return endedCount() == i+1 })
	}
	select {
	case err := <-wt:
		if err != nil {
			t.Fatalf("WaitTasks: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("WaitTasks still waiting after every task was killed")
	}
	if strings.Join(ended, ",") != strings.Join(sr.TaskIDs, ",") {
		t.Errorf("ended in the order %v, want %v", ended, sr.TaskIDs)
	}
	// One round at the start; a second only if the kills took longer
	// than the interval.
	if p := plain.Load(); p > 2*n {
		t.Errorf("%d plain status reads for %d tasks ended one by one: each end cost a round", p, n)
	}
	if b := blocking.Load(); b < n || b > 3*n {
		t.Errorf("%d blocking queries for %d ends, want about one per end", b, n)
	}
}

// TestWaitTasksReadsBatches waits (WaitTasks, a 30 s interval) through a
// follower, behind a counting proxy, on the 100 tasks of an array, then
// kills the batch: the tasks are read with the batch's listing, not one by
// one (the first round made 100 status reads before), and every one is
// seen killed.
func TestWaitTasksReadsBatches(t *testing.T) {
	leader, followers := leaderAndFollowers(t, startCluster(t, 3))
	const n = 100
	resp, body := do(t, "POST", leader.APIURL()+"/api/submit", api.SubmitRequest{Command: "sleep", Arguments: []string{"100"}, Array: "1-100"})
	var sr api.SubmitResponse
	if resp.StatusCode != http.StatusAccepted || json.Unmarshal(body, &sr) != nil || len(sr.TaskIDs) != n || sr.BatchID == "" {
		t.Fatalf("submit: %d %s", resp.StatusCode, body)
	}
	client, counts := countingClient(t, followers[0])
	plain, lists := &counts.plain, &counts.lists
	// The follower must hold the whole array before the wait begins.
	waitFor(t, 10*time.Second, func() bool {
		resp, _ := do(t, "GET", followers[0].APIURL()+"/api/status/"+sr.TaskIDs[n-1], nil)
		return resp.StatusCode == http.StatusOK
	})
	wt := make(chan []fsm.Task, 1)
	go func() {
		ts, err := client.WaitTasks(t.Context(), sr.TaskIDs, api.PollOptions{Interval: 30 * time.Second}, nil)
		if err != nil {
			t.Errorf("WaitTasks: %v", err)
		}
		wt <- ts
	}()
	waitFor(t, 10*time.Second, func() bool { return lists.Load() >= 1 })
	if resp, body := do(t, "POST", leader.APIURL()+"/api/batch/"+sr.BatchID+"/kill", nil); resp.StatusCode/100 != 2 {
		t.Fatalf("kill batch: %d %s", resp.StatusCode, body)
	}
	select {
	case ts := <-wt:
		if len(ts) != n {
			t.Fatalf("WaitTasks gave %d tasks, want %d", len(ts), n)
		}
		for i, tk := range ts {
			if tk.Status != fsm.StatusKilled || strconv.FormatInt(tk.TaskID, 10) != sr.TaskIDs[i] {
				t.Fatalf("task %d: %d %s, want %s killed", i, tk.TaskID, tk.Status, sr.TaskIDs[i])
			}
		}
	case <-time.After(20 * time.Second):
		t.Fatal("WaitTasks still waiting 20 s after the batch was killed")
	}
	if p := plain.Load(); p > 5 {
		t.Errorf("%d plain status reads for an array of %d: the batch was read task by task", p, n)
	}
}

// requestCounts counts the task reads a countingClient sent.
type requestCounts struct {
	plain    atomic.Int64 // GET /api/status/{id}
	blocking atomic.Int64 // GET /api/status/{id}?wait=…
	lists    atomic.Int64 // GET /api/tasks
}

// countingClient returns a client of replica h through a reverse proxy on
// loopback that counts its task reads.
func countingClient(t *testing.T, h *Host) (*api.Client, *requestCounts) {
	t.Helper()
	target, err := url.Parse(h.APIURL())
	if err != nil {
		t.Fatal(err)
	}
	counts := &requestCounts{}
	proxy := httputil.NewSingleHostReverseProxy(target)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasPrefix(r.URL.Path, "/api/status/") && r.URL.Query().Has("wait"):
			counts.blocking.Add(1)
		case strings.HasPrefix(r.URL.Path, "/api/status/"):
			counts.plain.Add(1)
		case r.URL.Path == "/api/tasks":
			counts.lists.Add(1)
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	cc := api.DefaultClientConfig()
	cc.Hosts = []string{srv.URL}
	client, err := api.NewClient(cc)
	if err != nil {
		t.Fatal(err)
	}
	return client, counts
}
