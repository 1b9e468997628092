package cluster

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
)

// fuzzRoute is one write endpoint FuzzWriteBodies sends bodies to; "{p}"
// in path is replaced by the fuzzed path parameter. internal routes are
// called with the cluster token, the others with an admin's API token, so
// that a body reaches the deepest checks.
type fuzzRoute struct {
	method, path string
	internal     bool
}

// fuzzRoutes are the API's write endpoints that act on the replicated
// state only. Left out: the membership calls (/cluster/join,
// /cluster/peers, /cluster/leadership-transfer), whose accepted bodies
// would dismantle the one-replica cluster under test, and the calls that
// act on Docker or probe addresses (/docker/host/*, /docker/create_tar,
// POST /doctor), which change no replicated state.
func fuzzRoutes() []fuzzRoute {
	return []fuzzRoute{
		{"POST", "/api/submit", false},
		{"POST", "/api/nodes/{p}/drain", false},
		{"POST", "/api/nodes/{p}/undrain", false},
		{"POST", "/api/kill/{p}", false},
		{"POST", "/api/command/{p}/pause", false},
		{"POST", "/api/register", true},
		{"PUT", "/api/heartbeat/{p}", true},
		{"POST", "/api/update", true},
		{"POST", "/api/updates", true},
		{"POST", "/api/docker/internal/environments", true},
		{"POST", "/api/auth/bootstrap", true},
		{"POST", "/api/auth/login", false},
		{"POST", "/api/auth/logout", false},
		{"POST", "/api/users", false},
		{"PATCH", "/api/users/{p}", false},
		{"DELETE", "/api/users/{p}", false},
		{"POST", "/api/groups", false},
		{"PATCH", "/api/groups/{p}", false},
		{"DELETE", "/api/groups/{p}", false},
		{"POST", "/api/tokens", false},
		{"DELETE", "/api/tokens/{p}", false},
	}
}

// fuzzAdmin is the account FuzzWriteBodies acts as; it is never the
// subject of a fuzzed call, so that every call stays an admin's.
const fuzzAdmin = "root_admin"

// fuzzCall sends one request and returns its status and body.
func fuzzCall(t testing.TB, method, url string, hdr http.Header, body []byte) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatalf("build %s %s: %v", method, url, err)
	}
	req.Header = hdr
	// A fresh connection each call: a POST on a kept-alive connection the
	// server has just closed (after a refused body it did not read) fails
	// with EOF and Go does not replay it.
	req.Close = true
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read the answer: %v", method, url, err)
	}
	return resp.StatusCode, b
}

// FuzzWriteBodies sends fuzzed bodies and path parameters to every write
// endpoint of a real one-replica cluster (Raft, boltdb, the real handlers
// and auth). No answer may be a 5xx; a refusal is a 4xx with an
// {"error": ...} body and changes nothing: the applied index does not
// move. The leader's own loops (scheduling, liveness, membership) are
// stopped after startup, so that every entry in the log comes from a
// fuzzed request, and no fuzzed runner URL is ever dialled.
func FuzzWriteBodies(f *testing.F) {
	h := startCluster(f, 1)[0]
	base := h.APIURL()
	h.currentLeader().stop()

	internal := http.Header{api.TokenHeader: {testToken}}
	st, body := fuzzCall(f, "POST", base+"/api/auth/bootstrap", internal.Clone(), []byte(`{"user":"`+fuzzAdmin+`"}`))
	var boot api.TokenResponse
	if err := json.Unmarshal(body, &boot); st != http.StatusCreated || err != nil || boot.Token == "" {
		f.Fatalf("bootstrap: %d %s", st, body)
	}
	admin := http.Header{"Authorization": {"Bearer " + boot.Token}}
	adminTokenID := ""
	if st, body := fuzzCall(f, "GET", base+"/api/tokens", admin.Clone(), nil); st == http.StatusOK {
		var toks []api.TokenInfo
		if err := json.Unmarshal(body, &toks); err == nil && len(toks) == 1 {
			adminTokenID = toks[0].ID
		}
	}
	if adminTokenID == "" {
		f.Fatal("the admin's token ID is not listed")
	}
	setup := []struct {
		method, path string
		hdr          http.Header
		body         string
	}{
		{"POST", "/api/groups", admin, `{"name":"ml","quota":{"running_tasks":4}}`},
		{"POST", "/api/users", admin, `{"name":"alice","role":"user","groups":["ml"]}`},
		{"POST", "/api/register", internal, `{"hostname":"n1","total_cores":4,"total_ram_bytes":8000000000,"runner_url":"http://127.0.0.1:1"}`},
		{"POST", "/api/submit", admin, `{"command":"sleep","arguments":["60"]}`},
	}
	var taskID string
	for _, s := range setup {
		st, body := fuzzCall(f, s.method, base+s.path, s.hdr.Clone(), []byte(s.body))
		if st/100 != 2 {
			f.Fatalf("setup %s %s: %d %s", s.method, s.path, st, body)
		}
		var sr api.SubmitResponse
		if json.Unmarshal(body, &sr) == nil && len(sr.TaskIDs) > 0 {
			taskID = sr.TaskIDs[0]
		}
	}

	seeds := map[string][]string{
		"/api/submit": {`{"command":"echo","arguments":["hi"],"required_cores":1,"targets":["n1"]}`,
			`{"command":"x","array":"0-3%2","required_memory_bytes":1000}`, `{"task_type":"vps","command":"ssh-ed25519 AAAA"}`,
			`{"command":"x","after":["` + taskID + `"]}`, `{"command":"x","targets":["n1:0"],"required_gpus":[[0]]}`,
			`{"command":"x","env_vars":{"A":"1"},"additional_mounts":["/a:/b"]}`, `{"command":"x","required_cores":-1}`, `{"command":"x","command":"y"}`},
		"/api/register": {`{"hostname":"n2","total_cores":2,"total_ram_bytes":1,"runner_url":"http://127.0.0.1:1","numa_topology":{"0":{"cores":[0,1]}}}`,
			`{"hostname":"bad host","total_cores":1,"runner_url":"http://x"}`, `{"hostname":"n3","total_cores":1,"runner_url":"relative"}`},
		"/api/heartbeat/{p}": {`{"running_tasks":[],"cpu_percent":1.5}`, `{"running_tasks":[` + taskID + `],"killed_tasks":[{"task_id":` + taskID + `,"reason":"oom"}]}`},
		"/api/update": {`{"task_id":` + taskID + `,"status":"running"}`, `{"task_id":` + taskID + `,"status":"completed","exit_code":0}`,
			`{"task_id":1,"status":"pending"}`},
		"/api/updates": {`{"updates":[{"task_id":` + taskID + `,"status":"running"},{"task_id":7,"status":"completed","exit_code":0}]}`,
			`{"updates":[{"task_id":` + taskID + `,"status":"running"},{"task_id":` + taskID + `,"status":"failed"}]}`, `{"updates":[]}`, `{}`},
		"/api/docker/internal/environments": {`{"name":"torch","replica":"h1"}`, `{"name":"torch","deleted":true}`,
			`{"name":"x","tarball":{"version":1,"sha256":"00"}}`, `{"name":""}`},
		"/api/auth/bootstrap": {`{"user":"again"}`},
		"/api/auth/login":     {`{"token":"nope"}`, `{}`},
		"/api/users":          {`{"name":"bob","role":"viewer","ssh_keys":["ssh-ed25519 AAAA"]}`, `{"name":"bob","role":"god"}`, `{"name":"","role":"user"}`},
		"/api/users/{p}":      {`{"role":"operator"}`, `{"groups":["nope"]}`, `{"quota":{"running_tasks":-1}}`, ``},
		"/api/groups":         {`{"name":"g2","policy":{"privileged":true}}`, `{"name":"ml"}`},
		"/api/groups/{p}":     {`{"quota":{"running_tasks":2}}`, ``},
		"/api/tokens":         {`{"user":"alice","name":"ci","ttl":"1h"}`, `{"ttl":"-1h"}`, `{"user":"ghost"}`},
	}
	params := []string{"n1", taskID, "alice", "ml", "ghost", "", "..", "a/b", "%00", "-1", "99999999999999999999"}
	routes := fuzzRoutes()
	for i, r := range routes {
		bodies := append([]string{"", "{}", "null", "[]", `{"x":1}`, `{"a":1,"a":2}`}, seeds[r.path]...)
		for j, b := range bodies {
			f.Add(uint8(i), params[j%len(params)], []byte(b))
		}
	}

	f.Fuzz(func(t *testing.T, route uint8, param string, body []byte) {
		r := routes[int(route)%len(routes)]
		if strings.Contains(r.path, "{p}") && (param == fuzzAdmin || param == adminTokenID) {
			return // the fuzzer must not lock itself out
		}
		path := strings.ReplaceAll(r.path, "{p}", url.PathEscape(param))
		hdr := admin.Clone()
		if r.internal {
			hdr = internal.Clone()
		}
		hdr.Set("Content-Type", "application/json")
		before := h.Machine().AppliedIndex()
		st, answer := fuzzCall(t, r.method, base+path, hdr, body)
		switch {
		case st >= 500:
			t.Fatalf("%s %s %q: %d %s", r.method, path, body, st, answer)
		case st >= 400:
			var e api.ErrorResponse
			if err := json.Unmarshal(answer, &e); err != nil || e.Error == "" {
				t.Fatalf("%s %s %q: %d with a body that is not {\"error\": ...}: %q", r.method, path, body, st, answer)
			}
			if after := h.Machine().AppliedIndex(); after != before {
				t.Fatalf("%s %s %q: refused with %d %q, but the applied index moved from %d to %d", r.method, path, body, st, e.Error, before, after)
			}
		case st < 200 || st >= 300:
			t.Fatalf("%s %s %q: unexpected status %d %s", r.method, path, body, st, answer)
		}
	})
}
