package cluster

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
)

// TestBadInputChangesNothing sends malformed and impossible requests to a
// real single-replica host and checks each gets a clear 4xx naming the
// problem while the FSM stays exactly as it was.
func TestBadInputChangesNothing(t *testing.T) {
	h := startCluster(t, 1)[0]
	base := h.APIURL()

	// One finished task to try to kill again.
	resp, body := do(t, "POST", base+"/api/submit", `{"command":"true"}`)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("seed submit: %d %s", resp.StatusCode, body)
	}
	var sr api.SubmitResponse
	json.Unmarshal(body, &sr)
	killed := sr.TaskIDs[0]
	killReq, _ := http.NewRequest("POST", base+"/api/kill/"+killed, nil)
	killReq.Header.Set(requestIDHeader, "kill-1")
	for attempt := 0; attempt < 2; attempt++ { // the retry of a committed kill is answered the same
		resp, err := http.DefaultClient.Do(killReq)
		if err != nil || resp.StatusCode != http.StatusAccepted {
			t.Fatalf("kill attempt %d: %v %v", attempt, err, resp)
		}
		resp.Body.Close()
	}

	cases := []struct {
		name, method, path, body string
		status                   int
		want                     string
	}{
		{"malformed json", "POST", "/api/submit", `{"command": "echo"`, 400, "malformed JSON"},
		{"not an object", "POST", "/api/submit", `[1,2]`, 400, "expected"},
		{"empty body", "POST", "/api/submit", ``, 400, "empty request body"},
		{"cores as string", "POST", "/api/submit", `{"command":"x","required_cores":"four"}`, 400, "required_cores"},
		{"memory as string", "POST", "/api/submit", `{"command":"x","required_memory_bytes":"4G"}`, 400, "required_memory_bytes"},
		{"arguments not a list", "POST", "/api/submit", `{"command":"x","arguments":"a b"}`, 400, "arguments"},
		{"negative cores", "POST", "/api/submit", `{"command":"x","required_cores":-2}`, 400, "required_cores"},
		{"absurd memory", "POST", "/api/submit", `{"command":"x","required_memory_bytes":9000000000000000000}`, 400, "required_memory_bytes"},
		{"negative memory", "POST", "/api/submit", `{"command":"x","required_memory_bytes":-1}`, 400, "required_memory_bytes"},
		{"empty command", "POST", "/api/submit", `{"command":"  "}`, 400, "command"},
		{"unknown task type", "POST", "/api/submit", `{"command":"x","task_type":"batch"}`, 400, "task_type"},
		{"unknown target node", "POST", "/api/submit", `{"command":"x","targets":["ghost-7"]}`, 400, "ghost-7"},
		{"bad target syntax", "POST", "/api/submit", `{"command":"x","targets":["a b"]}`, 400, "a b"},
		{"gpus without target", "POST", "/api/submit", `{"command":"x","required_gpus":[[0]]}`, 400, "required_gpus"},
		{"vps without docker", "POST", "/api/submit", `{"task_type":"vps","command":"ssh-ed25519 AAAA","container_name":"NULL"}`, 400, "container_name"},
		{"unknown environment", "POST", "/api/submit", `{"command":"x","container_name":"nosuchenv"}`, 400, "nosuchenv"},
		{"runner reports pending", "POST", "/api/update", `{"task_id": 1, "status": "pending"}`, 400, "pending"},
		{"runner reports unknown status", "POST", "/api/update", `{"task_id": 1, "status": "sleeping"}`, 400, "sleeping"},
		{"unknown task status", "GET", "/api/status/12345", ``, 404, "12345"},
		{"non-numeric task id", "GET", "/api/status/abc", ``, 400, "abc"},
		{"kill unknown task", "POST", "/api/kill/999", ``, 404, "999"},
		{"kill finished task", "POST", "/api/kill/" + killed, ``, 409, "killed"},
		{"bad status filter", "GET", "/api/tasks?status=sleeping", ``, 400, "sleeping"},
		{"bad limit", "GET", "/api/tasks?limit=-3", ``, 400, "limit"},
		{"join without raft", "POST", "/api/cluster/join", `{"id":"x"}`, 400, "raft"},
		{"remove unknown peer", "DELETE", "/api/cluster/peers/nobody", ``, 404, "nobody"},
		{"unknown endpoint", "GET", "/api/nope", ``, 404, "/api/nope"},
	}
	before := h.Machine().AppliedIndex()
	count := h.Machine().Len()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := do(t, tc.method, base+tc.path, tc.body)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, body)
			}
			var e api.ErrorResponse
			if err := json.Unmarshal(body, &e); err != nil || e.Error == "" {
				t.Fatalf("error body is not {\"error\": ...}: %s", body)
			}
			if !strings.Contains(e.Error, tc.want) {
				t.Errorf("error %q does not mention %q", e.Error, tc.want)
			}
		})
	}
	if got := h.Machine().AppliedIndex(); got != before {
		t.Errorf("applied index moved from %d to %d on rejected input", before, got)
	}
	if got := h.Machine().Len(); got != count {
		t.Errorf("task count moved from %d to %d on rejected input", count, got)
	}
}

// TestListPagingAndPrefixes checks /api/tasks paging (newest first, limit,
// after, the more header) and that the unprefixed original paths answer too.
func TestListPagingAndPrefixes(t *testing.T) {
	h := startCluster(t, 1)[0]
	base := h.APIURL()
	var ids []string
	for i := 0; i < 7; i++ {
		resp, body := do(t, "POST", base+"/submit", `{"command":"echo"}`)
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("submit via /submit: %d %s", resp.StatusCode, body)
		}
		var sr api.SubmitResponse
		json.Unmarshal(body, &sr)
		ids = append(ids, sr.TaskIDs...)
	}
	var seen []string
	after := ""
	for page := 0; page < 10; page++ {
		path := "/api/tasks?limit=3"
		if after != "" {
			path += "&after=" + after
		}
		resp, body := do(t, "GET", base+path, nil)
		var tasks []api.Task
		if err := json.Unmarshal(body, &tasks); err != nil {
			t.Fatalf("decode page: %v: %s", err, body)
		}
		for _, tk := range tasks {
			seen = append(seen, formatID(tk.TaskID))
		}
		if resp.Header.Get(api.MoreHeader) != "true" {
			break
		}
		after = resp.Header.Get(api.NextAfterHeader)
	}
	if len(seen) != len(ids) {
		t.Fatalf("paged %d tasks, submitted %d", len(seen), len(ids))
	}
	for i := range ids {
		if seen[i] != ids[len(ids)-1-i] {
			t.Fatalf("page order %v is not newest-first of %v", seen, ids)
		}
	}
	resp, _ := do(t, "GET", base+"/status/"+ids[0], nil)
	if resp.StatusCode != 200 {
		t.Fatalf("/status/{id} without prefix: %d", resp.StatusCode)
	}
	resp, body := do(t, "GET", base+"/metrics", nil)
	if resp.StatusCode != 200 || !strings.Contains(string(body), `hakuriver_tasks{status="pending"} 7`) ||
		!strings.Contains(string(body), "hakuriver_http_requests_total") || !strings.Contains(string(body), "hakuriver_raft_applied_index") {
		t.Fatalf("metrics missing expected series: %s", body)
	}
}

// TestSubmitIdempotentRequestID checks that a retried submit with the same
// request_id returns the first attempt's tasks and creates nothing.
func TestSubmitIdempotentRequestID(t *testing.T) {
	h := startCluster(t, 1)[0]
	var first, second api.SubmitResponse
	_, b1 := do(t, "POST", h.APIURL()+"/api/submit", `{"command":"echo","request_id":"abc-1"}`)
	_, b2 := do(t, "POST", h.APIURL()+"/api/submit", `{"command":"echo","request_id":"abc-1"}`)
	json.Unmarshal(b1, &first)
	json.Unmarshal(b2, &second)
	if len(first.TaskIDs) != 1 || strings.Join(first.TaskIDs, ",") != strings.Join(second.TaskIDs, ",") {
		t.Fatalf("retry returned %v, first %v", second.TaskIDs, first.TaskIDs)
	}
	if n := h.Machine().Len(); n != 1 {
		t.Fatalf("%d tasks after a retried submit, want 1", n)
	}
}
