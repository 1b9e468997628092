package cluster

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/fsm"
)

// TestRetryFieldsBadInput sends submits with bad retry fields to a real
// single-replica host: each gets HTTP 400 naming the field, and nothing is
// committed. A good one is accepted and the task carries its policy.
func TestRetryFieldsBadInput(t *testing.T) {
	h := startCluster(t, 1)[0]
	base := h.APIURL()
	cases := []struct{ name, body, want string }{
		{"negative retries", `{"command":"x","retries":-1}`, "retries"},
		{"too many retries", `{"command":"x","retries":101}`, "retries"},
		{"retries as string", `{"command":"x","retries":"3"}`, "retries"},
		{"delay not a duration", `{"command":"x","retries":1,"retry_delay":"soon"}`, "retry_delay"},
		{"delay as number", `{"command":"x","retries":1,"retry_delay":30}`, "retry_delay"},
		{"negative delay", `{"command":"x","retries":1,"retry_delay":"-5s"}`, "retry_delay"},
		{"delay over 24h", `{"command":"x","retries":1,"retry_delay":"25h"}`, "retry_delay"},
		{"delay without retries", `{"command":"x","retry_delay":"5s"}`, "retry_delay"},
		{"unknown retry_on", `{"command":"x","retries":1,"retry_on":["exit","signal"]}`, "retry_on"},
		{"retry_on not a list", `{"command":"x","retries":1,"retry_on":"exit"}`, "retry_on"},
		{"retry_on without retries", `{"command":"x","retry_on":["exit"]}`, "retry_on"},
		{"vps with retries", `{"task_type":"vps","command":"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ2Y3cV2mHn3OUHHX3vZbo2vVjDp6nP0Wq+g3qT2s4d5 a@b","retries":1}`, "retries"},
	}
	before := h.Machine().AppliedIndex()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := do(t, "POST", base+"/api/submit", tc.body)
			if resp.StatusCode != http.StatusBadRequest {
				t.Fatalf("HTTP %d, want HTTP 400: %s", resp.StatusCode, body)
			}
			var e api.ErrorResponse
			if err := json.Unmarshal(body, &e); err != nil || !strings.Contains(e.Error, tc.want) {
				t.Fatalf("error %s does not name %q", body, tc.want)
			}
		})
	}
	if got := h.Machine().AppliedIndex(); got != before {
		t.Fatalf("applied index moved from %d to %d on rejected input", before, got)
	}
	resp, body := do(t, "POST", base+"/api/submit", `{"command":"x","retries":2,"retry_delay":"1m30s","retry_on":["oom","exit","oom"]}`)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("good submit: HTTP %d %s", resp.StatusCode, body)
	}
	var sr api.SubmitResponse
	if err := json.Unmarshal(body, &sr); err != nil || len(sr.TaskIDs) != 1 {
		t.Fatalf("good submit answer: %s", body)
	}
	id, _ := strconv.ParseInt(sr.TaskIDs[0], 10, 64)
	tk, ok := h.Machine().Task(id)
	if !ok || tk.Retries != 2 || tk.RetryDelayMS != 90000 || fsm.RetryOnString(tk.RetryOn) != "exit,oom" || tk.CurrentAttempt() != 1 {
		t.Fatalf("stored task: %+v", tk)
	}
}
