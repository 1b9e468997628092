package httpapi

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/fsm"
)

// UsageReader sums the committed tasks' accounting (*fsm.Machine is one).
type UsageReader interface {
	UsageReport(q fsm.UsageQuery) ([]fsm.UsageRow, error)
}

// maxUsageYear bounds the dates a usage query takes.
const maxUsageYear = 9999

// Usage serves GET /api/usage?by=user|node|day&since=&until=&user=: the
// accounting of the tasks that ended in [since, until) (a running task
// counts up to now), one row per group, and the total. Every caller with
// the viewer role sees the whole cluster's usage, as the task list shows
// every task's owner, node, resources and times to them already; user=NAME
// limits the rows to one account.
func (a *API) Usage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	for k := range q {
		switch k {
		case "by", "since", "until", "user", "consistent":
		default:
			writeError(w, badRequest("%s: unknown parameter (have by, since, until, user)", k))
			return
		}
	}
	uq := fsm.UsageQuery{By: q.Get("by"), Owner: q.Get("user"), Now: a.now().UTC()}
	if uq.By == "total" {
		uq.By = fsm.UsageByTotal
	}
	if !fsm.ValidUsageBy(uq.By) {
		writeError(w, badRequest("by %q: must be user, node, day or total", q.Get("by")))
		return
	}
	if uq.Owner != "" && !fsm.NameRE().MatchString(uq.Owner) {
		writeError(w, badRequest("user %q: not a user name", uq.Owner))
		return
	}
	var err error
	if uq.Since, err = usageTime("since", q.Get("since")); err != nil {
		writeError(w, err)
		return
	}
	if uq.Until, err = usageTime("until", q.Get("until")); err != nil {
		writeError(w, err)
		return
	}
	if !uq.Since.IsZero() && !uq.Until.IsZero() && !uq.Until.After(uq.Since) {
		writeError(w, badRequest("until %s: must be after since %s", q.Get("until"), q.Get("since")))
		return
	}
	if a.d.Usage == nil {
		writeError(w, errors.New("usage: this replica has no accounting view"))
		return
	}
	rows, err := a.d.Usage.UsageReport(uq)
	if err != nil {
		writeError(w, err)
		return
	}
	out := api.UsageResponse{By: uq.By, User: uq.Owner, GeneratedAt: uq.Now, Rows: rows, Total: api.SumUsage(rows)}
	if !uq.Since.IsZero() {
		out.Since = &uq.Since
	}
	if !uq.Until.IsZero() {
		out.Until = &uq.Until
	}
	writeJSON(w, http.StatusOK, out)
}

// usageTime parses a since/until parameter: an RFC 3339 time or a
// YYYY-MM-DD date (its midnight, UTC); "" is the zero time.
func usageTime(field, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	layout := time.RFC3339Nano
	if !strings.Contains(s, "T") {
		layout = time.DateOnly
	}
	t, err := time.Parse(layout, s)
	if err != nil || t.Year() < 1970 || t.Year() > maxUsageYear {
		return time.Time{}, badRequest("%s %q: not a time (RFC 3339, e.g. 2026-12-01T00:00:00Z, or a date YYYY-MM-DD)", field, s)
	}
	return t.UTC(), nil
}
