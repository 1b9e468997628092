package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/fsm"
)

func ptr[T any](v T) *T { return &v }

func TestCLI_SubmitBuildsRequest(t *testing.T) {
	f := newFakeHost(t)
	f.handle("POST /api/submit", http.StatusAccepted, api.SubmitResponse{Message: "ok", TaskIDs: []string{"11", "12", "13"}})
	out, _, err := runCLI(t, "--host", f.srv.URL, "task", "submit",
		"--target", "node1", "--target", "node2:1::0,1", "--target", "node3",
		"--cores", "2", "--memory", "4G",
		"--env", "A=1", "--env", "B= x=y ", "--workdir", "/data",
		"--container", "NULL", "--privileged", "--mount", "/a:/b", "--mount", "/c:/d:ro",
		"--request-id", "req-1",
		"--", "python", "-c", "print(1)", "--flag")
	if err != nil {
		t.Fatalf("submit: %v", err)
	}
	if out != "11\n12\n13\n" {
		t.Fatalf("out = %q", out)
	}
	var got api.SubmitRequest
	if err := json.Unmarshal(f.last(t, "/api/submit").Body, &got); err != nil {
		t.Fatalf("decode request: %v", err)
	}
	want := api.SubmitRequest{
		TaskType:            "command",
		Command:             "python",
		Arguments:           []string{"-c", "print(1)", "--flag"},
		EnvVars:             map[string]string{"A": "1", "B": " x=y "},
		WorkDir:             "/data",
		RequiredCores:       ptr(2),
		RequiredGPUs:        [][]int{{}, {0, 1}, {}},
		RequiredMemoryBytes: ptr(int64(4e9)),
		Targets:             []string{"node1", "node2:1", "node3"},
		ContainerName:       ptr("NULL"),
		Privileged:          ptr(true),
		AdditionalMounts:    []string{"/a:/b", "/c:/d:ro"},
		RequestID:           "req-1",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("request =\n%+v\nwant\n%+v", got, want)
	}
}

func TestCLI_SubmitMinimal(t *testing.T) {
	f := newFakeHost(t)
	f.handle("POST /api/submit", http.StatusAccepted, api.SubmitResponse{Message: "ok", TaskIDs: []string{"7"}})
	// Without "--" the first non-flag word starts the command.
	if _, _, err := runCLI(t, "--host", f.srv.URL, "task", "submit", "--target", "n1", "echo", "--cores", "9"); err != nil {
		t.Fatalf("submit: %v", err)
	}
	body := f.last(t, "/api/submit").Body
	var raw map[string]any
	if err := json.Unmarshal(body, &raw); err != nil {
		t.Fatalf("decode: %v", err)
	}
	for _, k := range []string{"required_gpus", "required_memory_bytes", "container_name", "privileged", "env_vars", "additional_mounts",
		"priority", "gpu_count", "array", "time_limit_seconds", "after"} {
		if _, ok := raw[k]; ok {
			t.Errorf("%s sent without its flag: %s", k, body)
		}
	}
	if raw["request_id"] == "" || raw["request_id"] == nil {
		t.Errorf("no request_id generated: %s", body)
	}
	var got api.SubmitRequest
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatalf("decode: %v", err)
	}
	if got.Command != "echo" || !reflect.DeepEqual(got.Arguments, []string{"--cores", "9"}) || *got.RequiredCores != 1 {
		t.Fatalf("request = %s", body)
	}
}

func TestCLI_SubmitBadFlags(t *testing.T) {
	f := newFakeHost(t)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"Memory", []string{"--memory", "4X"}, "--memory"},
		{"MemoryFloat", []string{"--memory", "1.5G"}, "--memory"},
		{"Cores", []string{"--cores", "-1"}, "--cores"},
		{"Env", []string{"--env", "NOEQUALS"}, "--env"},
		{"EnvEmptyKey", []string{"--env", "=v"}, "--env"},
		{"TargetGPU", []string{"--target", "n1::x"}, "GPU ID"},
		{"GPUsList", []string{"--gpus", "0,1"}, "--target HOST::0,1"},
		{"GPUsNegative", []string{"--gpus", "-1"}, "--gpus"},
		{"GPUsAndIDs", []string{"--gpus", "2", "--target", "n1", "--target", "n2::0"}, "not both"},
		{"ArrayEmpty", []string{"--array", "%4"}, "--array"},
		{"ArrayText", []string{"--array", "a-b"}, "--array"},
		{"ArrayOpenRange", []string{"--array", "0-"}, "--array"},
		{"ArrayBackwards", []string{"--array", "9-3"}, "ends before it starts"},
		{"ArrayThrottle", []string{"--array", "0-9%0"}, "--array"},
		{"ArrayTargets", []string{"--array", "0-9", "--target", "n1", "--target", "n2"}, "at most one --target"},
		{"TimeLimitNegative", []string{"--time-limit", "-5m"}, "--time-limit"},
		{"TimeLimitNegativeSeconds", []string{"--time-limit", "-5"}, "--time-limit"},
		{"TimeLimitUnit", []string{"--time-limit", "2d"}, "--time-limit"},
		{"AfterText", []string{"--after", "12,abc"}, "--after"},
		{"AfterZero", []string{"--after", "0"}, "--after"},
		{"Mount", []string{"--mount", "/only"}, "--mount"},
		{"Container", []string{"--container", ""}, "--container"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"--host", f.srv.URL, "task", "submit"}, tt.args...)
			args = append(args, "--", "true")
			_, _, err := runCLI(t, args...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one naming %s", err, tt.want)
			}
		})
	}
	if n := len(f.requests()); n != 0 {
		t.Fatalf("bad flags sent %d requests", n)
	}
	if _, _, err := runCLI(t, "--host", f.srv.URL, "task", "submit"); err == nil {
		t.Fatalf("submit without a command must fail")
	}
}

func TestCLI_SubmitSchedulingFlags(t *testing.T) {
	f := newFakeHost(t)
	f.handle("POST /api/submit", http.StatusAccepted, api.SubmitResponse{Message: "ok", TaskIDs: []string{"51", "52", "53"}})
	if _, _, err := runCLI(t, "--host", f.srv.URL, "task", "submit",
		"--gpus", "2", "--priority", "-5", "--array", " 0-9, 12 %3", "--time-limit", "1h30m",
		"--after", "11,12", "--after", " 13 ,,11", "--target", "node1",
		"--", "./sweep.sh"); err != nil {
		t.Fatalf("submit: %v", err)
	}
	body := f.last(t, "/api/submit").Body
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		t.Fatalf("decode: %v", err)
	}
	want := map[string]string{
		"gpu_count":          `2`,
		"priority":           `-5`,
		"array":              `"0-9,12%3"`,
		"time_limit_seconds": `5400`,
		"after":              `["11","12","13"]`,
		"targets":            `["node1"]`,
	}
	for k, v := range want {
		if string(raw[k]) != v {
			t.Errorf("%s = %s, want %s", k, raw[k], v)
		}
	}
	if _, ok := raw["required_gpus"]; ok {
		t.Errorf("required_gpus sent with a GPU count: %s", body)
	}
}

func TestCLI_SubmitJSONAndFailedTargets(t *testing.T) {
	f := newFakeHost(t)
	resp := api.SubmitResponse{Message: "Some targets failed.", TaskIDs: []string{"21"},
		FailedTargets: []api.FailedTarget{{Target: "n2", Reason: "Node status is offline"}}}
	f.handle("POST /api/submit", http.StatusAccepted, resp)

	out, errOut, err := runCLI(t, "--host", f.srv.URL, "task", "submit", "--target", "n1", "--target", "n2", "--", "true")
	if err != nil {
		t.Fatalf("submit: %v", err)
	}
	if out != "21\n" || !strings.Contains(errOut, "n2 failed: Node status is offline") {
		t.Fatalf("out = %q, stderr = %q", out, errOut)
	}

	out, _, err = runCLI(t, "--host", f.srv.URL, "-o", "json", "task", "submit", "--", "true")
	if err != nil {
		t.Fatalf("submit: %v", err)
	}
	var got api.SubmitResponse
	mustJSON(t, out, &got)
	if !reflect.DeepEqual(got, resp) {
		t.Fatalf("json = %+v", got)
	}
}

func TestCLI_SubmitWait(t *testing.T) {
	f := newFakeHost(t)
	f.handle("POST /api/submit", http.StatusAccepted, api.SubmitResponse{Message: "ok", TaskIDs: []string{"31", "32"}})
	var mu sync.Mutex
	polls := map[string]int{}
	f.mux.HandleFunc("GET /api/status/{id}", func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		mu.Lock()
		polls[id]++
		n := polls[id]
		mu.Unlock()
		switch {
		case n == 1 && id == "32":
			// The answering replica has not applied the task yet.
			reply(w, http.StatusNotFound, api.ErrorResponse{Error: "task not found"})
		case n < 3:
			reply(w, http.StatusOK, fsm.Task{TaskID: 1, Status: fsm.StatusRunning})
		case id == "31":
			reply(w, http.StatusOK, fsm.Task{TaskID: 31, Status: fsm.StatusCompleted, ExitCode: ptr(0)})
		default:
			reply(w, http.StatusOK, fsm.Task{TaskID: 32, Status: fsm.StatusFailed, ExitCode: ptr(2), AssignedNode: "n1"})
		}
	})
	out, errOut, err := runCLI(t, "--host", f.srv.URL, "task", "submit", "--wait", "--poll-interval", "10ms", "--", "false")
	if err == nil || !strings.Contains(err.Error(), "1 of 2 tasks did not complete: 32 failed") {
		t.Fatalf("err = %v", err)
	}
	if out != "31\n32\n" {
		t.Fatalf("out = %q", out)
	}
	if !strings.Contains(errOut, "task 32: failed (exit code 2) on n1") {
		t.Fatalf("stderr = %q", errOut)
	}

	// All completed: success, and JSON output holds the final tasks.
	f2 := newFakeHost(t)
	f2.handle("POST /api/submit", http.StatusAccepted, api.SubmitResponse{Message: "ok", TaskIDs: []string{"41"}})
	f2.handle("GET /api/status/41", http.StatusOK, fsm.Task{TaskID: 41, Status: fsm.StatusCompleted, ExitCode: ptr(0)})
	out, _, err = runCLI(t, "--host", f2.srv.URL, "-o", "json", "task", "submit", "--wait", "--", "true")
	if err != nil {
		t.Fatalf("submit --wait: %v", err)
	}
	var got submitWaitOutput
	mustJSON(t, out, &got)
	if len(got.Tasks) != 1 || got.Tasks[0].TaskID != 41 || got.TaskIDs[0] != "41" {
		t.Fatalf("json = %+v", got)
	}
}

func TestCLI_TaskList(t *testing.T) {
	f := newFakeHost(t)
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tasks := []fsm.Task{
		{TaskID: 1002, Status: fsm.StatusRunning, AssignedNode: "node1", RequiredCores: 2, SubmittedAt: now, Command: "python", Arguments: []string{"train.py", "--lr", "0.1"}},
		{TaskID: 1001, Status: fsm.StatusPending, RequiredCores: 1, SubmittedAt: now, Command: "echo", Arguments: []string{"hello world"}},
	}
	f.mux.HandleFunc("GET /api/tasks", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(api.MoreHeader, "true")
		w.Header().Set(api.NextAfterHeader, "1001")
		reply(w, http.StatusOK, tasks)
	})
	out, _, err := runCLI(t, "--host", f.srv.URL, "task", "list", "--status", "running", "--node", "node1", "--batch", "9", "--limit", "2", "--after", "1003")
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	if q := f.last(t, "/api/tasks").Query; q != "after=1003&batch=9&limit=2&node=node1&status=running" {
		t.Fatalf("query = %q", q)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 {
		t.Fatalf("want header, 2 rows and a footer:\n%s", out)
	}
	for _, col := range []string{"TASK ID", "STATUS", "NODE", "CORES", "SUBMITTED", "COMMAND"} {
		if !strings.Contains(lines[0], col) {
			t.Errorf("header %q lacks %s", lines[0], col)
		}
	}
	if f := strings.Fields(lines[1]); f[0] != "1002" || f[1] != "running" || f[2] != "node1" || f[3] != "2" {
		t.Errorf("row = %q", lines[1])
	}
	if !strings.Contains(lines[2], `echo "hello world"`) || !strings.Contains(lines[2], " - ") {
		t.Errorf("row = %q", lines[2])
	}
	if !strings.Contains(lines[3], "More tasks exist") || !strings.Contains(lines[3], "--after 1001") {
		t.Errorf("footer = %q", lines[3])
	}

	out, errOut, err := runCLI(t, "--host", f.srv.URL, "-o", "json", "task", "list")
	if err != nil {
		t.Fatalf("list json: %v", err)
	}
	var got []fsm.Task
	mustJSON(t, out, &got)
	if len(got) != 2 || got[0].TaskID != 1002 {
		t.Fatalf("json = %+v", got)
	}
	if !strings.Contains(errOut, "--after 1001") {
		t.Fatalf("stderr = %q", errOut)
	}

	if _, _, err := runCLI(t, "--host", f.srv.URL, "task", "list", "--status", "bogus"); err == nil || !strings.Contains(err.Error(), "--status") {
		t.Fatalf("bad --status: err = %v", err)
	}
}

func TestCLI_TaskListArrayColumn(t *testing.T) {
	f := newFakeHost(t)
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	f.handle("GET /api/tasks", http.StatusOK, []fsm.Task{
		{TaskID: 2003, BatchID: 2001, ArrayIndex: ptr(2), ArrayThrottle: 8, Status: fsm.StatusPending, RequiredCores: 1, SubmittedAt: now, Command: "./p.sh"},
		{TaskID: 2002, BatchID: 2001, ArrayIndex: ptr(0), Status: fsm.StatusRunning, AssignedNode: "n1", RequiredCores: 1, SubmittedAt: now, Command: "./p.sh"},
		{TaskID: 1999, Status: fsm.StatusCompleted, AssignedNode: "n2", RequiredCores: 1, SubmittedAt: now, Command: "true"},
	})
	out, _, err := runCLI(t, "--host", f.srv.URL, "task", "list", "--batch", "2001")
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 5 || !strings.HasPrefix(strings.Join(strings.Fields(lines[0]), " "), "TASK ID ARRAY STATUS NODE") {
		t.Fatalf("want the ARRAY column after TASK ID and the batch summary:\n%s", out)
	}
	if want := "Batch 2001: 3 tasks: 1 pending, 1 running, 1 completed"; lines[4] != want {
		t.Errorf("summary %q, want %q", lines[4], want)
	}
	for i, want := range []string{"2003 2001[2] pending -", "2002 2001[0] running n1", "1999 - completed n2"} {
		if got := strings.Join(strings.Fields(lines[i+1])[:4], " "); got != want {
			t.Errorf("row %d = %q, want %q", i, got, want)
		}
	}
	// Without array tasks the column is left out (see TestCLI_TaskList).
	var b strings.Builder
	if err := printTaskList(&b, []fsm.Task{{TaskID: 1, Status: fsm.StatusPending, SubmittedAt: now, Command: "x"}}); err != nil {
		t.Fatalf("printTaskList: %v", err)
	}
	if strings.Contains(b.String(), "ARRAY") {
		t.Fatalf("ARRAY column without array tasks:\n%s", b.String())
	}
}

func TestCLI_TaskStatusScheduling(t *testing.T) {
	f := newFakeHost(t)
	f.handle("GET /api/status/60", http.StatusOK, fsm.Task{TaskID: 60, TaskType: fsm.TaskCommand, BatchID: 59, Status: fsm.StatusPending,
		Command: "./p.sh", ArrayIndex: ptr(4), ArrayThrottle: 2, Priority: 7, GPUCount: 2, TimeLimitSeconds: 5400,
		After: fsm.IDList{41, 42}, SubmittedAt: time.Now()})
	f.handle("GET /api/status/61", http.StatusOK, fsm.Task{TaskID: 61, TaskType: fsm.TaskCommand, Status: fsm.StatusPending, Command: "true"})
	out, _, err := runCLI(t, "--host", f.srv.URL, "task", "status", "60")
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	for _, want := range []string{"Array index:", "4 (at most 2 of the batch running)", "Priority:", "7",
		"Time limit:", "1h30m0s", "After:", "41,42", "2 (any free)"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	out, _, err = runCLI(t, "--host", f.srv.URL, "task", "status", "61")
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	for _, absent := range []string{"Array index:", "Priority:", "Time limit:", "After:"} {
		if strings.Contains(out, absent) {
			t.Errorf("unset %s shown:\n%s", absent, out)
		}
	}
}

func TestCLI_TaskListEmptyNoFooter(t *testing.T) {
	f := newFakeHost(t)
	f.handle("GET /api/tasks", http.StatusOK, []fsm.Task{})
	out, _, err := runCLI(t, "--host", f.srv.URL, "task", "list")
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	if out != "No tasks.\n" {
		t.Fatalf("out = %q", out)
	}
	out, _, err = runCLI(t, "--host", f.srv.URL, "-o", "json", "task", "list")
	if err != nil || strings.TrimSpace(out) != "[]" {
		t.Fatalf("json out = %q, err = %v", out, err)
	}
}

func TestCLI_TaskStatus(t *testing.T) {
	f := newFakeHost(t)
	task := fsm.Task{TaskID: 55, TaskType: fsm.TaskCommand, Status: fsm.StatusCompleted, Command: "echo", Arguments: []string{"hi"},
		AssignedNode: "node2", RequiredCores: 1, RequiredMemoryBytes: 1 << 30, RequiredGPUs: []int{0, 1}, ExitCode: ptr(0),
		EnvVars: map[string]string{"B": "2", "A": "1"}, SubmittedAt: time.Now(),
		Placements: []fsm.Placement{fsm.NewPlacement("node1", time.Unix(1_800_000_000, 0), fsm.PlacementPlaced),
			fsm.NewPlacement("node1", time.Unix(1_800_000_001, 0), fsm.PlacementRequeued),
			fsm.NewPlacement("node2", time.Unix(1_800_000_002, 0), fsm.PlacementPlaced)}}
	f.handle("GET /api/status/55", http.StatusOK, task)
	f.handle("GET /api/status/56", http.StatusNotFound, api.ErrorResponse{Error: "task 56 not found"})

	out, _, err := runCLI(t, "--host", f.srv.URL, "task", "status", "55")
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	for _, want := range []string{"Task ID:", "55", "Status:", "completed", "node2", "echo hi", "1.0GiB", "0,1", "A=1 B=2", "Exit code:"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	hist := regexp.MustCompile(`(?m)^Placements: +\S+ \S+ placed node1\n +\S+ \S+ requeued node1\n +\S+ \S+ placed node2$`)
	if !hist.MatchString(out) {
		t.Errorf("output lacks the placement history:\n%s", out)
	}
	out, _, err = runCLI(t, "--host", f.srv.URL, "-o", "json", "task", "status", "55")
	if err != nil {
		t.Fatalf("status json: %v", err)
	}
	var got fsm.Task
	mustJSON(t, out, &got)
	if got.TaskID != 55 || got.Status != fsm.StatusCompleted || !strings.Contains(out, `"task_id": "55"`) ||
		len(got.Placements) != 3 || got.Placements[2] != task.Placements[2] ||
		!strings.Contains(out, `"node": "node1",`) || !strings.Contains(out, `"event": "requeued"`) {
		t.Fatalf("json = %s", out)
	}
	if _, _, err := runCLI(t, "--host", f.srv.URL, "task", "status", "56"); err == nil || !strings.Contains(err.Error(), "task 56 not found") {
		t.Fatalf("err = %v", err)
	}
}

func TestCLI_TaskKill(t *testing.T) {
	f := newFakeHost(t)
	f.handle("POST /api/kill/77", http.StatusAccepted, api.MessageResponse{Message: "Kill requested for task 77."})
	out, _, err := runCLI(t, "--host", f.srv.URL, "task", "kill", "77")
	if err != nil || out != "Kill requested for task 77.\n" {
		t.Fatalf("out = %q, err = %v", out, err)
	}
	out, _, err = runCLI(t, "--host", f.srv.URL, "-o", "json", "task", "kill", "77")
	if err != nil {
		t.Fatalf("kill json: %v", err)
	}
	var m api.MessageResponse
	mustJSON(t, out, &m)
}

func TestCLI_TaskPauseResume(t *testing.T) {
	f := newFakeHost(t)
	f.handle("POST /api/command/{id}/pause", http.StatusOK, api.MessageResponse{Message: "Pause for task 5 sent to runner: pause command sent successfully."})
	f.handle("POST /api/command/{id}/resume", http.StatusConflict, api.ErrorResponse{Error: "cannot resume task 5 in state running"})
	out, _, err := runCLI(t, "--host", f.srv.URL, "task", "pause", "5")
	if err != nil || out != "Pause for task 5 sent to runner: pause command sent successfully.\n" {
		t.Fatalf("pause: out = %q, err = %v", out, err)
	}
	if r := f.last(t, "/api/command/5/pause"); r.Method != http.MethodPost {
		t.Fatalf("pause method = %s", r.Method)
	}
	out, _, err = runCLI(t, "--host", f.srv.URL, "-o", "json", "task", "pause", "5")
	if err != nil {
		t.Fatalf("pause json: %v", err)
	}
	var m api.MessageResponse
	mustJSON(t, out, &m)

	_, _, err = runCLI(t, "--host", f.srv.URL, "task", "resume", "5")
	if err == nil || !strings.Contains(err.Error(), "cannot resume task 5 in state running") || api.StatusCode(err) != http.StatusConflict {
		t.Fatalf("resume: err = %v", err)
	}
	if r := f.last(t, "/api/command/5/resume"); r.Method != http.MethodPost {
		t.Fatalf("resume method = %s", r.Method)
	}
}

// TestCLI_TaskListByOwner: --user asks the host for one owner's tasks,
// --mine for those of the account the token authenticates (whoami); the
// table has an OWNER column; the two flags exclude each other.
func TestCLI_TaskListByOwner(t *testing.T) {
	f := newFakeHost(t)
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	f.handle("GET /api/tasks", http.StatusOK, []fsm.Task{
		{TaskID: 7, Status: fsm.StatusRunning, AssignedNode: "n1", RequiredCores: 1, Owner: "alice", SubmittedAt: now, Command: "true"},
		{TaskID: 6, Status: fsm.StatusPending, RequiredCores: 1, SubmittedAt: now, Command: "true"},
	})
	f.handle("GET /api/auth/whoami", http.StatusOK, api.WhoAmI{User: "alice", Role: fsm.RoleUser})
	out, _, err := runCLI(t, "--host", f.srv.URL, "task", "list", "--user", "alice")
	if err != nil {
		t.Fatalf("list --user: %v", err)
	}
	if q := f.last(t, "/api/tasks").Query; q != "user=alice" {
		t.Errorf("--user alice: query %q", q)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || strings.Join(strings.Fields(lines[0])[:6], " ") != "TASK ID STATUS NODE CORES OWNER" {
		t.Fatalf("want the OWNER column after CORES:\n%s", out)
	}
	if got := strings.Join(strings.Fields(lines[1])[:5], " "); got != "7 running n1 1 alice" {
		t.Errorf("row %q", got)
	}
	if got := strings.Join(strings.Fields(lines[2])[:5], " "); got != "6 pending - 1 -" {
		t.Errorf("row without an owner %q", got)
	}
	if _, _, err := runCLI(t, "--host", f.srv.URL, "task", "list", "--mine", "--status", "running"); err != nil {
		t.Fatalf("list --mine: %v", err)
	}
	if q := f.last(t, "/api/tasks").Query; q != "status=running&user=alice" {
		t.Errorf("--mine: query %q, want the whoami user", q)
	}
	if _, _, err := runCLI(t, "--host", f.srv.URL, "task", "list", "--mine", "--user", "bob"); err == nil || !strings.Contains(err.Error(), "mine") {
		t.Errorf("--mine with --user: err = %v", err)
	}
	if _, _, err := runCLI(t, "--host", f.srv.URL, "task", "list", "--user", "Bad Name"); err == nil || !strings.Contains(err.Error(), "--user") {
		t.Errorf("bad --user: err = %v", err)
	}
}

// TestCLI_TaskStatusOwner: task status shows the owner and the Unix
// account the task runs as: without run_as, runner_user or nobody, or the
// runner's default with allow_root.
func TestCLI_TaskStatusOwner(t *testing.T) {
	f := newFakeHost(t)
	f.handle("GET /api/status/70", http.StatusOK, fsm.Task{TaskID: 70, TaskType: fsm.TaskCommand, Status: fsm.StatusRunning, Command: "true", Owner: "alice", RunAs: "4242:4242"})
	f.handle("GET /api/status/71", http.StatusOK, fsm.Task{TaskID: 71, TaskType: fsm.TaskCommand, Status: fsm.StatusRunning, Command: "true"})
	out, _, err := runCLI(t, "--host", f.srv.URL, "task", "status", "70")
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	for _, want := range []string{"Owner:", "alice", "Runs as:", "4242:4242"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	out, _, err = runCLI(t, "--host", f.srv.URL, "task", "status", "71")
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	if !strings.Contains(out, "runner_user") || !strings.Contains(out, "nobody") {
		t.Errorf("a task without run_as nor allow_root does not say it runs as runner_user or nobody:\n%s", out)
	}
	f.handle("GET /api/status/72", http.StatusOK, fsm.Task{TaskID: 72, TaskType: fsm.TaskCommand, Status: fsm.StatusRunning, Command: "true", AllowRoot: true})
	out, _, err = runCLI(t, "--host", f.srv.URL, "task", "status", "72")
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	if !strings.Contains(out, "runner default") || strings.Contains(out, "nobody") {
		t.Errorf("a task with allow_root does not say it runs as the runner's default:\n%s", out)
	}
}

// TestCLI_TaskKillBatch: an ID that is no task but a batch is killed as a
// batch in one call; a name two unrelated tasks carry is refused listing
// both.
func TestCLI_TaskKillBatch(t *testing.T) {
	f := newFakeHost(t)
	f.handle("POST /api/kill/{id}", http.StatusNotFound, api.ErrorResponse{Error: "task 90 not found"})
	f.mux.HandleFunc("GET /api/tasks", func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Query().Get("batch") == "90":
			reply(w, http.StatusOK, []fsm.Task{{TaskID: 91, BatchID: 90, Status: fsm.StatusRunning}})
		case r.URL.Query().Get("name") == "twin":
			reply(w, http.StatusOK, []fsm.Task{{TaskID: 7, Name: "twin", Status: fsm.StatusRunning}, {TaskID: 8, Name: "twin", Status: fsm.StatusPending}})
		default:
			reply(w, http.StatusOK, []fsm.Task{})
		}
	})
	f.handle("POST /api/batch/90/kill", http.StatusOK, api.BatchActionResponse{Message: "Kill requested for 1 of the 1 tasks of batch 90.", BatchID: "90", Acted: []string{"91"}})
	out, _, err := runCLI(t, "--host", f.srv.URL, "task", "kill", "90")
	if err != nil || out != "Kill requested for 1 of the 1 tasks of batch 90.\n" {
		t.Fatalf("kill batch: out = %q, err = %v", out, err)
	}
	if _, _, err := runCLI(t, "--host", f.srv.URL, "task", "kill", "twin"); err == nil || !strings.Contains(err.Error(), "ambiguous") || !strings.Contains(err.Error(), "7 (running)") || !strings.Contains(err.Error(), "8 (pending)") {
		t.Fatalf("ambiguous name: %v", err)
	}
	if _, _, err := runCLI(t, "--host", f.srv.URL, "task", "kill", "nobody"); err == nil || !strings.Contains(err.Error(), `no task is named "nobody"`) {
		t.Fatalf("unknown name: %v", err)
	}
}

func TestCompactList(t *testing.T) {
	var many []string
	for i := 0; i < 10000; i++ {
		many = append(many, strconv.Itoa(i))
	}
	for _, tc := range []struct {
		in   []string
		want string
	}{
		{[]string{"3"}, "3"},
		{[]string{"1", "2", "3", "7", "9", "10"}, "1-3, 7, 9-10"},
		{many, "0-9999"},
		{[]string{"1", "3", "5", "7"}, "1, 3, ... (2 more)"},
	} {
		max := 20
		if len(tc.in) == 4 {
			max = 2
		}
		if got := compactList(tc.in, max); got != tc.want {
			t.Errorf("compactList(%d items) = %q, want %q", len(tc.in), got, tc.want)
		}
	}
}

// TestCLI_TaskListExitAndElapsed: the table shows each task's exit code
// and how long it ran (sacct's [D-]HH:MM:SS), "-" for what it does not
// have yet.
func TestCLI_TaskListExitAndElapsed(t *testing.T) {
	f := newFakeHost(t)
	sub := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	start := sub.Add(time.Minute)
	end := start.Add(time.Hour + 2*time.Minute + 3*time.Second)
	long := start.Add(26*time.Hour + 5*time.Second)
	runStart := time.Now().Add(-90 * time.Second)
	f.handle("GET /api/tasks", http.StatusOK, []fsm.Task{
		{TaskID: 5, Status: fsm.StatusFailed, AssignedNode: "n1", RequiredCores: 1, Owner: "bob", ExitCode: ptr(3), StartedAt: &start, CompletedAt: &end, SubmittedAt: sub, Command: "false"},
		{TaskID: 4, Status: fsm.StatusCompleted, AssignedNode: "n1", RequiredCores: 1, Owner: "bob", ExitCode: ptr(0), StartedAt: &start, CompletedAt: &long, SubmittedAt: sub, Command: "true"},
		{TaskID: 3, Status: fsm.StatusRunning, AssignedNode: "n1", RequiredCores: 1, Owner: "bob", StartedAt: &runStart, SubmittedAt: sub, Command: "sleep"},
		{TaskID: 2, Status: fsm.StatusPending, RequiredCores: 1, Owner: "bob", SubmittedAt: sub, Command: "true"},
	})
	out, _, err := runCLI(t, "--host", f.srv.URL, "task", "list")
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 5 || strings.Join(strings.Fields(lines[0])[:8], " ") != "TASK ID STATUS NODE CORES OWNER EXIT ELAPSED" {
		t.Fatalf("want EXIT and ELAPSED columns after OWNER:\n%s", out)
	}
	cols := func(i int) string { return strings.Join(strings.Fields(lines[i])[:7], " ") }
	for i, want := range []string{"5 failed n1 1 bob 3 01:02:03", "4 completed n1 1 bob 0 1-02:00:05", "2 pending - 1 bob - -"} {
		row := i + 1
		if i == 2 {
			row = 4
		}
		if got := cols(row); got != want {
			t.Errorf("row %d = %q, want %q", row, got, want)
		}
	}
	// A running task counts to now: at least the 90 s it has run, no exit code.
	f3 := strings.Fields(lines[3])
	if f3[5] != "-" || f3[6] < "00:01:30" || !strings.HasPrefix(f3[6], "00:0") {
		t.Errorf("running task: exit %q elapsed %q, want - and about 00:01:30", f3[5], f3[6])
	}
}

// TestCLI_BatchFailuresGrouped: a batch action whose thousands of tasks
// failed for one reason prints one line for that reason (with a few task
// IDs), not one line per task; many distinct reasons stop after
// maxFailureLines lines; --output json keeps every failure.
func TestCLI_BatchFailuresGrouped(t *testing.T) {
	f := newFakeHost(t)
	resp := api.BatchActionResponse{BatchID: "90", Message: "Kill requested for 0 of the 5012 tasks of batch 90. 5012 failed.", Acted: []string{}}
	for i := range 5000 {
		resp.Failed = append(resp.Failed, api.FailedTask{TaskID: strconv.Itoa(100 + i), Reason: "not the leader: node is not the leader"})
	}
	for i := range 12 {
		resp.Failed = append(resp.Failed, api.FailedTask{TaskID: strconv.Itoa(9000 + i), Reason: fmt.Sprintf("reason %d", i)})
	}
	f.handle("POST /api/batch/90/kill", http.StatusOK, resp)
	_, errOut, err := runCLI(t, "--host", f.srv.URL, "task", "kill", "--batch", "90")
	if err == nil || !strings.Contains(err.Error(), "kill failed for 5012 tasks of batch 90") {
		t.Fatalf("err = %v", err)
	}
	lines := strings.Split(strings.TrimSpace(errOut), "\n")
	if len(lines) != maxFailureLines+1 {
		t.Fatalf("%d lines of failures, want %d:\n%s", len(lines), maxFailureLines+1, errOut)
	}
	if want := "5000 tasks (100, 101, 102 and 4997 more): not the leader: node is not the leader"; lines[0] != want {
		t.Errorf("first line %q, want %q", lines[0], want)
	}
	if want := "task 9000: reason 0"; lines[1] != want {
		t.Errorf("second line %q, want %q", lines[1], want)
	}
	if want := "... 3 more tasks failed for 3 other reasons (--output json lists every one)"; lines[maxFailureLines] != want {
		t.Errorf("last line %q, want %q", lines[maxFailureLines], want)
	}
	out, _, _ := runCLI(t, "--host", f.srv.URL, "-o", "json", "task", "kill", "--batch", "90")
	var got api.BatchActionResponse
	mustJSON(t, out, &got)
	if len(got.Failed) != 5012 {
		t.Errorf("json lists %d failures, want 5012", len(got.Failed))
	}
}

// TestCLI_SubmitArrayNamesBatch: an array's batch ID goes to stderr, so
// that it can be found for task status, wait and kill, while stdout keeps
// one task ID a line.
func TestCLI_SubmitArrayNamesBatch(t *testing.T) {
	f := newFakeHost(t)
	f.handle("POST /api/submit", http.StatusAccepted, api.SubmitResponse{Message: "ok", TaskIDs: []string{"21", "22", "23"}, BatchID: "20"})
	out, errOut, err := runCLI(t, "--host", f.srv.URL, "task", "submit", "--array", "0-2", "--container", "NULL", "--", "echo", "x")
	if err != nil {
		t.Fatalf("submit: %v", err)
	}
	if out != "21\n22\n23\n" || !strings.Contains(errOut, "batch 20 (3 tasks)") {
		t.Fatalf("stdout %q, stderr %q; want the task IDs, and the batch ID on stderr", out, errOut)
	}
}

// TestCLI_LogsOfBatchID: logs asked for a batch ID say it is a batch and
// how to find its tasks, not just "not found".
func TestCLI_LogsOfBatchID(t *testing.T) {
	f := newFakeHost(t)
	f.handle("GET /api/task/{id}/stdout", http.StatusNotFound, api.ErrorResponse{Error: "task 90 not found"})
	f.handle("GET /api/status/{id}", http.StatusNotFound, api.ErrorResponse{Error: "task 90 not found"})
	f.mux.HandleFunc("GET /api/tasks", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("batch") == "90" {
			reply(w, http.StatusOK, []fsm.Task{{TaskID: 91, BatchID: 90, Status: fsm.StatusRunning}})
			return
		}
		reply(w, http.StatusOK, []fsm.Task{})
	})
	_, _, err := runCLI(t, "--host", f.srv.URL, "task", "logs", "90")
	if err == nil || !strings.Contains(err.Error(), "90 is a batch ID") || !strings.Contains(err.Error(), "task list --batch 90") {
		t.Fatalf("logs of a batch ID: %v", err)
	}
	if _, _, err := runCLI(t, "--host", f.srv.URL, "task", "logs", "77"); err == nil || strings.Contains(err.Error(), "batch") {
		t.Fatalf("logs of an unknown ID: %v, want not found", err)
	}
}
