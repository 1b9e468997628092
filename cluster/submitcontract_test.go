package cluster

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/fsm"
	"github.com/hakuriver/hakuriver-ha/sshproxy/sshtest"
)

// appliedIndex reads the replica's applied index through GET /api/cluster.
func appliedIndex(t *testing.T, base string) uint64 {
	t.Helper()
	resp, body := do(t, "GET", base+"/api/cluster", nil)
	var cs api.ClusterStatus
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &cs) != nil {
		t.Fatalf("GET /api/cluster: %d %s", resp.StatusCode, body)
	}
	return cs.AppliedIndex
}

// jsonString quotes s as a JSON string.
func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// TestSubmitContractRejects sends requests that break the submit contract
// to a real single-replica host (Raft over TCP, boltdb) and checks that
// each gets its 400 or 413 as {"error": ...} naming the field, and that the
// applied index (GET /api/cluster) does not move.
func TestSubmitContractRejects(t *testing.T) {
	h := startCluster(t, 1)[0]
	base := h.APIURL()
	resp, body := do(t, "POST", base+"/api/submit", `{"command":"true"}`)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("seed submit: %d %s", resp.StatusCode, body)
	}
	var sr api.SubmitResponse
	json.Unmarshal(body, &sr) //nolint:errcheck // checked through TaskIDs
	seed := sr.TaskIDs[0]

	big := func(n int) string { return strings.Repeat("a", n) }
	manyArgs := make([]string, api.MaxArguments+1)
	for i := range manyArgs {
		manyArgs[i] = "x"
	}
	manyArgsBody, _ := json.Marshal(api.SubmitRequest{Command: "echo", Arguments: manyArgs})
	cases := []struct {
		name, method, path, body string
		header                   map[string]string
		status                   int
		want                     []string
	}{
		// Unknown, misspelt, re-cased and duplicate fields.
		{name: "misspelt field", body: `{"command":"x","requierd_cores":2}`, status: 400, want: []string{`"requierd_cores"`, "unknown field", `did you mean "required_cores"`}},
		{name: "unknown field", body: `{"command":"x","gpus_please":true}`, status: 400, want: []string{`"gpus_please"`, "unknown field"}},
		{name: "field in other case", body: `{"command":"x","Required_Cores":2}`, status: 400, want: []string{`"Required_Cores"`, "unknown field"}},
		{name: "case twin of a field", body: `{"command":"x","COMMAND":"rm"}`, status: 400, want: []string{`"COMMAND"`}},
		{name: "duplicate key", body: `{"command":"echo","required_cores":1,"required_cores":64}`, status: 400, want: []string{`"required_cores"`, "twice"}},
		{name: "duplicate command", body: `{"command":"echo","command":"rm"}`, status: 400, want: []string{`"command"`, "twice"}},
		{name: "duplicate env name", body: `{"command":"x","env_vars":{"A":"1","A":"2"}}`, status: 400, want: []string{`"env_vars.A"`, "twice"}},
		{name: "trailing object", body: `{"command":"x"} {"command":"y"}`, status: 400, want: []string{"trailing"}},
		{name: "deep nesting", body: `{"command":"x","required_gpus":` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `}`, status: 400, want: []string{"required_gpus"}},
		// Mount specs, parsed fully.
		{name: "mount relative host", body: `{"command":"x","additional_mounts":["etc:/x"]}`, status: 400, want: []string{"additional_mounts[0]", "host path"}},
		{name: "mount propagation only", body: `{"command":"x","additional_mounts":[":rshared"]}`, status: 400, want: []string{"additional_mounts[0]"}},
		{name: "mount unknown option", body: `{"command":"x","additional_mounts":["/data:/data:rshared"]}`, status: 400, want: []string{"additional_mounts[0]", `"rshared"`}},
		{name: "mount dotdot", body: `{"command":"x","additional_mounts":["/data:/d","/srv/../etc:/x"]}`, status: 400, want: []string{"additional_mounts[1]", "clean"}},
		{name: "mount relative container", body: `{"command":"x","additional_mounts":["/data:data"]}`, status: 400, want: []string{"additional_mounts[0]", "container path"}},
		{name: "mount empty option", body: `{"command":"x","additional_mounts":["/data:/data:"]}`, status: 400, want: []string{"additional_mounts[0]", "empty option"}},
		{name: "mount empty container", body: `{"command":"x","additional_mounts":["/data:"]}`, status: 400, want: []string{"additional_mounts[0]", "empty"}},
		{name: "mount over container root", body: `{"command":"x","additional_mounts":["/data:/"]}`, status: 400, want: []string{"additional_mounts[0]"}},
		{name: "mount four parts", body: `{"command":"x","additional_mounts":["/a:/b:ro:rw"]}`, status: 400, want: []string{"additional_mounts[0]"}},
		{name: "mount ro and rw", body: `{"command":"x","additional_mounts":["/a:/b:ro,rw"]}`, status: 400, want: []string{"additional_mounts[0]"}},
		// NUL bytes.
		{name: "NUL in command", body: `{"command":"ec\u0000ho"}`, status: 400, want: []string{"command", "NUL"}},
		{name: "NUL in argument", body: `{"command":"echo","arguments":["a","b\u0000c"]}`, status: 400, want: []string{"arguments[1]", "NUL"}},
		{name: "NUL in env value", body: `{"command":"x","env_vars":{"A":"1\u0000"}}`, status: 400, want: []string{"env_vars.A", "NUL"}},
		{name: "NUL in env name", body: `{"command":"x","env_vars":{"A\u0000B":"1"}}`, status: 400, want: []string{"env_vars", "invalid variable name"}},
		{name: "NUL in working_dir", body: `{"command":"x","working_dir":"/tmp\u0000/x"}`, status: 400, want: []string{"working_dir", "NUL"}},
		{name: "NUL in container_name", body: `{"command":"x","container_name":"base\u0000"}`, status: 400, want: []string{"container_name", "NUL"}},
		{name: "NUL in target", body: `{"command":"x","targets":["n1\u0000"]}`, status: 400, want: []string{"targets[0]"}},
		{name: "NUL in mount", body: `{"command":"x","additional_mounts":["/data\u0000:/data"]}`, status: 400, want: []string{"additional_mounts[0]", "NUL"}},
		{name: "NUL in request_id", body: `{"command":"x","request_id":"r\u00001"}`, status: 400, want: []string{"request_id"}},
		{name: "NUL in array", body: `{"command":"x","array":"0-3\u0000"}`, status: 400, want: []string{"array"}},
		// Working directory and environment names.
		{name: "relative working_dir", body: `{"command":"x","working_dir":"../../../../etc"}`, status: 400, want: []string{"working_dir", "absolute"}},
		{name: "unclean working_dir", body: `{"command":"x","working_dir":"/srv/data/../../etc"}`, status: 400, want: []string{"working_dir", "clean"}},
		{name: "env name with slash", body: `{"command":"x","env_vars":{"A/B":"1"}}`, status: 400, want: []string{"env_vars", `"A/B"`}},
		{name: "env name with equals", body: `{"command":"x","env_vars":{"A=B":"1"}}`, status: 400, want: []string{"env_vars", `"A=B"`}},
		{name: "env name leading digit", body: `{"command":"x","env_vars":{"1A":"1"}}`, status: 400, want: []string{"env_vars", `"1A"`}},
		{name: "env name empty", body: `{"command":"x","env_vars":{"":"1"}}`, status: 400, want: []string{"env_vars"}},
		{name: "negative GPU ID", body: `{"command":"x","targets":["n1"],"required_gpus":[[-1]]}`, status: 400, want: []string{"required_gpus[0]"}},
		{name: "after not an ID", body: `{"command":"x","after":["+5"]}`, status: 400, want: []string{"after[0]"}},
		// Sizes.
		{name: "10 MB argument", body: `{"command":"echo","arguments":["` + big(10<<20) + `"]}`, status: 413, want: []string{"request body", "1048576"}},
		{name: "300 KiB argument", body: `{"command":"echo","arguments":["` + big(300<<10) + `"]}`, status: 413, want: []string{"arguments", "262144"}},
		{name: "three 100 KiB arguments", body: `{"command":"echo","arguments":["` + big(100<<10) + `","` + big(100<<10) + `","` + big(100<<10) + `"]}`, status: 413, want: []string{"arguments", "262144"}},
		{name: "200 KiB argument", body: `{"command":"echo","arguments":["` + big(200<<10) + `"]}`, status: 413, want: []string{"arguments[0]", "131071"}},
		{name: "too many arguments", body: string(manyArgsBody), status: 413, want: []string{"arguments", "16384"}},
		{name: "70 KiB environment", body: `{"command":"x","env_vars":{"BIG":"` + big(70<<10) + `"}}`, status: 413, want: []string{"env_vars", "65536"}},
		{name: "long working_dir", body: `{"command":"x","working_dir":"/` + big(5000) + `"}`, status: 413, want: []string{"working_dir"}},
		{name: "array of large tasks", body: `{"command":"echo","array":"0-99","arguments":["` + big(100<<10) + `"]}`, status: 413, want: []string{"array", "8388608"}},
		{name: "long request_id", body: `{"command":"x","request_id":"` + big(200) + `"}`, status: 413, want: []string{"request_id"}},
		{name: "long request ID header", body: `{"command":"x"}`, header: map[string]string{requestIDHeader: big(200)}, status: 413, want: []string{"request_id"}},
		{name: "request ID header with space", body: `{"command":"x"}`, header: map[string]string{requestIDHeader: "a b"}, status: 400, want: []string{"request_id"}},
		// Path parameters and other writes.
		{name: "unknown action", path: "/api/command/" + seed + "/rm", status: 400, want: []string{"unknown action", `"rm"`}},
		{name: "unknown action on unknown task", path: "/api/command/999/rm", status: 400, want: []string{"unknown action"}},
		{name: "signed task id", path: "/api/command/+" + seed + "/pause", status: 400, want: []string{"task id"}},
		{name: "pause with a body", path: "/api/command/" + seed + "/pause", body: `{"task_id":1}`, status: 400, want: []string{"request body"}},
		{name: "kill with a body", path: "/api/kill/" + seed, body: `{"task_id":1}`, status: 400, want: []string{"request body"}},
		{name: "kill with a long request ID", path: "/api/kill/" + seed, header: map[string]string{requestIDHeader: big(200)}, status: 413, want: []string{"request_id"}},
		{name: "unknown type filter", method: "GET", path: "/api/tasks?type=batch", status: 400, want: []string{"type", `"batch"`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			method, path := tc.method, tc.path
			if method == "" {
				method = "POST"
			}
			if path == "" {
				path = "/api/submit"
			}
			before := appliedIndex(t, base)
			req, _ := http.NewRequest(method, base+path, strings.NewReader(tc.body))
			for k, v := range tc.header {
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatalf("%s %s: %v", method, path, err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %.300s", resp.StatusCode, tc.status, body)
			}
			var e api.ErrorResponse
			if err := json.Unmarshal(body, &e); err != nil || e.Error == "" {
				t.Fatalf("error body is not {\"error\": ...}: %.300s", body)
			}
			t.Logf("%d %s", resp.StatusCode, e.Error)
			for _, w := range tc.want {
				if !strings.Contains(e.Error, w) {
					t.Errorf("error %q does not mention %q", e.Error, w)
				}
			}
			if after := appliedIndex(t, base); after != before {
				t.Errorf("applied index moved from %d to %d on a rejected request", before, after)
			}
		})
	}
	if n := h.Machine().Len(); n != 1 {
		t.Errorf("%d tasks after the rejected requests, want only the seed", n)
	}
}

// TestSubmitContractAcceptsOriginalPayloads sends what the original
// HakuRiver clients send (every TaskRequest field, with values and as
// nulls, and the VPS client's payload) and a payload with every field of
// ours, at the size limits, to a real host with one runner: each is
// accepted and stored as sent.
func TestSubmitContractAcceptsOriginalPayloads(t *testing.T) {
	h := startCluster(t, 1)[0]
	base := h.APIURL()
	// additional_mounts in a request need the mounts policy: submit as an
	// admin who was granted it.
	admin := bootstrapAdmin(t, h)
	var me api.WhoAmI
	if resp, body := doAs(t, "GET", base+"/api/auth/whoami", admin, nil); resp.StatusCode != http.StatusOK || json.Unmarshal(body, &me) != nil {
		t.Fatalf("whoami: %d %s", resp.StatusCode, body)
	}
	if resp, body := doAs(t, "PATCH", base+"/api/users/"+me.User, admin, api.UserPatch{Policy: &fsm.Policy{Mounts: true}}); resp.StatusCode != http.StatusOK {
		t.Fatalf("grant mounts: %d %s", resp.StatusCode, body)
	}
	runner := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body) //nolint:errcheck // a fake runner
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"message":"ok"}`) //nolint:errcheck // a fake runner
	}))
	defer runner.Close()
	if resp, body := do(t, "POST", base+"/api/register", api.RegisterRequest{
		Hostname: "n1", TotalCores: 8, TotalRAMBytes: 8 << 30, RunnerURL: runner.URL,
	}); resp.StatusCode != http.StatusOK {
		t.Fatalf("register: %d %s", resp.StatusCode, body)
	}
	key := sshtest.NewKey(t).AuthorizedKey("")
	envAtLimit := map[string]string{"BIG": strings.Repeat("e", api.MaxEnvBytes-len("BIG=")-len("A=1")), "A": "1"}
	ours, _ := json.Marshal(api.SubmitRequest{
		TaskType: "command", Command: "echo", Arguments: []string{strings.Repeat("a", api.MaxArgBytes), strings.Repeat("b", api.MaxCommandBytes-api.MaxArgBytes-len("echo"))},
		EnvVars: envAtLimit, WorkDir: "/srv/work", RequiredCores: new(2), RequiredMemoryBytes: new(int64(1 << 20)),
		Targets: []string{"n1"}, RequiredGPUs: [][]int{{}}, ContainerName: new("NULL"), Privileged: new(false),
		AdditionalMounts: []string{"/data:/data:ro", "/scratch:/scratch:rw", "/opt/tools:/tools"},
		Priority:         5, TimeLimitSeconds: 60, After: nil, RequestID: "ours-1",
	})
	for _, tc := range []struct {
		name, body string
		check      func(t *testing.T, tk api.Task)
	}{
		{"original command client, every field", `{"task_type":"command","command":"echo","arguments":["hello","world"],` +
			`"env_vars":{"FOO":"bar","_x1":""},"required_cores":1,"required_gpus":[[]],"required_memory_bytes":512000000,` +
			`"targets":["n1"],"container_name":"NULL","privileged":false,"additional_mounts":["/data:/data:ro","/mnt/x:/x"]}`,
			func(t *testing.T, tk api.Task) {
				if tk.Command != "echo" || !slices.Equal(tk.Arguments, []string{"hello", "world"}) || tk.EnvVars["FOO"] != "bar" ||
					tk.RequiredMemoryBytes != 512000000 || tk.TargetNode != "n1" || !slices.Equal(tk.AdditionalMounts, []string{"/data:/data:ro", "/mnt/x:/x"}) {
					t.Errorf("stored task %+v", tk)
				}
			}},
		{"original command client, nulls", `{"task_type":null,"command":"echo","arguments":null,"env_vars":null,"required_cores":null,` +
			`"required_gpus":null,"required_memory_bytes":null,"targets":null,"container_name":null,"privileged":null,"additional_mounts":null}`,
			func(t *testing.T, tk api.Task) {
				if tk.Command != "echo" || tk.RequiredCores != 1 || tk.ContainerName != "hakuriver-base" {
					t.Errorf("stored task %+v", tk)
				}
			}},
		{"original CLI payload", `{"command":"python","arguments":["train.py","--lr","0.1"],"env_vars":{},"required_cores":0,` +
			`"required_memory_bytes":null,"targets":null,"container_name":"NULL","privileged":null,"additional_mounts":null,"required_gpus":null}`,
			func(t *testing.T, tk api.Task) {
				if tk.Command != "python" || tk.RequiredCores != 0 {
					t.Errorf("stored task %+v", tk)
				}
			}},
		{"original VPS client", `{"task_type":"vps","command":` + jsonString(key) + `,"arguments":[],"env_vars":{},"required_cores":0,` +
			`"required_memory_bytes":null,"targets":null,"container_name":null,"privileged":null,"additional_mounts":null,"required_gpus":[]}`,
			func(t *testing.T, tk api.Task) {
				if tk.TaskType != "vps" || tk.Command != key {
					t.Errorf("stored task %+v", tk)
				}
			}},
		{"every field of ours at the limits", string(ours), func(t *testing.T, tk api.Task) {
			if len(tk.Arguments) != 2 || len(tk.Arguments[0]) != api.MaxArgBytes || !reflect.DeepEqual(tk.EnvVars, envAtLimit) ||
				tk.WorkDir != "/srv/work" || tk.Priority != 5 || len(tk.AdditionalMounts) != 3 {
				t.Errorf("stored task differs (args %d, env %d, workdir %q)", len(tk.Arguments), len(tk.EnvVars), tk.WorkDir)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := doAs(t, "POST", base+"/api/submit", admin, tc.body)
			if resp.StatusCode != http.StatusAccepted {
				t.Fatalf("status %d, want 202: %.300s", resp.StatusCode, body)
			}
			var sr api.SubmitResponse
			if err := json.Unmarshal(body, &sr); err != nil || len(sr.TaskIDs) != 1 {
				t.Fatalf("answer %s: %v", body, err)
			}
			resp, body = do(t, "GET", base+"/api/status/"+sr.TaskIDs[0], nil)
			var tk api.Task
			if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &tk) != nil {
				t.Fatalf("status of %s: %d %.300s", sr.TaskIDs[0], resp.StatusCode, body)
			}
			tc.check(t, tk)
		})
	}
}

// TestSubmitRejectedOnFollower checks that a follower refuses a bad submit
// itself: the leader never sees it (its request counter for /api/submit
// does not move) and no replica's applied index moves.
func TestSubmitRejectedOnFollower(t *testing.T) {
	hosts := startCluster(t, 3)
	var leader, follower *Host
	for _, h := range hosts {
		if h.IsLeader() {
			leader = h
		} else {
			follower = h
		}
	}
	waitFor(t, 10*time.Second, func() bool { return appliedIndex(t, follower.APIURL()) == appliedIndex(t, leader.APIURL()) })
	before := appliedIndex(t, leader.APIURL())
	seen := leaderSubmits(t, leader)
	resp, body := do(t, "POST", follower.APIURL()+"/api/submit", `{"command":"x","requierd_cores":2}`)
	if resp.StatusCode != http.StatusBadRequest || !bytes.Contains(body, []byte("requierd_cores")) {
		t.Fatalf("bad submit through a follower: %d %s", resp.StatusCode, body)
	}
	if got := leaderSubmits(t, leader); got != seen {
		t.Errorf("the leader served submits %s after the follower's rejection, before %s: the follower forwarded it", got, seen)
	}
	for _, h := range hosts {
		if got := appliedIndex(t, h.APIURL()); got != before {
			t.Errorf("%s: applied index %d, want %d", h.cfg.NodeID, got, before)
		}
	}
}

// leaderSubmits is the leader's count of POST /api/submit requests served,
// from its /metrics.
func leaderSubmits(t *testing.T, h *Host) string {
	t.Helper()
	_, body := do(t, "GET", h.APIURL()+"/metrics", nil)
	var n []string
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, "hakuriver_http_requests_total") && strings.Contains(line, "/submit") {
			n = append(n, line)
		}
	}
	return fmt.Sprint(n)
}
