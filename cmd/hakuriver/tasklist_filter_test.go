package main

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/hakuriver/hakuriver-ha/fsm"
)

func TestCLI_TaskListTypeAndText(t *testing.T) {
	f := newFakeHost(t)
	f.mux.HandleFunc("GET /api/tasks", func(w http.ResponseWriter, r *http.Request) {
		reply(w, http.StatusOK, []fsm.Task{})
	})
	if _, _, err := runCLI(t, "--host", f.srv.URL, "task", "list", "--type", "command", "--text", "train.py --lr"); err != nil {
		t.Fatalf("list: %v", err)
	}
	q, err := url.ParseQuery(f.last(t, "/api/tasks").Query)
	if err != nil || q.Get("type") != "command" || q.Get("text") != "train.py --lr" {
		t.Fatalf("query %v (%v), want type=command and text=train.py --lr", q, err)
	}
}
