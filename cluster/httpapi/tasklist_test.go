package httpapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/fsm"
)

func TestTaskListTextFilterAndSummaryView(t *testing.T) {
	exit := 3
	cmd := task(1, fsm.StatusFailed)
	cmd.Command, cmd.Arguments, cmd.ExitCode, cmd.Owner = "python", []string{"train.py", "--name", "a b"}, &exit, "alice"
	cmd.EnvVars = map[string]string{"SECRET": "s3cret"}
	huge := task(2, fsm.StatusRunning)
	huge.Command, huge.Arguments = "echo", []string{strings.Repeat("x", 1<<20), "tail"}
	vps := task(3, fsm.StatusRunning)
	vps.TaskType, vps.Command = fsm.TaskVPS, "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKey user@laptop"
	f := newFixture(t, newFakeState([]*fsm.Task{cmd, huge, vps}), Deps{})

	list := func(query string) []api.TaskSummary {
		t.Helper()
		resp, body := f.do(t, "GET", "/api/tasks?view=summary&"+query, "")
		var got []api.TaskSummary
		if resp.StatusCode != http.StatusOK || json.Unmarshal([]byte(body), &got) != nil {
			t.Fatalf("%s: %d %s", query, resp.StatusCode, body)
		}
		return got
	}
	idsOf := func(rows []api.TaskSummary) string {
		var s []string
		for _, r := range rows {
			s = append(s, fmt.Sprint(r.TaskID))
		}
		return strings.Join(s, ",")
	}
	if got := idsOf(list("text=" + url.QueryEscape("train.py --name"))); got != "1" {
		t.Errorf("text=train.py --name: %s, want 1", got)
	}
	if got := idsOf(list("text=ssh-ed25519")); got != "" {
		t.Errorf("text=ssh-ed25519 matched %s: a VPS key is not a command line", got)
	}
	if got := idsOf(list("type=vps")); got != "3" {
		t.Errorf("type=vps: %s", got)
	}
	rows := list("")
	if idsOf(rows) != "3,2,1" {
		t.Fatalf("summary list %s", idsOf(rows))
	}
	if rows[0].Command != "" || rows[0].TaskType != fsm.TaskVPS {
		t.Errorf("VPS row carries command %q: its SSH key must not be listed", rows[0].Command)
	}
	if !rows[1].Truncated || len(rows[1].Command)+len(strings.Join(rows[1].Arguments, " ")) > api.SummaryCommandBytes {
		t.Errorf("1 MiB argument listed as %d bytes (truncated=%v)", len(strings.Join(rows[1].Arguments, " ")), rows[1].Truncated)
	}
	r := rows[2]
	if r.ExitCode == nil || *r.ExitCode != 3 || r.Owner != "alice" || r.Truncated || strings.Join(r.Arguments, "|") != "train.py|--name|a b" {
		t.Errorf("row of task 1: %+v", r)
	}
	resp, body := f.do(t, "GET", "/api/tasks?view=summary", "")
	if strings.Contains(body, "s3cret") || strings.Contains(body, "SECRET") || strings.Contains(body, "AAAAC3") {
		t.Errorf("summary view leaks env or key: %s", body)
	}
	if len(body) > 4096 {
		t.Errorf("summary of 3 tasks (one with a 1 MiB argument) is %d bytes", len(body))
	}
	_ = resp

	for _, bad := range []struct{ query, field string }{
		{"text=" + strings.Repeat("a", fsm.MaxFilterText+1), "text"},
		{"text=%ff", "text"},
		{"view=fancy", "view"},
		{"type=batch", "type"},
		{"batch=x", "batch"},
		{"status=done", "status"},
	} {
		resp, body := f.do(t, "GET", "/api/tasks?"+bad.query, "")
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, bad.field) {
			t.Errorf("%s: %d %s, want 400 naming %s", bad.query, resp.StatusCode, body, bad.field)
		}
	}
}

// TestLogFollowFromBeforeTheFileExists follows a task's stdout as the
// dashboard does: ?missing=empty answers an empty 200 until the runner
// writes the file, then the bytes from the offset on.
func TestLogFollowFromBeforeTheFileExists(t *testing.T) {
	tk := task(7, fsm.StatusRunning)
	tk.StdoutPath = "/elsewhere/task_outputs/7.out"
	f := newFixture(t, newFakeState([]*fsm.Task{tk}), Deps{})
	resp, body := f.do(t, "GET", "/api/task/7/stdout?offset=0&missing=empty", "")
	if resp.StatusCode != http.StatusOK || body != "" || resp.Header.Get("X-Hakuriver-Offset") != "0" || resp.Header.Get("X-Hakuriver-Log-Missing") != "true" {
		t.Fatalf("missing file with missing=empty: %d %q %v", resp.StatusCode, body, resp.Header)
	}
	if resp, _ := f.do(t, "GET", "/api/task/7/stdout", ""); resp.StatusCode != http.StatusNotFound {
		t.Errorf("missing file without missing=empty: %d, want 404", resp.StatusCode)
	}
	dir := filepath.Join(f.shared, "task_outputs")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "7.out"), []byte("hello\nworld\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	resp, body = f.do(t, "GET", "/api/task/7/stdout?offset=6&missing=empty", "")
	if resp.StatusCode != http.StatusOK || body != "world\n" || resp.Header.Get("X-Hakuriver-Offset") != "12" || resp.Header.Get("X-Hakuriver-Log-Missing") != "" {
		t.Fatalf("from offset 6: %d %q offset %q", resp.StatusCode, body, resp.Header.Get("X-Hakuriver-Offset"))
	}
}

// TestLogTail opens a log by its last bytes, as the dashboard does for a
// large log, then follows from the offset it was given.
func TestLogTail(t *testing.T) {
	tk := task(8, fsm.StatusRunning)
	tk.StdoutPath = "/x/task_outputs/8.out"
	f := newFixture(t, newFakeState([]*fsm.Task{tk}), Deps{})
	dir := filepath.Join(f.shared, "task_outputs")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "8.out"), []byte("0123456789"), 0o644); err != nil {
		t.Fatal(err)
	}
	resp, body := f.do(t, "GET", "/api/task/8/stdout?tail=4", "")
	if resp.StatusCode != http.StatusOK || body != "6789" || resp.Header.Get("X-Hakuriver-Start") != "6" || resp.Header.Get("X-Hakuriver-Offset") != "10" {
		t.Fatalf("tail=4: %d %q start %q offset %q", resp.StatusCode, body, resp.Header.Get("X-Hakuriver-Start"), resp.Header.Get("X-Hakuriver-Offset"))
	}
	if resp, body := f.do(t, "GET", "/api/task/8/stdout?tail=100", ""); body != "0123456789" || resp.Header.Get("X-Hakuriver-Start") != "0" {
		t.Errorf("tail beyond the size: %q start %q", body, resp.Header.Get("X-Hakuriver-Start"))
	}
	for _, q := range []string{"tail=0", "tail=x", "tail=4&offset=2"} {
		if resp, body := f.do(t, "GET", "/api/task/8/stdout?"+q, ""); resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "tail") {
			t.Errorf("%s: %d %s, want 400 naming tail", q, resp.StatusCode, body)
		}
	}
}
