package chaos

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hakuriver/hakuriver-ha/fsm"
)

// Kind names a class of anomaly.
type Kind string

// Anomaly kinds the checker detects.
const (
	// LostAck: an acknowledged submit has no task in the final state.
	LostAck Kind = "lost-ack"
	// DuplicateSubmit: one request ID made more than one task.
	DuplicateSubmit Kind = "duplicate-submit"
	// NotFinal: an acknowledged submit's task never reached a final status.
	NotFinal Kind = "not-final"
	// DoubleRun: a task's token appears more than once (it ran twice).
	// HakuRiver retries no lost run by policy, so there is no exception.
	DoubleRun Kind = "double-run"
	// CompletedNoRun: a task ended completed but its token is absent.
	CompletedNoRun Kind = "completed-without-run"
	// NonMonotone: a client read a status that cannot follow the status it
	// read before (or the final status cannot follow the last read).
	NonMonotone Kind = "non-monotone-status"
	// StaleRead: after an acknowledged write, the same client read older
	// data (the task missing, or a lower applied index than the write's).
	StaleRead Kind = "stale-read"
	// MinorityAck: a write sent to a member cut off in a minority was
	// acknowledged while the partition lasted.
	MinorityAck Kind = "minority-ack"
	// KillLost: an acknowledged kill's task did not end killed.
	KillLost Kind = "kill-lost"
	// Divergence: replicas hold different state after quiescence.
	Divergence Kind = "replica-divergence"
)

// AllKinds lists every anomaly kind, for summaries.
func AllKinds() []Kind {
	return []Kind{LostAck, DuplicateSubmit, NotFinal, DoubleRun, CompletedNoRun, NonMonotone, StaleRead, MinorityAck, KillLost, Divergence}
}

// Anomaly is one violation found in a history.
type Anomaly struct {
	Kind   Kind
	Detail string
}

func (a Anomaly) String() string { return string(a.Kind) + ": " + a.Detail }

// Isolation is a window during which Member was cut off from a majority
// of the replicas: no write it answered ok may have been invoked and
// completed inside the window.
type Isolation struct {
	Member   string
	From, To time.Time
}

// TaskState is what one replica holds about one task.
type TaskState struct {
	RequestID     string
	Status        string
	KillRequestID string
}

// ReplicaState is one replica's view after quiescence.
type ReplicaState struct {
	Applied uint64
	// Tasks by task ID.
	Tasks map[string]TaskState
	// Digest summarises the replica's full state listing (e.g. a hash of
	// its canonical JSON); equal state gives an equal digest.
	Digest string
}

// Final is the state after healing and quiescence.
type Final struct {
	// Replicas by node ID; the first in Order is the reference.
	Replicas map[string]ReplicaState
	Order    []string
	// Tokens counts each token in the token file.
	Tokens map[string]int
}

// Check verifies a history against the final state and returns every
// anomaly found (none: the run was correct as far as the checker sees).
func Check(ops []Op, isolations []Isolation, final Final) []Anomaly {
	var out []Anomaly
	add := func(k Kind, format string, args ...any) {
		out = append(out, Anomaly{Kind: k, Detail: fmt.Sprintf(format, args...)})
	}
	slices.SortStableFunc(ops, func(a, b Op) int { return a.Invoke.Compare(b.Invoke) })

	// Replica agreement first: the rest is checked against the reference.
	var ref ReplicaState
	if len(final.Order) > 0 {
		ref = final.Replicas[final.Order[0]]
		for _, id := range final.Order[1:] {
			r := final.Replicas[id]
			if r.Applied != ref.Applied || r.Digest != ref.Digest {
				add(Divergence, "%s (applied %d, digest %.12s) differs from %s (applied %d, digest %.12s)%s",
					id, r.Applied, r.Digest, final.Order[0], ref.Applied, ref.Digest, diffTasks(final.Replicas[final.Order[0]].Tasks, r.Tasks))
			}
		}
	}
	byRequest := map[string][]string{}
	for id, t := range ref.Tasks {
		if t.RequestID != "" {
			byRequest[t.RequestID] = append(byRequest[t.RequestID], id)
		}
	}
	for rid, ids := range byRequest {
		if len(ids) > 1 {
			slices.Sort(ids)
			add(DuplicateSubmit, "request %s made tasks %s", rid, strings.Join(ids, ","))
		}
	}

	taskToken := map[string]string{}
	for _, op := range ops {
		if op.Kind == OpSubmit && op.Token != "" {
			for _, id := range byRequest[op.RequestID] {
				taskToken[id] = op.Token
			}
		}
		if op.Kind != OpSubmit || op.Result != Ok {
			continue
		}
		ids := byRequest[op.RequestID]
		t, ok := ref.Tasks[op.TaskID]
		switch {
		case !ok && len(ids) == 0:
			add(LostAck, "client %d: submit %s acknowledged as task %s at %s is not in the final state", op.Client, op.RequestID, op.TaskID, op.Complete.Format(time.RFC3339Nano))
			continue
		case !ok:
			add(LostAck, "client %d: submit %s acknowledged as task %s, but the final state holds it as %s", op.Client, op.RequestID, op.TaskID, strings.Join(ids, ","))
			continue
		case t.RequestID != op.RequestID:
			add(LostAck, "client %d: task %s acknowledged for request %s carries request %q", op.Client, op.TaskID, op.RequestID, t.RequestID)
		}
		if !fsm.Status(t.Status).Final() {
			add(NotFinal, "task %s (request %s) is %s after quiescence", op.TaskID, op.RequestID, t.Status)
		}
	}

	for id, tok := range taskToken {
		n := final.Tokens[tok]
		if n > 1 {
			add(DoubleRun, "task %s: token %s appears %d times", id, tok, n)
		}
		if ref.Tasks[id].Status == string(fsm.StatusCompleted) && n == 0 {
			add(CompletedNoRun, "task %s completed but its token %s was never written", id, tok)
		}
	}

	for _, op := range ops {
		if op.Kind == OpKill && op.Result == Ok {
			t, ok := ref.Tasks[op.TaskID]
			if !ok || (t.Status != string(fsm.StatusKilled) && t.KillRequestID != op.RequestID) {
				add(KillLost, "client %d: kill %s of task %s acknowledged, final status %q", op.Client, op.RequestID, op.TaskID, t.Status)
			}
		}
	}

	out = append(out, checkClients(ops, ref)...)

	for _, iso := range isolations {
		for _, op := range ops {
			if op.Write() && op.Result == Ok && op.Member == iso.Member && !op.Invoke.Before(iso.From) && !op.Complete.After(iso.To) {
				add(MinorityAck, "client %d: %s %s acknowledged by %s inside its isolation %s..%s", op.Client, op.Kind, op.RequestID, op.Member,
					iso.From.Format("15:04:05.000"), iso.To.Format("15:04:05.000"))
			}
		}
	}
	slices.SortStableFunc(out, func(a, b Anomaly) int { return strings.Compare(string(a.Kind), string(b.Kind)) })
	return out
}

// checkClients checks each client's own sequence: reads never go back
// along the state machine and never miss an acknowledged write.
func checkClients(ops []Op, ref ReplicaState) []Anomaly {
	var out []Anomaly
	type seen struct {
		status string
		at     time.Time
	}
	last := map[int]map[string]seen{} // client -> task -> last status read
	wrote := map[int]map[string]Op{}  // client -> task -> last ok write
	var maxIndex = map[int]Op{}       // client -> ok write with the highest index
	for _, op := range sortByComplete(ops) {
		if op.Result != Ok {
			continue
		}
		c := op.Client
		if last[c] == nil {
			last[c], wrote[c] = map[string]seen{}, map[string]Op{}
		}
		if op.Write() {
			wrote[c][op.TaskID] = op
			if op.Index > maxIndex[c].Index {
				maxIndex[c] = op
			}
			continue
		}
		if w, ok := wrote[c][op.TaskID]; ok && w.Complete.Before(op.Invoke) && op.NotFound {
			out = append(out, Anomaly{StaleRead, fmt.Sprintf("client %d: read of task %s on %s at %s found nothing after %s %s was acknowledged at %s",
				c, op.TaskID, op.Member, op.Invoke.Format("15:04:05.000"), w.Kind, w.RequestID, w.Complete.Format("15:04:05.000"))})
		}
		if w := maxIndex[c]; op.Index > 0 && w.Index > op.Index && w.Complete.Before(op.Invoke) {
			out = append(out, Anomaly{StaleRead, fmt.Sprintf("client %d: read on %s at applied index %d after its %s %s was acknowledged at index %d",
				c, op.Member, op.Index, w.Kind, w.RequestID, w.Index)})
		}
		if op.NotFound || op.Status == "" {
			continue
		}
		if p, ok := last[c][op.TaskID]; ok && p.status != op.Status && !Reachable(p.status, op.Status) {
			out = append(out, Anomaly{NonMonotone, fmt.Sprintf("client %d: task %s read %s at %s, then %s at %s",
				c, op.TaskID, p.status, p.at.Format("15:04:05.000"), op.Status, op.Invoke.Format("15:04:05.000"))})
		}
		last[c][op.TaskID] = seen{op.Status, op.Invoke}
	}
	for c, tasks := range last {
		for id, p := range tasks {
			t, ok := ref.Tasks[id]
			if ok && t.Status != p.status && !Reachable(p.status, t.Status) {
				out = append(out, Anomaly{NonMonotone, fmt.Sprintf("client %d: task %s last read %s, final status %s", c, id, p.status, t.Status)})
			}
		}
	}
	return out
}

// sortByComplete returns ops ordered by completion time (a client's ops
// are sequential, so this is each client's own order).
func sortByComplete(ops []Op) []Op {
	out := slices.Clone(ops)
	slices.SortStableFunc(out, func(a, b Op) int { return a.Complete.Compare(b.Complete) })
	return out
}

// Reachable reports whether a task in status from can end up in status to
// through one or more moves fsm.Status.CanMoveTo allows.
func Reachable(from, to string) bool {
	seen := map[fsm.Status]bool{}
	frontier := []fsm.Status{fsm.Status(from)}
	for len(frontier) > 0 {
		s := frontier[0]
		frontier = frontier[1:]
		for _, t := range fsm.AllStatuses() {
			if s.CanMoveTo(t) && !seen[t] {
				if t == fsm.Status(to) {
					return true
				}
				seen[t] = true
				frontier = append(frontier, t)
			}
		}
	}
	return false
}

// diffTasks names up to three tasks on which two replicas differ.
func diffTasks(a, b map[string]TaskState) string {
	var diffs []string
	for id, ta := range a {
		if tb, ok := b[id]; !ok || tb != ta {
			diffs = append(diffs, fmt.Sprintf("%s: %+v vs %+v", id, ta, tb))
		}
	}
	for id, tb := range b {
		if _, ok := a[id]; !ok {
			diffs = append(diffs, fmt.Sprintf("%s: absent vs %+v", id, tb))
		}
	}
	slices.Sort(diffs)
	if len(diffs) > 3 {
		diffs = append(diffs[:3], fmt.Sprintf("and %d more", len(diffs)-3))
	}
	if len(diffs) == 0 {
		return ""
	}
	return " (" + strings.Join(diffs, "; ") + ")"
}

// Summary counts anomalies by kind.
func Summary(anoms []Anomaly) map[Kind]int {
	out := map[Kind]int{}
	for _, a := range anoms {
		out[a.Kind]++
	}
	return out
}

// Losses counts the acknowledged submits whose task ended lost: ran, its
// token written once (a run the hosts reported lost, e.g. on a runner cut
// off from them while its task went on: a reported loss, not a double
// execution), or never ran. Neither is an anomaly: HakuRiver reports a
// run it cannot vouch for as lost and does not run it again.
func Losses(ops []Op, final Final) (ran, notRun int) {
	if len(final.Order) == 0 {
		return 0, 0
	}
	ref := final.Replicas[final.Order[0]]
	for _, op := range ops {
		if op.Kind != OpSubmit || op.Result != Ok {
			continue
		}
		if t, ok := ref.Tasks[op.TaskID]; ok && t.Status == string(fsm.StatusLost) {
			if final.Tokens[op.Token] > 0 {
				ran++
			} else {
				notRun++
			}
		}
	}
	return ran, notRun
}
