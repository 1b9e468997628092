//go:build integration

package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/cluster/notify"
	"github.com/hakuriver/hakuriver-ha/fsm"
	"github.com/hakuriver/hakuriver-ha/integration/harness"
)

// notifyTimeout bounds the wait for a delivery: the first retry comes 1 s
// after a failure, the fifth 16 s after the fourth.
const notifyTimeout = 90 * time.Second

const webhookSecret = "test-webhook-secret"

// hook is one request the receiver got.
type hook struct {
	path    string
	key     string
	sigOK   bool
	payload notify.Payload
	code    int // what the receiver answered
}

// receiver is a webhook receiver on loopback: a real HTTP server that
// records every request, answers 500 to the first request of each key when
// failFirst is set, and can be stopped and started again on its port.
type receiver struct {
	t         *testing.T
	failFirst bool
	addr      string

	mu   sync.Mutex
	got  []hook
	seen map[string]bool // path+key answered once
	srv  *http.Server
}

func newReceiver(t *testing.T, failFirst bool) *receiver {
	r := &receiver{t: t, failFirst: failFirst, seen: map[string]bool{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r.addr = ln.Addr().String()
	r.serve(ln)
	t.Cleanup(r.stop)
	return r
}

func (r *receiver) url(path string) string { return "http://" + r.addr + path }

func (r *receiver) serve(ln net.Listener) {
	srv := &http.Server{Handler: http.HandlerFunc(r.handle), ReadHeaderTimeout: 10 * time.Second}
	r.mu.Lock()
	r.srv = srv
	r.mu.Unlock()
	go srv.Serve(ln) //nolint:errcheck // ends with ErrServerClosed
}

// stop closes the listener and every connection: the port refuses.
func (r *receiver) stop() {
	r.mu.Lock()
	srv := r.srv
	r.srv = nil
	r.mu.Unlock()
	if srv != nil {
		srv.Close()
	}
}

// start listens again on the same port (bounded retries: the port was ours
// a moment ago).
func (r *receiver) start() {
	var ln net.Listener
	err := harness.Eventually(10*time.Second, func() (bool, string) {
		var err error
		ln, err = net.Listen("tcp", r.addr)
		return err == nil, fmt.Sprint(err)
	})
	if err != nil {
		r.t.Fatalf("listen again on %s: %v", r.addr, err)
	}
	r.serve(ln)
}

func (r *receiver) handle(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	h := hook{path: req.URL.Path, key: req.Header.Get(notify.DeliveryHeader),
		sigOK: notify.Verify([]byte(webhookSecret), body, req.Header.Get(notify.SignatureHeader))}
	if err := json.Unmarshal(body, &h.payload); err != nil {
		h.sigOK = false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	h.code = http.StatusNoContent
	if r.failFirst && !r.seen[h.path+" "+h.key] {
		h.code = http.StatusInternalServerError
	}
	r.seen[h.path+" "+h.key] = true
	r.got = append(r.got, h)
	w.WriteHeader(h.code)
}

func (r *receiver) hooks() []hook {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

// delivered returns the keys answered 2xx on path, sorted, without repeats.
func (r *receiver) delivered(path string) []string {
	set := map[string]bool{}
	for _, h := range r.hooks() {
		if h.path == path && h.code < 300 {
			set[h.key] = true
		}
	}
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// checkHooks checks every request: a valid signature, a body that agrees
// with its key (the key names the task and the status), only known keys.
func (r *receiver) checkHooks(t *testing.T, want map[string]bool) {
	t.Helper()
	for _, h := range r.hooks() {
		if !h.sigOK {
			t.Errorf("%s %s: signature does not verify with the secret (or the body is not JSON)", h.path, h.key)
		}
		if h.payload.Delivery != h.key || fsm.NotifyKey(mustID(t, h.payload.TaskID), 1, fsm.Status(h.payload.Status)) != h.key {
			t.Errorf("%s: header key %q, body delivery %q, task %s status %s", h.path, h.key, h.payload.Delivery, h.payload.TaskID, h.payload.Status)
		}
		if !want[h.key] {
			t.Errorf("%s: unexpected key %q (a task that should not notify, or a non-final state)", h.path, h.key)
		}
		if !h.payload.Final {
			t.Errorf("%s %s: final=false, want only final states", h.path, h.key)
		}
	}
}

func mustID(t *testing.T, s string) int64 {
	t.Helper()
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Errorf("task_id %q: %v", s, err)
	}
	return id
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// webhookArgs are the host flags of a cluster-wide webhook at hookURL and
// per-task URLs allowed under allow.
func webhookArgs(hookURL, allow string) []string {
	return []string{"--webhook-urls", hookURL, "--webhook-secret", webhookSecret, "--webhook-allow", allow}
}

// waitDelivered waits until task id records a delivered notification of
// its final state for every target in targets, and returns the task.
func waitDelivered(t *testing.T, c *harness.Cluster, id string, targets int) api.Task {
	t.Helper()
	return c.WaitTask(id, notifyTimeout, fmt.Sprintf("to record %d delivered notification(s)", targets), func(tk api.Task) bool {
		n := 0
		for _, r := range tk.Notifications {
			if r.State == fsm.DeliveryDelivered && r.Event == tk.Status {
				n++
			}
		}
		return n == targets
	})
}

// TestWebhookDelivery: a receiver on loopback that answers 500 to the
// first request of every key gets each task's final state, signed, under
// one idempotency key per task and target; the outcome (delivered after 2
// attempts) is in the API and in `task status`. A per-task URL outside the
// allow-list is refused with 400 naming the field, and nothing is created.
func TestWebhookDelivery(t *testing.T) {
	rcv := newReceiver(t, true)
	c := startCluster(t, harness.Options{HeartbeatInterval: hbInterval, HeartbeatTimeoutFactor: hbFactor,
		Args: webhookArgs(rcv.url("/hook"), rcv.url("/task/"))})
	c.StartRunner("n1", twoCores)
	l := c.WaitLeader(harness.LeaderTimeout)
	waitWebhooksRegistered(t, c)

	// Refused: a URL outside the allow-list, then a malformed one.
	before, err := c.AllTasks(l)
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"http://127.0.0.1:1/evil", "http://" + rcv.addr + "/other", "file:///etc/passwd"} {
		req := native("true")
		req.Notify = bad
		ctx, cancel := context.WithTimeout(context.Background(), harness.WriteTimeout)
		a, _, err := c.Submit(ctx, l, req)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if a.Status != http.StatusBadRequest || !strings.Contains(a.String(), "notify") {
			t.Errorf("notify %q: want HTTP 400 naming the notify field, got %s", bad, a)
		}
	}
	res := c.CLI("task", "submit", "--container", "NULL", "--notify", "http://127.0.0.1:1/evil", "--", "true")
	if res.Code == 0 || !strings.Contains(res.Stderr, "HTTP 400") || !strings.Contains(res.Stderr, "notify") {
		t.Errorf("CLI submit with a refused --notify: %s", res)
	}
	after, err := c.AllTasks(l)
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != len(before) {
		t.Fatalf("refused submits created tasks: %d before, %d after", len(before), len(after))
	}

	// Accepted: tasks ending completed, failed and killed; one with its own URL.
	ids := c.SubmitOK(l, native("true"))
	ids = append(ids, c.SubmitOK(l, native("true"))...)
	ids = append(ids, submitOne(t, c, l, shell("exit 3")))
	own := native("true")
	own.Notify = rcv.url("/task/mine")
	ownID := submitOne(t, c, l, own)
	ids = append(ids, ownID)
	sleeper := submitOne(t, c, l, native("sleep", "60"))
	killOnFailure(t, c, sleeper)
	c.WaitStatus(sleeper, "running", taskTimeout)
	c.KillTask(l, sleeper)
	ids = append(ids, sleeper)
	final := c.WaitAllFinal(ids, taskTimeout)

	want := map[string]bool{}
	for id, tk := range final {
		want[fsm.NotifyKey(tk.TaskID, 1, tk.Status)] = true
		targets := 1
		if id == ownID {
			targets = 2
		}
		got := waitDelivered(t, c, id, targets)
		for _, r := range got.Notifications {
			if r.Attempts < 2 || r.LastError != "" && !strings.Contains(r.LastError, "500") {
				t.Errorf("task %s: %+v: want >= 2 attempts after the receiver's first 500", id, r)
			}
		}
	}
	statuses := map[fsm.Status]bool{}
	for _, tk := range final {
		statuses[tk.Status] = true
	}
	if !statuses[fsm.StatusCompleted] || !statuses[fsm.StatusFailed] || !statuses[fsm.StatusKilled] {
		t.Fatalf("final statuses %v: want completed, failed and killed", statuses)
	}
	if got := rcv.delivered("/hook"); !slices.Equal(got, sortedKeys(want)) {
		t.Errorf("webhook keys delivered: %v, want one per task: %v", got, sortedKeys(want))
	}
	ownKey := fsm.NotifyKey(final[ownID].TaskID, 1, final[ownID].Status)
	if got := rcv.delivered("/task/mine"); !slices.Equal(got, []string{ownKey}) {
		t.Errorf("per-task URL keys delivered: %v, want [%s]", got, ownKey)
	}
	rcv.checkHooks(t, want)
	// Every key was first answered 500, then retried and delivered.
	for key := range want {
		var codes []int
		for _, h := range rcv.hooks() {
			if h.path == "/hook" && h.key == key {
				codes = append(codes, h.code)
			}
		}
		if len(codes) < 2 || codes[0] != http.StatusInternalServerError || codes[len(codes)-1] >= 300 {
			t.Errorf("/hook %s: answers %v, want 500 first, then 2xx", key, codes)
		}
		// Once per key: nothing is sent again after the receiver took it
		// (no leader change here to make at-least-once send it twice).
		if ok := slices.IndexFunc(codes, func(c int) bool { return c < 300 }); ok >= 0 && ok != len(codes)-1 {
			t.Errorf("/hook %s: answers %v: sent again after a 2xx", key, codes)
		}
	}
	// Retrying after a 500 is the normal course: nothing of the notifier
	// logs at warn or error.
	for i := range c.N() {
		b, err := os.ReadFile(c.Replica(i).LogPath())
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if strings.Contains(line, "component=notify") && (strings.Contains(line, "level=WARN") || strings.Contains(line, "level=ERROR")) {
				t.Errorf("%s: %s", c.Replica(i).ID, line)
			}
		}
	}
	out := c.CLIOK("task", "status", ownID).Stdout
	if !strings.Contains(out, "Notifications:") || !strings.Contains(out, "task delivered") || !strings.Contains(out, rcv.url("/task/mine")) {
		t.Errorf("task status lacks the delivery state:\n%s", out)
	}
}

// TestWebhookResumesAfterLeaderKill: a delivery fails while the receiver
// is down, the failed attempt is committed (pending), the leader is
// killed; once the receiver is back the new leader delivers it.
func TestWebhookResumesAfterLeaderKill(t *testing.T) {
	rcv := newReceiver(t, false)
	rcv.stop() // down: connections are refused
	c := startCluster(t, harness.Options{HeartbeatInterval: hbInterval, HeartbeatTimeoutFactor: hbFactor,
		Args: webhookArgs(rcv.url("/hook"), rcv.url("/task/"))})
	c.StartRunner("n1", twoCores)
	l := c.WaitLeader(harness.LeaderTimeout)
	waitWebhooksRegistered(t, c)
	req := native("true")
	req.Notify = rcv.url("/task/resume")
	id := submitOne(t, c, l, req)
	tk := c.WaitFinal(id, taskTimeout)
	c.WaitTask(id, notifyTimeout, "to record a failed attempt of each target", func(tk api.Task) bool {
		n := 0
		for _, r := range tk.Notifications {
			if r.State == fsm.DeliveryPending && r.Attempts >= 1 && r.LastError != "" {
				n++
			}
		}
		return n == 2
	})
	if len(rcv.hooks()) != 0 {
		t.Fatalf("the stopped receiver got requests: %v", rcv.hooks())
	}
	old := c.WaitLeader(harness.LeaderTimeout)
	c.Kill(old)
	c.WaitNewLeader(old, harness.LeaderTimeout)
	rcv.start()
	waitDelivered(t, c, id, 2)
	key := fsm.NotifyKey(tk.TaskID, 1, tk.Status)
	for _, path := range []string{"/hook", "/task/resume"} {
		if got := rcv.delivered(path); !slices.Equal(got, []string{key}) {
			t.Errorf("%s: keys delivered %v, want [%s]", path, got, key)
		}
	}
	rcv.checkHooks(t, map[string]bool{key: true})
	c.Restart(old)
	c.WaitSameApplied(catchUpTimeout, 0, 1, 2)
}

// waitWebhooksRegistered waits until a replica logged that the cluster's
// webhooks are registered: events of tasks that end before are not sent
// to them (enabling a webhook does not replay history).
func waitWebhooksRegistered(t *testing.T, c *harness.Cluster) {
	t.Helper()
	c.Poll(harness.LeaderTimeout, "webhooks to be registered", func() (bool, string) {
		for i := range c.N() {
			if harness.LogContains(c.Replica(i).LogPath(), "webhooks registered") {
				return true, ""
			}
		}
		return false, "no replica logged it"
	})
}
