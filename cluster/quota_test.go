package cluster

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/fsm"
)

// TestQuotaGroup drives a group quota through a real replica and a fake
// runner: the group's members together hold at most its limit, the next
// task waits with the group named in the queue, a task that could never
// fit is refused at submit, GET /api/quota shows the sum, and the waiting
// task is placed once a member's task completes.
func TestQuotaGroup(t *testing.T) {
	h := startCluster(t, 1)[0]
	runner := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"message":"ok"}`) //nolint:errcheck // test server
	}))
	defer runner.Close()
	base := h.APIURL() + "/api"
	if resp, body := do(t, "POST", base+"/register", api.RegisterRequest{Hostname: "n1", TotalCores: 8, TotalRAMBytes: 8 << 30, RunnerURL: runner.URL}); resp.StatusCode != http.StatusOK {
		t.Fatalf("register: %d %s", resp.StatusCode, body)
	}
	var boot api.TokenResponse
	if resp, body := do(t, "POST", base+"/auth/bootstrap", api.BootstrapRequest{}); resp.StatusCode != http.StatusCreated || json.Unmarshal(body, &boot) != nil {
		t.Fatalf("bootstrap: %d %s", resp.StatusCode, body)
	}
	admin := boot.Token
	must := func(bearer, method, path string, body any, want int) []byte {
		t.Helper()
		resp, b := doBearer(t, method, base+path, bearer, body)
		if resp.StatusCode != want {
			t.Fatalf("%s %s: %d %s, want %d", method, path, resp.StatusCode, b, want)
		}
		return b
	}
	must(admin, "POST", "/groups", api.GroupRequest{Name: "lab", Quota: fsm.Quota{RunningTasks: 2, Cores: 3}}, http.StatusCreated)
	tokens := map[string]string{}
	for _, name := range []string{"bob", "carol"} {
		must(admin, "POST", "/users", api.UserRequest{Name: name, Role: fsm.RoleUser, Groups: []string{"lab"}}, http.StatusCreated)
		var tr api.TokenResponse
		if err := json.Unmarshal(must(admin, "POST", "/tokens", api.TokenRequest{User: name}, http.StatusCreated), &tr); err != nil {
			t.Fatal(err)
		}
		tokens[name] = tr.Token
	}
	null := "NULL"
	submit := func(who string, cores int, want int) []byte {
		t.Helper()
		return must(tokens[who], "POST", "/submit", api.SubmitRequest{Command: "true", ContainerName: &null, RequiredCores: &cores}, want)
	}
	taskID := func(body []byte) string {
		t.Helper()
		var sr api.SubmitResponse
		if err := json.Unmarshal(body, &sr); err != nil || len(sr.TaskIDs) != 1 {
			t.Fatalf("submit answer %s: %v", body, err)
		}
		return sr.TaskIDs[0]
	}
	status := func(id string) fsm.Status {
		t.Helper()
		var tk api.Task
		if err := json.Unmarshal(must(admin, "GET", "/status/"+id, nil, http.StatusOK), &tk); err != nil {
			t.Fatal(err)
		}
		return tk.Status
	}

	// 4 cores can never fit a group quota of 3: refused, naming it.
	if body := submit("carol", 4, http.StatusForbidden); !strings.Contains(string(body), "group lab's quota is 3") {
		t.Errorf("over-quota submit answered %s, want the group quota named", body)
	}
	b1, b2 := taskID(submit("bob", 1, http.StatusAccepted)), taskID(submit("bob", 1, http.StatusAccepted))
	waitFor(t, 10*time.Second, func() bool { return status(b1) == fsm.StatusAssigning && status(b2) == fsm.StatusAssigning })
	c1 := taskID(submit("carol", 1, http.StatusAccepted))

	var queue []api.QueueEntry
	if err := json.Unmarshal(must(tokens["carol"], "GET", "/queue", nil, http.StatusOK), &queue); err != nil {
		t.Fatal(err)
	}
	if want := "quota: group lab uses 2 of 2 running tasks"; len(queue) != 1 || queue[0].TaskID != c1 || queue[0].Reason != want {
		t.Fatalf("queue: %+v, want task %s waiting for %q", queue, c1, want)
	}

	var quotas []api.QuotaEntry
	if err := json.Unmarshal(must(tokens["carol"], "GET", "/quota", nil, http.StatusOK), &quotas); err != nil {
		t.Fatal(err)
	}
	want := []api.QuotaEntry{{Kind: "group", Name: "lab", Members: []string{"bob", "carol"}, Resources: []api.QuotaResource{
		{Resource: "cores", Used: 2, Limit: 3}, {Resource: "memory_bytes"}, {Resource: "gpus"},
		{Resource: "running_tasks", Used: 2, Limit: 2}, {Resource: "vps"},
	}}}
	if !jsonEqual(quotas, want) {
		t.Errorf("GET /api/quota: %+v, want %+v", quotas, want)
	}
	if err := json.Unmarshal(must(admin, "GET", "/quota?user=carol", nil, http.StatusOK), &quotas); err != nil {
		t.Fatal(err)
	}
	if len(quotas) != 2 || quotas[0].Kind != "user" || quotas[0].Name != "carol" || len(quotas[0].Groups) != 1 || quotas[1].Name != "lab" {
		t.Errorf("GET /api/quota?user=carol: %+v, want carol (in lab) then lab", quotas)
	}
	must(admin, "GET", "/quota?user=nobody", nil, http.StatusNotFound)
	must(admin, "GET", "/quota?user=No%20Such", nil, http.StatusBadRequest)

	// One of bob's tasks completes: carol's is placed.
	code := 0
	for _, st := range []string{"running", "completed"} {
		if resp, body := do(t, "POST", base+"/update", api.UpdateRequest{TaskID: mustID(t, b1), Status: st, ExitCode: &code}); resp.StatusCode != http.StatusOK {
			t.Fatalf("update %s: %d %s", st, resp.StatusCode, body)
		}
	}
	waitFor(t, 10*time.Second, func() bool { return status(c1) == fsm.StatusAssigning })
}

func jsonEqual(a, b any) bool {
	x, err1 := json.Marshal(a)
	y, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && bytes.Equal(x, y)
}
