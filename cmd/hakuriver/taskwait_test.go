package main

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/fsm"
)

func TestCLI_TaskWait(t *testing.T) {
	f := newFakeHost(t)
	var mu sync.Mutex
	polls := map[string]int{}
	f.mux.HandleFunc("GET /api/status/{id}", func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		mu.Lock()
		polls[id]++
		n := polls[id]
		mu.Unlock()
		if n < 3 {
			reply(w, http.StatusOK, fsm.Task{TaskID: 1, Status: fsm.StatusRunning})
			return
		}
		switch id {
		case "1":
			reply(w, http.StatusOK, fsm.Task{TaskID: 1, Status: fsm.StatusCompleted, ExitCode: ptr(0), AssignedNode: "n1"})
		case "2":
			reply(w, http.StatusOK, fsm.Task{TaskID: 2, Status: fsm.StatusFailed, ExitCode: ptr(3), AssignedNode: "n1"})
		case "3":
			reply(w, http.StatusOK, fsm.Task{TaskID: 3, Status: fsm.StatusKilledOOM, ExitCode: ptr(-9)})
		default:
			reply(w, http.StatusOK, fsm.Task{TaskID: 4, Status: fsm.StatusLost, ErrorMessage: "runner gone"})
		}
	})
	poll := []string{"--host", f.srv.URL, "task", "wait", "--poll-interval", "5ms"}

	// All completed: success, each task reported on stdout.
	out, _, err := runCLI(t, append(poll, "1")...)
	if err != nil || out != "task 1: completed (exit code 0) on n1\n" {
		t.Fatalf("out = %q, err = %v", out, err)
	}

	// One task that failed with an exit code: the process exits with it.
	_, _, err = runCLI(t, append(poll, "2")...)
	var ec *exitCodeError
	if !errors.As(err, &ec) || ec.ExitCode() != 3 || err.Error() != "1 of 1 tasks did not complete: 2 failed (exit code 3)" {
		t.Fatalf("err = %#v (%v), want exit code 3", err, err)
	}
	// Killed by a signal: 128+N, as a shell reports it.
	_, _, err = runCLI(t, append(poll, "3")...)
	if !errors.As(err, &ec) || ec.ExitCode() != 137 {
		t.Fatalf("err = %v, want exit code 137", err)
	}
	// No exit code: a plain error (exit code 1).
	_, _, err = runCLI(t, append(poll, "4")...)
	if err == nil || errors.As(err, &ec) || !strings.Contains(err.Error(), "4 lost") {
		t.Fatalf("err = %#v", err)
	}
	// Several tasks: every one that did not complete is listed; no task's
	// own exit code is used. Duplicate IDs are waited for once.
	out, _, err = runCLI(t, append(poll, "1", "2", "4", "2")...)
	if err == nil || errors.As(err, &ec) || err.Error() != "2 of 3 tasks did not complete: 2 failed (exit code 3), 4 lost" {
		t.Fatalf("err = %v", err)
	}
	for _, want := range []string{"task 1: completed", "task 2: failed (exit code 3) on n1", "task 4: lost: runner gone"} {
		if !strings.Contains(out, want) {
			t.Errorf("out lacks %q:\n%s", want, out)
		}
	}

	// JSON: the final tasks on stdout, the progress on stderr.
	out, errOut, err := runCLI(t, "--host", f.srv.URL, "-o", "json", "task", "wait", "1", "2")
	if err == nil {
		t.Fatalf("want an error: task 2 failed")
	}
	var got []fsm.Task
	mustJSON(t, out, &got)
	if len(got) != 2 || got[0].Status != fsm.StatusCompleted || got[1].Status != fsm.StatusFailed || *got[1].ExitCode != 3 {
		t.Fatalf("json = %+v", got)
	}
	if !strings.Contains(errOut, "task 2: failed") {
		t.Fatalf("stderr = %q", errOut)
	}
}

func TestCLI_TaskWaitTimeout(t *testing.T) {
	f := newFakeHost(t)
	f.handle("GET /api/status/8", http.StatusOK, fsm.Task{TaskID: 8, Status: fsm.StatusCompleted})
	f.handle("GET /api/status/9", http.StatusOK, fsm.Task{TaskID: 9, Status: fsm.StatusRunning})
	start := time.Now()
	_, _, err := runCLI(t, "--host", f.srv.URL, "task", "wait", "--timeout", "150ms", "--poll-interval", "10ms", "8", "9")
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "still unfinished: 9 running") || strings.Contains(err.Error(), "8 ") {
		t.Fatalf("err = %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("took %s", d)
	}
	// The global --timeout, given before the subcommand, is wait's too.
	_, _, err = runCLI(t, "--host", f.srv.URL, "--timeout", "50ms", "task", "wait", "--poll-interval", "10ms", "9")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
}

func TestCLI_TaskWaitBadFlags(t *testing.T) {
	f := newFakeHost(t)
	for _, args := range [][]string{
		{"--timeout", "-1s", "1"},
		{"--poll-interval", "0s", "1"},
		{" "},
		{},
	} {
		if _, _, err := runCLI(t, append([]string{"--host", f.srv.URL, "task", "wait"}, args...)...); err == nil {
			t.Errorf("wait %q: want an error", args)
		}
	}
	if n := len(f.requests()); n != 0 {
		t.Fatalf("bad flags sent %d requests", n)
	}
}
