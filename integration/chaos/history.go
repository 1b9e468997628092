// Package chaos records the history of client operations against a
// HakuRiver cluster under faults and checks it afterwards: every
// acknowledged submit exists once and ends, no task runs twice, status
// reads move forward along the task state machine, a client reads its own
// writes, no write is acknowledged by a replica cut off in a minority, and
// the replicas hold the same state once the cluster is quiet.
//
// The history and the checker are plain Go (no build tag) so that the
// checker is unit-tested with hand-made histories; the workload and fault
// injection that run against real processes live in the integration tests
// and integration/cmd/chaos.
package chaos

import (
	"slices"
	"sync"
	"time"
)

// OpKind is what a client asked for.
type OpKind string

// Operation kinds.
const (
	// OpSubmit is POST /api/submit with a request ID; the task appends
	// Op.Token to the token file when it runs.
	OpSubmit OpKind = "submit"
	// OpKill is POST /api/kill/{id} with a request ID.
	OpKill OpKind = "kill"
	// OpRead is GET /api/status/{id}.
	OpRead OpKind = "read"
)

// Result is how an operation ended, as the client saw it (Jepsen's
// ok/fail/info).
type Result string

// Results.
const (
	// Ok: acknowledged (a write took effect, a read answered).
	Ok Result = "ok"
	// Fail: definitely did not take effect (a 4xx/5xx answer that says so).
	Fail Result = "fail"
	// Info: unknown (timeout, reset, 503 after forwarding): it may or may
	// not have taken effect.
	Info Result = "info"
)

// Op is one client operation with its invoke and complete times.
type Op struct {
	// Client numbers the client; its operations are sequential.
	Client int
	Kind   OpKind
	// Member is the replica (node ID) the client sent the request to.
	Member string
	// RequestID is the idempotency key of a write.
	RequestID string
	// TaskID is the task submitted (from the answer), killed or read.
	TaskID string
	// Token is what a submitted task appends to the token file.
	Token            string
	Invoke, Complete time.Time
	Result           Result
	// Status is the status a read returned; NotFound is set when the read
	// answered 404.
	Status   string
	NotFound bool
	// Index is the applied index the answer carried
	// (X-Hakuriver-Applied-Index on a write; on a read the replica's
	// applied index when the client asked for it, else 0).
	Index uint64
	// Err describes a fail or info result.
	Err string
}

// Write reports whether the op changes the cluster state.
func (o Op) Write() bool { return o.Kind == OpSubmit || o.Kind == OpKill }

// History collects operations from concurrent clients.
type History struct {
	mu  sync.Mutex
	ops []Op
}

// Add records a completed operation.
func (h *History) Add(op Op) {
	h.mu.Lock()
	h.ops = append(h.ops, op)
	h.mu.Unlock()
}

// Ops returns a copy of the operations in invoke order.
func (h *History) Ops() []Op {
	h.mu.Lock()
	out := slices.Clone(h.ops)
	h.mu.Unlock()
	slices.SortStableFunc(out, func(a, b Op) int { return a.Invoke.Compare(b.Invoke) })
	return out
}

// Count returns the number of operations by kind and result.
func (h *History) Count() map[OpKind]map[Result]int {
	out := map[OpKind]map[Result]int{}
	for _, op := range h.Ops() {
		if out[op.Kind] == nil {
			out[op.Kind] = map[Result]int{}
		}
		out[op.Kind][op.Result]++
	}
	return out
}
