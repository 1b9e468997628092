package cluster

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
)

// TestTaskAccessBadInput: forward and cp requests that cannot be served
// get a 4xx naming the problem, before any runner is called, and change
// nothing; a bad session record is refused.
func TestTaskAccessBadInput(t *testing.T) {
	h := startCluster(t, 1)[0]
	base := h.APIURL()
	resp, body := do(t, "POST", base+"/api/submit", `{"command":"true"}`)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("seed submit: %d %s", resp.StatusCode, body)
	}
	var sr api.SubmitResponse
	json.Unmarshal(body, &sr)
	id := sr.TaskIDs[0]
	if resp, body := do(t, "POST", base+"/api/kill/"+id, ""); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("kill: %d %s", resp.StatusCode, body)
	}
	cases := []struct {
		name, method, path, body string
		status                   int
		want                     string
	}{
		{"forward unknown task", "GET", "/api/task/999/forward?port=80", "", 404, "999"},
		{"forward bad id", "GET", "/api/task/abc/forward?port=80", "", 400, "abc"},
		{"forward no port", "GET", "/api/task/" + id + "/forward", "", 400, "port"},
		{"forward port zero", "GET", "/api/task/" + id + "/forward?port=0", "", 400, "port"},
		{"forward port too large", "GET", "/api/task/" + id + "/forward?port=65536", "", 400, "port"},
		{"forward check on a finished task", "GET", "/api/task/" + id + "/forward?port=80&check=1", "", 409, "not running"},
		{"forward without upgrade", "GET", "/api/task/" + id + "/forward?port=80", "", 400, "Upgrade"},
		{"cp without path", "GET", "/api/task/" + id + "/files", "", 400, "path"},
		{"cp path with NUL", "PUT", "/api/task/" + id + "/files?path=a%00b", "x", 400, "path"},
		{"cp from a finished task", "GET", "/api/task/" + id + "/files?path=/tmp", "", 409, "not running"},
		{"cp into a finished task", "PUT", "/api/task/" + id + "/files?path=/tmp", "x", 409, "not running"},
		{"session record bad action", "POST", "/api/audit/sessions", `{"user":"u","action":"exec","target":"t"}`, 400, "action"},
		{"session record no user", "POST", "/api/audit/sessions", `{"action":"forward","target":"t"}`, 400, "user"},
	}
	before := h.Machine().AppliedIndex()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			hdr := http.Header{}
			if strings.HasPrefix(tc.path, "/api/audit/sessions") { // internal: the cluster token
				hdr.Set(api.TokenHeader, testToken)
			}
			resp, body := doHeader(t, tc.method, base+tc.path, hdr, tc.body)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, body)
			}
			var e api.ErrorResponse
			if err := json.Unmarshal(body, &e); err != nil || !strings.Contains(e.Error, tc.want) {
				t.Errorf("error %s does not mention %q", body, tc.want)
			}
		})
	}
	if got := h.Machine().AppliedIndex(); got != before {
		t.Errorf("applied index moved from %d to %d on rejected input", before, got)
	}
}
