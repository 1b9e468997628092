package httpapi

import (
	"bytes"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/go-chi/chi/v5"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/fsm"
	"github.com/hakuriver/hakuriver-ha/scheduler"
)

// maxDrainReason bounds a drain's reason (bytes).
const maxDrainReason = 200

// drainReason reads the optional body of a drain, {"reason": "..."}: one
// line of at most maxDrainReason bytes of printable text. Undrain takes no
// body.
func drainReason(w http.ResponseWriter, r *http.Request, drain bool) (string, error) {
	if !drain {
		return "", noBody(r)
	}
	b, err := readBody(w, r, 1<<10)
	if err != nil {
		return "", err
	}
	switch string(bytes.TrimSpace(b)) {
	case "", "{}", "null":
		return "", nil
	}
	var req api.DrainRequest
	if err := decodeStrict(b, &req); err != nil {
		return "", err
	}
	reason := strings.TrimSpace(req.Reason)
	if len(reason) > maxDrainReason {
		return "", badRequest("reason: longer than %d bytes", maxDrainReason)
	}
	for _, c := range reason {
		if !unicode.IsPrint(c) {
			return "", badRequest("reason: only printable characters on one line (found %q)", c)
		}
	}
	return reason, nil
}

// Drain serves POST /api/nodes/{name}/drain and /undrain: a drained
// node takes no new placements; its running work finishes.
func (a *API) Drain(drain bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		name := chi.URLParam(r, "name")
		reason, err := drainReason(w, r, drain)
		if err != nil {
			writeError(w, err)
			return
		}
		if _, ok := a.d.Nodes.Node(name); !ok {
			writeError(w, notFound("node %q not registered", name))
			return
		}
		ctx, cancel := ApplyContext(r)
		defer cancel()
		if _, err := a.d.Proposer.Propose(ctx, &fsm.SetNodeDrain{Hostname: name, Drained: drain, Reason: reason,
			By: principal(r).Name, At: a.now().UTC()}); err != nil {
			writeError(w, err)
			return
		}
		a.d.Proposer.KickScheduler()
		verb := "drained: no new placements"
		if !drain {
			verb = "undrained: accepting placements"
		}
		writeJSON(w, http.StatusOK, api.MessageResponse{Message: fmt.Sprintf("Node %s %s.", name, verb)})
	}
}

// Queue serves GET /api/queue: pending tasks in queue order with the
// reason each waits, computed by the scheduler from committed state.
func (a *API) Queue(w http.ResponseWriter, r *http.Request) {
	active := a.d.Tasks.Active()
	res := scheduler.Plan(scheduler.View{Nodes: a.d.Nodes.Nodes(), Active: active, Lookup: a.d.Tasks.Task, Quotas: a.quotas(), Now: time.Now()})
	reasons := map[int64]string{}
	for _, d := range res.Waiting {
		reasons[d.TaskID] = d.Reason
	}
	for _, d := range res.Failed {
		reasons[d.TaskID] = "will fail: " + d.Reason
	}
	for _, p := range res.Placements {
		reasons[p.TaskID] = "being placed on " + p.Node
	}
	var pending []*fsm.Task
	for _, t := range active {
		if t.Status == fsm.StatusPending {
			pending = append(pending, t)
		}
	}
	scheduler.Order(pending)
	// ?limit= keeps the head of a long queue (the dashboard shows the
	// first page and the length).
	if l := r.URL.Query().Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 100000 {
			writeError(w, badRequest("limit %q: must be an integer between 1 and 100000", l))
			return
		}
		w.Header().Set(api.QueueLengthHeader, strconv.Itoa(len(pending)))
		if len(pending) > n {
			pending = pending[:n]
			w.Header().Set(api.MoreHeader, "true")
		}
	}
	out := make([]api.QueueEntry, 0, len(pending))
	for _, t := range pending {
		out = append(out, api.QueueEntry{
			TaskID: strconv.FormatInt(t.TaskID, 10), Priority: t.Priority, Command: t.Command,
			TargetNode: t.TargetNode, Reason: reasons[t.TaskID], SubmittedAt: t.SubmittedAt.Format(time.RFC3339),
		})
	}
	writeJSON(w, http.StatusOK, out)
}

// Nodes serves GET /api/nodes: every runner node as clients see it.
func (a *API) Nodes(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, a.d.NodeViews.NodeViews())
}

// Health serves GET /api/health: the recent health samples, of one node
// when ?hostname= names it.
func (a *API) Health(w http.ResponseWriter, r *http.Request) {
	name := r.URL.Query().Get("hostname")
	if name != "" {
		if _, ok := a.d.Nodes.Node(name); !ok {
			writeError(w, notFound("node %q not registered", name))
			return
		}
	}
	out := a.d.NodeViews.Health()
	if out.Nodes == nil {
		out.Nodes = [][]api.NodeHealth{}
	}
	if out.Aggregate == nil {
		out.Aggregate = []api.HealthAggregate{}
	}
	if name != "" {
		for i, sample := range out.Nodes {
			var nodes []api.NodeHealth
			for _, n := range sample {
				if n.Hostname == name {
					nodes = append(nodes, n)
				}
			}
			out.Nodes[i] = nodes
		}
	}
	writeJSON(w, http.StatusOK, out)
}
