package main

import (
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
)

func TestCLI_Queue(t *testing.T) {
	f := newFakeHost(t)
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	entries := []api.QueueEntry{
		{TaskID: "1003", Priority: 10, Command: "python", Reason: "no node has 4 cores free", SubmittedAt: at.Format(time.RFC3339)},
		{TaskID: "1001", Command: "./report.sh", TargetNode: "node2", Reason: "waiting for 1000", SubmittedAt: at.Add(-time.Minute).Format(time.RFC3339)},
		{TaskID: "1002", Priority: -5, Command: "echo", SubmittedAt: "not a time"},
	}
	f.handle("GET /api/queue", http.StatusOK, entries)

	out, _, err := runCLI(t, "--host", f.srv.URL, "queue")
	if err != nil {
		t.Fatalf("queue: %v", err)
	}
	if r := f.last(t, "/api/queue"); r.Method != http.MethodGet || r.Query != "" {
		t.Fatalf("request = %s ?%s", r.Method, r.Query)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 {
		t.Fatalf("want a header and 3 rows:\n%s", out)
	}
	head := strings.Join(strings.Fields(lines[0]), " ")
	if head != "TASK ID PRIORITY TARGET WAITING FOR SUBMITTED COMMAND" {
		t.Errorf("header = %q", head)
	}
	// Queue order is the host's; reasons are shown whole.
	want := []string{
		"1003 10 - no node has 4 cores free " + formatTime(at) + " python",
		"1001 0 node2 waiting for 1000 " + formatTime(at.Add(-time.Minute)) + " ./report.sh",
		"1002 -5 - - not a time echo",
	}
	for i, w := range want {
		if got := strings.Join(strings.Fields(lines[i+1]), " "); got != w {
			t.Errorf("row %d = %q, want %q", i, got, w)
		}
	}

	out, _, err = runCLI(t, "--host", f.srv.URL, "-o", "json", "queue")
	if err != nil {
		t.Fatalf("queue json: %v", err)
	}
	var got []api.QueueEntry
	mustJSON(t, out, &got)
	if !reflect.DeepEqual(got, entries) {
		t.Fatalf("json = %+v", got)
	}
}

func TestCLI_QueueEmpty(t *testing.T) {
	f := newFakeHost(t)
	f.handle("GET /api/queue", http.StatusOK, nil)
	out, _, err := runCLI(t, "--host", f.srv.URL, "queue")
	if err != nil || out != "Queue is empty.\n" {
		t.Fatalf("out = %q, err = %v", out, err)
	}
	out, _, err = runCLI(t, "--host", f.srv.URL, "-o", "json", "queue")
	if err != nil || strings.TrimSpace(out) != "[]" {
		t.Fatalf("json out = %q, err = %v", out, err)
	}
	if _, _, err := runCLI(t, "--host", f.srv.URL, "queue", "extra"); err == nil {
		t.Fatalf("queue with an argument must fail")
	}
}

func TestCLI_QueueError(t *testing.T) {
	f := newFakeHost(t)
	f.handle("GET /api/queue", http.StatusInternalServerError, api.ErrorResponse{Error: "boom"})
	_, _, err := runCLI(t, "--host", f.srv.URL, "queue")
	if api.StatusCode(err) != http.StatusInternalServerError || !strings.Contains(err.Error(), "list queue") || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("err = %v", err)
	}
}
