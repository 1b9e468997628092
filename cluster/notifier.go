package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster/notify"
	"github.com/hakuriver/hakuriver-ha/fsm"
)

// The notifier runs on the leader, one per term: it finds the task events
// to deliver (final states, or every status change with AllEvents), POSTs
// them signed from a bounded pool of workers, retries failures with
// exponential backoff, and records every outcome in the replicated state
// (fsm.NotifyDelivered, many outcomes per entry). It never blocks the
// scheduler or Apply: it only reads the FSM, and proposes its own entries.
//
// At-least-once: an event is delivered until an outcome is committed; a
// new leader finds every final event with no committed outcome (a scan of
// the tasks that ended within MaxAge) and delivers it again with the same
// idempotency key. Events of non-final states are found by watching the
// active tasks: states a task passes through between two looks are
// coalesced, and one never attempted before a leader change is not resent.
const (
	notifyWatchTick = 100 * time.Millisecond
	notifyScanEvery = 30 * time.Second
	// notifyFlushMax bounds the outcomes recorded in one entry.
	notifyFlushMax = 512
	// notifyPage is the page size of task scans.
	notifyPage = 1000
)

// notifyDeps is what the notifier needs from its replica.
type notifyDeps struct {
	cfg   NotifyConfig
	log   *slog.Logger
	state *fsm.Machine
	apply func(ctx context.Context, c fsm.Command) (any, error)
	known func(t fsm.CommandType) error
	send  func(ctx context.Context, url, key string, body []byte) error
	now   func() time.Time
	// observe records one attempt's outcome for metrics ("delivered",
	// "retry", "failed"), the POST's duration and, for a delivered final
	// event, the time since the task ended (negative: unknown).
	observe func(outcome string, post, lag time.Duration)
}

// delivery is one event to one target, held by the notifier until its
// outcome is committed.
type delivery struct {
	id       string // key + "|" + target
	taskID   int64
	key      string
	target   string
	url      string
	event    fsm.Status
	attempts int
	next     time.Time
	inflight bool
	// queued: in the notifier's ready list, waiting for a worker.
	queued bool
	// recording: the final outcome waits to be committed; never resent.
	recording bool
}

type deliveryResult struct {
	d    *delivery
	err  error
	gone bool // the task no longer exists
	post time.Duration
	lag  time.Duration
}

type notifier struct {
	notifyDeps
	targets []webhookTarget
	since   map[string]time.Time
	jobs    map[string]*delivery
	work    chan *delivery
	results chan deliveryResult
	// outcomes wait to be committed, by delivery ID (newest wins).
	outcomes map[string]fsm.NotifyRecord
	// ready holds the due deliveries in the order they became due.
	ready  []*delivery
	prev   map[int64]fsm.Status
	lastID int64
}

func newNotifier(d notifyDeps) *notifier {
	d.cfg = d.cfg.withDefaults()
	if d.observe == nil {
		d.observe = func(string, time.Duration, time.Duration) {}
	}
	return &notifier{
		notifyDeps: d,
		targets:    webhookTargets(d.cfg.Webhooks),
		jobs:       map[string]*delivery{},
		work:       make(chan *delivery, d.cfg.Workers*4),
		results:    make(chan deliveryResult, d.cfg.Workers*4),
		outcomes:   map[string]fsm.NotifyRecord{},
		prev:       map[int64]fsm.Status{},
	}
}

// run delivers until ctx ends (leadership is lost).
func (n *notifier) run(ctx context.Context) {
	if !n.cfg.enabled() || !n.waitReady(ctx) {
		return
	}
	done := make(chan struct{})
	for range n.cfg.Workers {
		go func() {
			defer func() { done <- struct{}{} }()
			n.worker(ctx)
		}()
	}
	defer func() {
		for range n.cfg.Workers {
			<-done
		}
	}()
	n.scan()
	tick := time.NewTicker(notifyWatchTick)
	defer tick.Stop()
	lastScan := n.now()
	for {
		select {
		case <-ctx.Done():
			return
		case r := <-n.results:
			n.handle(r)
			n.dispatch()
		case <-tick.C:
			if n.now().Sub(lastScan) >= notifyScanEvery {
				n.scan()
				lastScan = n.now()
			}
			n.watch()
			n.flush(ctx)
			n.due()
			n.dispatch()
		}
	}
}

// waitReady waits until every replica knows NotifyDelivered and the
// configured webhooks are registered in the replicated state.
func (n *notifier) waitReady(ctx context.Context) bool {
	logged := false
	for {
		err := n.known(fsm.CmdNotifyDelivered)
		if err == nil {
			err = n.register(ctx)
		}
		if err == nil {
			return true
		}
		if !logged {
			n.log.Info("webhook notifications wait", "err", err)
			logged = true
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(2 * time.Second):
		}
	}
}

// register records the webhooks the replicated state does not know yet,
// with the time from which they receive events.
func (n *notifier) register(ctx context.Context) error {
	known := n.state.NotifyTargets()
	var add []fsm.NotifyTarget
	now := n.now().UTC()
	for _, t := range n.targets {
		if _, ok := known[t.id]; !ok {
			add = append(add, fsm.NotifyTarget{ID: t.id, Since: now})
		}
	}
	if len(add) > 0 {
		actx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if _, err := n.apply(actx, &fsm.NotifyDelivered{Targets: add, At: now}); err != nil {
			return err
		}
		n.log.Info("webhooks registered", "count", len(add))
	}
	n.since = n.state.NotifyTargets()
	return nil
}

// taskAttempt is the attempt number of the task's current run, so that
// the events of two attempts of a retried task have distinct keys.
func taskAttempt(t *fsm.Task) int { return t.CurrentAttempt() }

// enqueue queues event of t for each of its targets that has no final
// outcome yet. eventAt is when the event happened (nil: now).
func (n *notifier) enqueue(t *fsm.Task, event fsm.Status, eventAt *time.Time) {
	key := fsm.NotifyKey(t.TaskID, taskAttempt(t), event)
	if t.Notify != "" {
		n.enqueueTo(t, event, key, fsm.NotifyTargetTask, t.Notify)
	}
	for _, w := range n.targets {
		since, ok := n.since[w.id]
		if !ok || eventAt != nil && eventAt.Before(since) {
			continue
		}
		n.enqueueTo(t, event, key, w.id, w.url)
	}
}

func (n *notifier) enqueueTo(t *fsm.Task, event fsm.Status, key, target, url string) {
	id := key + "|" + target
	if _, ok := n.jobs[id]; ok || len(n.jobs) >= n.cfg.QueueSize {
		return
	}
	d := &delivery{id: id, taskID: t.TaskID, key: key, target: target, url: url, event: event, next: n.now()}
	recorded := false
	for _, r := range t.Notifications {
		if r.Key != key || r.Target != target {
			continue
		}
		if r.State != fsm.DeliveryPending {
			return // delivered or given up
		}
		recorded = true
		d.attempts = r.Attempts
		d.next = r.At.Add(notify.Backoff(r.Attempts, n.cfg.BackoffBase, n.cfg.BackoffMax))
	}
	if !recorded && len(t.Notifications) >= fsm.MaxNotifications {
		return // its outcome could not be recorded: a scan would resend it forever
	}
	n.jobs[id] = d
}

// scan walks every task: final ones that ended within MaxAge, and
// pending outcomes of non-final events, are queued unless done.
func (n *notifier) scan() {
	cutoff := n.now().Add(-n.cfg.MaxAge)
	var after int64
	for {
		page := n.state.TasksAfter(after, notifyPage)
		for _, t := range page {
			after = t.TaskID
			if t.Done() && t.CompletedAt != nil && t.CompletedAt.After(cutoff) { // Done: no retry follows
				n.enqueue(t, t.Status, t.CompletedAt)
			}
			for _, r := range t.Notifications {
				if r.State == fsm.DeliveryPending && r.Event != t.Status {
					n.enqueue(t, r.Event, nil)
				}
			}
		}
		if len(page) < notifyPage {
			break
		}
	}
	n.lastID = max(n.lastID, after)
	n.prev = map[int64]fsm.Status{}
	for _, t := range n.state.Active() {
		n.prev[t.TaskID] = t.Status
	}
}

// watch finds the status changes since the last look: tasks that left the
// active set (final now), new tasks, and (AllEvents) changed active ones.
func (n *notifier) watch() {
	cur := make(map[int64]fsm.Status, len(n.prev))
	for _, t := range n.state.Active() {
		cur[t.TaskID] = t.Status
		if n.cfg.AllEvents && n.prev[t.TaskID] != t.Status {
			n.enqueue(t, t.Status, nil)
		}
	}
	for id := range n.prev {
		if _, ok := cur[id]; ok {
			continue
		}
		if t, ok := n.state.Task(id); ok && t.Done() {
			n.enqueue(t, t.Status, t.CompletedAt)
		}
	}
	for range 10 { // tasks created (and maybe ended) since the last look
		page := n.state.TasksAfter(n.lastID, notifyPage)
		for _, t := range page {
			n.lastID = t.TaskID
			if t.Done() {
				n.enqueue(t, t.Status, t.CompletedAt)
			}
		}
		if len(page) < notifyPage {
			break
		}
	}
	n.prev = cur
}

// due moves the deliveries whose time has come to the ready list.
func (n *notifier) due() {
	now := n.now()
	for _, d := range n.jobs {
		if !d.inflight && !d.recording && !d.queued && !d.next.After(now) {
			d.queued = true
			n.ready = append(n.ready, d)
		}
	}
}

// dispatch hands ready deliveries to the workers, as many as they take
// without waiting.
func (n *notifier) dispatch() {
	for len(n.ready) > 0 {
		d := n.ready[0]
		if d.inflight || d.recording {
			n.ready = n.ready[1:]
			d.queued = false
			continue
		}
		select {
		case n.work <- d:
			d.inflight, d.queued = true, false
			n.ready[0] = nil
			n.ready = n.ready[1:]
		default:
			return
		}
	}
}

func (n *notifier) worker(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case d := <-n.work:
			r := n.deliver(ctx, d)
			select {
			case n.results <- r:
			case <-ctx.Done():
				return
			}
		}
	}
}

// deliver makes one attempt of d.
func (n *notifier) deliver(ctx context.Context, d *delivery) deliveryResult {
	t, ok := n.state.Task(d.taskID)
	if !ok {
		return deliveryResult{d: d, gone: true}
	}
	body, err := json.Marshal(payloadOf(t, d, n.now()))
	if err != nil {
		return deliveryResult{d: d, err: err}
	}
	start := n.now()
	err = n.send(ctx, d.url, d.key, body)
	r := deliveryResult{d: d, err: err, post: n.now().Sub(start), lag: -1}
	if d.event.Final() && t.CompletedAt != nil {
		r.lag = n.now().Sub(*t.CompletedAt)
	}
	return r
}

func payloadOf(t *fsm.Task, d *delivery, now time.Time) notify.Payload {
	p := notify.Payload{
		Event: notify.EventTaskStatus, Delivery: d.key,
		TaskID: strconv.FormatInt(t.TaskID, 10), Name: t.Name, Owner: t.Owner,
		Status: string(d.event), Final: d.event.Final(), Node: t.AssignedNode,
		SubmittedAt: t.SubmittedAt, StartedAt: t.StartedAt, SentAt: now.UTC(),
	}
	if t.BatchID != 0 {
		p.BatchID = strconv.FormatInt(t.BatchID, 10)
	}
	if d.event == t.Status {
		p.ExitCode, p.ErrorMessage, p.CompletedAt = t.ExitCode, t.ErrorMessage, t.CompletedAt
	}
	return p
}

// handle turns an attempt's result into the outcome to record.
func (n *notifier) handle(r deliveryResult) {
	d := r.d
	d.inflight = false
	if r.gone {
		delete(n.jobs, d.id)
		return
	}
	d.attempts++
	rec := fsm.NotifyRecord{TaskID: d.taskID, Notification: fsm.Notification{
		Key: d.key, Target: d.target, Event: d.event, Attempts: d.attempts, At: n.now().UTC()}}
	switch {
	case r.err == nil:
		rec.State = fsm.DeliveryDelivered
		d.recording = true
		n.observe(fsm.DeliveryDelivered, r.post, r.lag)
	case d.attempts >= n.cfg.MaxAttempts:
		rec.State, rec.LastError = fsm.DeliveryFailed, clipError(r.err)
		d.recording = true
		n.observe(fsm.DeliveryFailed, r.post, -1)
		n.log.Warn("webhook delivery failed, giving up", "task_id", d.taskID, "key", d.key, "target", d.target, "attempts", d.attempts, "err", rec.LastError)
	default:
		rec.State, rec.LastError = fsm.DeliveryPending, clipError(r.err)
		d.next = n.now().Add(notify.Backoff(d.attempts, n.cfg.BackoffBase, n.cfg.BackoffMax))
		n.observe("retry", r.post, -1)
		n.log.Info("webhook delivery failed, will retry", "task_id", d.taskID, "key", d.key, "target", d.target, "attempts", d.attempts, "err", rec.LastError)
	}
	n.outcomes[d.id] = rec
}

// clipError renders err for the record, within fsm.MaxNotifyError bytes
// (and without the URL, which may hold a token).
func clipError(err error) string {
	var se *notify.StatusError
	var msg string
	switch {
	case errors.As(err, &se):
		msg = se.Error() + " " + http.StatusText(se.Code)
	case errors.Is(err, context.DeadlineExceeded):
		msg = "timeout"
	default:
		msg = err.Error()
		var ue *url.Error
		if errors.As(err, &ue) {
			msg = ue.Err.Error()
		}
	}
	if len(msg) > fsm.MaxNotifyError {
		msg = msg[:fsm.MaxNotifyError]
	}
	return msg
}

// flush commits the outcomes waiting, up to notifyFlushMax per entry; the
// deliveries whose final outcome is committed are done.
func (n *notifier) flush(ctx context.Context) {
	for len(n.outcomes) > 0 && ctx.Err() == nil {
		batch := make([]fsm.NotifyRecord, 0, min(len(n.outcomes), notifyFlushMax))
		ids := make([]string, 0, cap(batch))
		for id, r := range n.outcomes {
			if len(batch) == notifyFlushMax {
				break
			}
			batch, ids = append(batch, r), append(ids, id)
		}
		actx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err := n.apply(actx, &fsm.NotifyDelivered{Deliveries: batch, At: n.now().UTC()})
		cancel()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, ErrNotLeader) {
				n.log.Info("delivery outcomes not recorded: leadership ending", "count", len(batch), "err", err)
			} else {
				n.log.Warn("record delivery outcomes (retried)", "count", len(batch), "err", err)
			}
			return
		}
		for i, id := range ids {
			delete(n.outcomes, id)
			if batch[i].State != fsm.DeliveryPending {
				delete(n.jobs, id)
			}
		}
	}
}

// runNotifier runs this replica's notifier for one term of leadership.
func (h *Host) runNotifier(ctx context.Context) {
	s := &notify.Sender{Client: h.notifyClient, Secret: h.cfg.Notify.Secret,
		Timeout: h.cfg.Notify.withDefaults().Timeout, UserAgent: "HakuRiver-Webhook/" + h.cfg.Version}
	newNotifier(notifyDeps{
		cfg: h.cfg.Notify, log: h.log.With("component", "notify"), state: h.machine,
		apply: h.apply, known: h.commandKnown, send: s.Send, now: time.Now,
		observe: h.metrics.observeNotify,
	}).run(ctx)
}
