package cluster

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster/httpapi"
	"github.com/hakuriver/hakuriver-ha/cluster/notify"
	"github.com/hakuriver/hakuriver-ha/fsm"
)

// TestNotifyURLRefusedByDefault: without notify.webhook_allow a per-task
// URL is refused with a 400 that names the field and says how to allow it;
// with it, only URLs under an allowed prefix pass.
func TestNotifyURLRefusedByDefault(t *testing.T) {
	h := &Host{cfg: Config{}}
	err := h.checkNotifyURL("https://hooks.example.org/x")
	if httpapi.StatusOf(err) != http.StatusBadRequest || !strings.Contains(err.Error(), "notify:") || !strings.Contains(err.Error(), "webhook_allow") {
		t.Fatalf("default: %v (status %d), want a 400 naming notify and webhook_allow", err, httpapi.StatusOf(err))
	}
	h.cfg.Notify = NotifyConfig{Secret: []byte("s"), Allow: []string{"https://hooks.example.org/ci/"}}
	err = h.checkNotifyURL("https://hooks.example.org/admin")
	if httpapi.StatusOf(err) != http.StatusBadRequest || !strings.Contains(err.Error(), "notify:") {
		t.Fatalf("outside the allow-list: %v", err)
	}
}

func TestNotifyConfigValidate(t *testing.T) {
	bad := []NotifyConfig{
		{Webhooks: []string{"https://h/x"}},                          // no secret
		{Allow: []string{"https://h/"}},                              // no secret
		{Secret: []byte("s"), Webhooks: []string{"ftp://h/x"}},       // scheme
		{Secret: []byte("s"), Allow: []string{"hooks.example.org/"}}, // not a URL prefix
	}
	for _, c := range bad {
		if len(c.validate()) == 0 {
			t.Errorf("%+v: accepted", c)
		}
	}
	if errs := (NotifyConfig{Secret: []byte("s"), Webhooks: []string{"https://h/x"}, Allow: []string{"https://h/"}}).validate(); len(errs) != 0 {
		t.Errorf("good config refused: %v", errs)
	}
	a, b := webhookTargets([]string{"https://h/x?token=1", "https://h/x?token=1"}), webhookTargets([]string{"https://h/y"})
	if len(a) != 1 || a[0].id == b[0].id || strings.Contains(a[0].id, "token") {
		t.Errorf("targets %v %v: want one per distinct URL, IDs without the URL", a, b)
	}
}

// fakeCluster applies the notifier's commands to a real fsm.Machine (no
// Raft): what the notifier reads is what it committed.
type fakeCluster struct {
	m   *fsm.Machine
	idx uint64
	mu  sync.Mutex
}

func (f *fakeCluster) apply(_ context.Context, c fsm.Command) (any, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, err := fsm.Encode(c)
	if err != nil {
		return nil, err
	}
	f.idx++
	r := f.m.Apply(f.idx, b)
	return r.Value, r.Err
}

// TestNotifierRetriesThenRecords drives a notifier over a real state
// machine: a task that ended is delivered after two failures with the
// same key, every outcome is committed (pending twice, then delivered), and
// a second notifier (a new leader) finds nothing left to send.
func TestNotifierRetriesThenRecords(t *testing.T) {
	f := &fakeCluster{m: fsm.New()}
	bg := context.Background()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := now
	f.apply(bg, &fsm.RegisterNode{Node: &fsm.Node{Hostname: "n1", TotalCores: 1}, At: now})                  //nolint:errcheck
	f.apply(bg, &fsm.SubmitTasks{Tasks: []*fsm.Task{{TaskID: 7, Status: fsm.StatusPending, SubmittedAt: now, //nolint:errcheck
		Notify: "https://h/t"}}})
	if _, err := f.apply(bg, &fsm.UpdateTask{TaskID: 7, Status: fsm.StatusFailed, At: now}); err != nil {
		t.Fatal(err)
	}
	var sent []string
	fail := 2
	n := newNotifier(notifyDeps{
		cfg: NotifyConfig{Secret: []byte("s"), BackoffBase: time.Second, BackoffMax: time.Minute},
		log: testLogger(t), state: f.m, apply: f.apply, known: func(fsm.CommandType) error { return nil },
		send: func(_ context.Context, url, key string, _ []byte) error {
			sent = append(sent, url+" "+key)
			if fail > 0 {
				fail--
				return &notify.StatusError{Code: 500}
			}
			return nil
		},
		now: func() time.Time { return at },
	})
	ctx := context.Background()
	if !n.waitReady(ctx) {
		t.Fatal("not ready")
	}
	n.scan()
	step := func() {
		for _, d := range n.jobs {
			if !d.inflight && !d.recording && !d.next.After(at) {
				n.handle(n.deliver(ctx, d))
			}
		}
		n.flush(ctx)
	}
	for i := 0; i < 10 && len(n.jobs) > 0; i++ {
		step()
		at = at.Add(4 * time.Second)
	}
	want := []string{"https://h/t 7-1-failed", "https://h/t 7-1-failed", "https://h/t 7-1-failed"}
	if strings.Join(sent, ",") != strings.Join(want, ",") {
		t.Fatalf("sent %v, want %v", sent, want)
	}
	tk, _ := f.m.Task(7)
	if len(tk.Notifications) != 1 || tk.Notifications[0].State != fsm.DeliveryDelivered || tk.Notifications[0].Attempts != 3 {
		t.Fatalf("records %+v, want delivered after 3 attempts", tk.Notifications)
	}
	n2 := newNotifier(n.notifyDeps)
	n2.since = f.m.NotifyTargets()
	n2.scan()
	n2.watch()
	if len(n2.jobs) != 0 {
		t.Fatalf("a new leader would resend: %v", n2.jobs)
	}
}

// TestNotifierAllEvents: with AllEvents every status the watcher sees is
// queued under its own key, and a task created and ended between two looks
// still gets its final event.
func TestNotifierAllEvents(t *testing.T) {
	f := &fakeCluster{m: fsm.New()}
	bg := context.Background()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	mustApply := func(c fsm.Command) {
		t.Helper()
		if _, err := f.apply(bg, c); err != nil {
			t.Fatal(err)
		}
	}
	mustApply(&fsm.RegisterNode{Node: &fsm.Node{Hostname: "n1", TotalCores: 4}, At: now})
	mustApply(&fsm.SubmitTasks{Tasks: []*fsm.Task{{TaskID: 3, Status: fsm.StatusPending, SubmittedAt: now}}})
	n := newNotifier(notifyDeps{
		cfg: NotifyConfig{Secret: []byte("s"), Webhooks: []string{"https://h/all"}, AllEvents: true},
		log: testLogger(t), state: f.m, apply: f.apply, known: func(fsm.CommandType) error { return nil },
		send: func(context.Context, string, string, []byte) error { return nil },
		now:  func() time.Time { return now },
	})
	if !n.waitReady(bg) {
		t.Fatal("not ready")
	}
	n.scan() // task 3, pending before this leader, is no event of its own
	mustApply(&fsm.SubmitTasks{Tasks: []*fsm.Task{{TaskID: 4, Status: fsm.StatusPending, SubmittedAt: now}}})
	n.watch() // sees task 4 pending
	mustApply(&fsm.AssignTask{TaskID: 4, Node: "n1", At: now})
	n.watch()
	mustApply(&fsm.UpdateTask{TaskID: 4, Status: fsm.StatusRunning, At: now})
	n.watch()
	mustApply(&fsm.UpdateTask{TaskID: 4, Status: fsm.StatusCompleted, At: now})
	mustApply(&fsm.SubmitTasks{Tasks: []*fsm.Task{{TaskID: 5, Status: fsm.StatusPending, SubmittedAt: now}}})
	mustApply(&fsm.KillTask{TaskID: 5, At: now})
	n.watch()
	var keys []string
	for _, d := range n.jobs {
		keys = append(keys, d.key)
	}
	slices.Sort(keys)
	want := []string{"4-1-assigning", "4-1-completed", "4-1-pending", "4-1-running", "5-1-killed"}
	if !slices.Equal(keys, want) {
		t.Fatalf("queued %v, want %v", keys, want)
	}
}
