package api

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/hakuriver/hakuriver-ha/fsm"
)

// UsageResponse answers GET /api/usage?by=&since=&until=&user=: the
// accounting of the tasks that ended in [Since, Until) (a task still
// running counts up to GeneratedAt), one row per group, and their total.
type UsageResponse struct {
	// By is the grouping: "user", "node", "day" or "" (the total only).
	By    string     `json:"by"`
	Since *time.Time `json:"since,omitempty"`
	Until *time.Time `json:"until,omitempty"`
	// User is the account the rows are limited to ("" for all).
	User        string         `json:"user,omitempty"`
	GeneratedAt time.Time      `json:"generated_at"`
	Rows        []fsm.UsageRow `json:"rows"`
	Total       fsm.UsageRow   `json:"total"`
}

// SumUsage returns the total of rows, keyed "total".
func SumUsage(rows []fsm.UsageRow) fsm.UsageRow {
	t := fsm.UsageRow{Key: "total"}
	for _, r := range rows {
		t.Tasks += r.Tasks
		t.Completed += r.Completed
		t.Failed += r.Failed
		t.Killed += r.Killed
		t.Running += r.Running
		t.ElapsedHours += r.ElapsedHours
		t.CoreHours += r.CoreHours
		t.GPUHours += r.GPUHours
		t.CPUHours += r.CPUHours
		t.MaxPeakMemoryBytes = max(t.MaxPeakMemoryBytes, r.MaxPeakMemoryBytes)
	}
	return t
}

// UsageQuery is what Client.Usage asks: by "user", "node", "day" or ""
// (total), since and until as RFC 3339 times or YYYY-MM-DD dates (UTC),
// user to limit to one account; "" leaves a parameter out.
type UsageQuery struct {
	By, Since, Until, User string
}

// Usage reads the accounting of the cluster's tasks (GET /api/usage).
func (c *Client) Usage(ctx context.Context, q UsageQuery) (UsageResponse, error) {
	v := url.Values{}
	for _, kv := range [][2]string{{"by", q.By}, {"since", q.Since}, {"until", q.Until}, {"user", q.User}} {
		if kv[1] != "" {
			v.Set(kv[0], kv[1])
		}
	}
	path := "/api/usage"
	if len(v) > 0 {
		path += "?" + v.Encode()
	}
	var out UsageResponse
	if _, err := c.Do(ctx, http.MethodGet, path, nil, &out); err != nil {
		return UsageResponse{}, fmt.Errorf("read usage: %w", err)
	}
	return out, nil
}
