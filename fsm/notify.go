package fsm

import (
	"fmt"
	"sort"
	"strconv"
	"time"
)

// CmdNotifyDelivered records the outcome of webhook deliveries (and the
// webhook targets the cluster delivers to) in one entry (notify.go).
const CmdNotifyDelivered CommandType = 22

// Delivery states of a Notification. A delivery not yet attempted has no
// record at all: the leader derives it from the task (see the cluster's
// notifier).
const (
	// DeliveryPending: attempted and failed, to be retried.
	DeliveryPending = "pending"
	// DeliveryDelivered: the receiver answered 2xx.
	DeliveryDelivered = "delivered"
	// DeliveryFailed: every attempt failed; no more retries.
	DeliveryFailed = "failed"
)

// Bounds of what a NotifyDelivered may record.
const (
	// MaxNotifications caps the records kept on one task (targets × events).
	MaxNotifications = 32
	// MaxNotifyError caps a recorded error message, in bytes.
	MaxNotifyError = 256
	// maxNotifyKey caps a key or target ID.
	maxNotifyKey = 128
	// MaxNotifyURL caps a task's notify URL.
	MaxNotifyURL = 512
)

// NotifyTargetTask is the target ID of a task's own notify URL.
const NotifyTargetTask = "task"

// NotifyKey is the idempotency key of the notification of a task reaching
// status on one attempt: "<task ID>-<attempt>-<status>". A receiver sees the
// same key for every redelivery of the same event.
func NotifyKey(taskID int64, attempt int, status Status) string {
	return strconv.FormatInt(taskID, 10) + "-" + strconv.Itoa(attempt) + "-" + string(status)
}

// Notification is the delivery state of one event of a task to one target.
type Notification struct {
	// Key is the idempotency key (NotifyKey).
	Key string `json:"key"`
	// Target is NotifyTargetTask or a cluster webhook's ID.
	Target string `json:"target"`
	// Event is the task status the notification reports.
	Event Status `json:"event"`
	// State is DeliveryPending, DeliveryDelivered or DeliveryFailed.
	State string `json:"state"`
	// Attempts counts the POSTs made so far.
	Attempts int `json:"attempts"`
	// LastError is the last failed attempt's error ("" when none).
	LastError string `json:"last_error,omitempty"`
	// At is when the leader recorded this state.
	At time.Time `json:"at"`
}

// NotifyRecord is one delivery outcome for task TaskID.
type NotifyRecord struct {
	TaskID int64 `json:"task_id,string"`
	Notification
}

// NotifyTarget is a cluster webhook the cluster delivers to: events of
// tasks that ended before Since are never sent to it (enabling a webhook
// does not replay the cluster's history).
type NotifyTarget struct {
	ID    string    `json:"id"`
	Since time.Time `json:"since"`
}

// NotifyDelivered records delivery outcomes and registers webhook targets.
// Applying it is idempotent: a record never goes back from delivered (or
// failed) to pending, attempts never decrease, and a target keeps its first
// Since. Records of tasks that no longer exist are skipped.
type NotifyDelivered struct {
	Deliveries []NotifyRecord `json:"deliveries,omitempty"`
	Targets    []NotifyTarget `json:"targets,omitempty"`
	At         time.Time      `json:"at"`
}

// Type implements Command.
func (*NotifyDelivered) Type() CommandType { return CmdNotifyDelivered }

func validNotification(n *Notification) error {
	switch {
	case n.Key == "" || len(n.Key) > maxNotifyKey:
		return fmt.Errorf("%w: notification key %q", ErrInvalid, n.Key)
	case n.Target == "" || len(n.Target) > maxNotifyKey:
		return fmt.Errorf("%w: notification target %q", ErrInvalid, n.Target)
	case !n.Event.Valid():
		return fmt.Errorf("%w: notification event %q", ErrInvalid, n.Event)
	case n.State != DeliveryPending && n.State != DeliveryDelivered && n.State != DeliveryFailed:
		return fmt.Errorf("%w: notification state %q", ErrInvalid, n.State)
	case n.Attempts < 0 || len(n.LastError) > MaxNotifyError:
		return fmt.Errorf("%w: notification %s: attempts %d, error of %d bytes", ErrInvalid, n.Key, n.Attempts, len(n.LastError))
	}
	return nil
}

func (m *Machine) applyNotifyDelivered(c *NotifyDelivered) Result {
	for i := range c.Deliveries {
		if err := validNotification(&c.Deliveries[i].Notification); err != nil {
			return Result{Err: err}
		}
	}
	for _, t := range c.Targets {
		if t.ID == "" || len(t.ID) > maxNotifyKey {
			return Result{Err: fmt.Errorf("%w: notify target %q", ErrInvalid, t.ID)}
		}
	}
	for _, t := range c.Targets {
		if _, ok := m.notifyTargets[t.ID]; !ok {
			m.notifyTargets[t.ID] = t.Since
		}
	}
	for _, r := range c.Deliveries {
		old, ok := m.tasks[r.TaskID]
		if !ok {
			continue
		}
		if recs, changed := mergeNotification(old.Notifications, r.Notification); changed {
			t := old.clone()
			t.Notifications = recs
			m.putTask(t)
		}
	}
	return Result{}
}

// mergeNotification returns recs with n recorded (a new slice when it
// changed anything: stored slices are never written in place).
func mergeNotification(recs []Notification, n Notification) ([]Notification, bool) {
	for i, o := range recs {
		if o.Key != n.Key || o.Target != n.Target {
			continue
		}
		if o.State == DeliveryDelivered || o.State == DeliveryFailed && n.State != DeliveryDelivered {
			return recs, false // final: a late or repeated outcome changes nothing
		}
		n.Attempts = max(n.Attempts, o.Attempts)
		if o == n {
			return recs, false
		}
		out := append([]Notification(nil), recs...)
		out[i] = n
		return out, true
	}
	if len(recs) >= MaxNotifications {
		return recs, false
	}
	return append(append(make([]Notification, 0, len(recs)+1), recs...), n), true
}

// NotifyTargets returns the registered webhook targets: ID → Since.
func (m *Machine) NotifyTargets() map[string]time.Time {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make(map[string]time.Time, len(m.notifyTargets))
	for k, v := range m.notifyTargets {
		out[k] = v
	}
	return out
}

// TasksAfter returns up to limit tasks with an ID above id, in ascending
// ID order. The returned values must not be modified.
func (m *Machine) TasksAfter(id int64, limit int) []*Task {
	m.mu.RLock()
	defer m.mu.RUnlock()
	i := sort.Search(len(m.order), func(i int) bool { return m.order[i] > id })
	var out []*Task
	for ; i < len(m.order) && (limit <= 0 || len(out) < limit); i++ {
		out = append(out, m.tasks[m.order[i]])
	}
	return out
}

// sortedNotifyTargets returns the targets sorted by ID (snapshots).
func (m *Machine) sortedNotifyTargets() []NotifyTarget {
	out := make([]NotifyTarget, 0, len(m.notifyTargets))
	for id, since := range m.notifyTargets {
		out = append(out, NotifyTarget{ID: id, Since: since})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}
