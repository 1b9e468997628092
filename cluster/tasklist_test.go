package cluster

import (
	"encoding/json"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
)

// TestTaskListTextAndSummaryOnReplicas lists, on a follower of a real
// three-replica cluster, the tasks whose command line contains a text, as
// summaries, page by page.
func TestTaskListTextAndSummaryOnReplicas(t *testing.T) {
	hosts := startCluster(t, 3)
	var leader, follower *Host
	for _, h := range hosts {
		if h.IsLeader() {
			leader = h
		} else {
			follower = h
		}
	}
	var want []string
	for i, args := range [][]string{{"train.py", "--lr", "0.1"}, {"other.py"}, {"train.py", "--lr", "0.2"}, {"train.py", "--lr", "0.3"}} {
		resp, body := do(t, "POST", leader.APIURL()+"/api/submit", api.SubmitRequest{Command: "python", Arguments: args})
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("submit %d: %d %s", i, resp.StatusCode, body)
		}
		var sr api.SubmitResponse
		json.Unmarshal(body, &sr) //nolint:errcheck // checked by the length below
		if len(sr.TaskIDs) != 1 {
			t.Fatalf("submit %d: %s", i, body)
		}
		if args[0] == "train.py" {
			want = append([]string{sr.TaskIDs[0]}, want...)
		}
	}
	waitFor(t, 10*time.Second, func() bool {
		resp, body := do(t, "GET", follower.APIURL()+"/api/tasks", nil)
		var all []json.RawMessage
		return resp.StatusCode == 200 && json.Unmarshal(body, &all) == nil && len(all) == 4
	})
	var got []string
	after := ""
	for page := 0; page < 5; page++ {
		resp, body := do(t, "GET", follower.APIURL()+"/api/tasks?view=summary&limit=2&text="+url.QueryEscape("train.py --lr")+after, nil)
		var rows []api.TaskSummary
		if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &rows) != nil {
			t.Fatalf("page %d: %d %s", page, resp.StatusCode, body)
		}
		for _, r := range rows {
			if r.Command != "python" || r.Arguments[0] != "train.py" || r.Status != "pending" {
				t.Errorf("row %+v", r)
			}
			got = append(got, formatID(r.TaskID))
		}
		if resp.Header.Get(api.MoreHeader) != "true" {
			break
		}
		after = "&after=" + resp.Header.Get(api.NextAfterHeader)
	}
	if len(got) != 3 || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Fatalf("text listing on the follower: %v, want %v", got, want)
	}
}
