package main

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/fsm"
)

// fakeLog serves one task's log as the host does: ?offset=, the next offset
// and the task status in headers, 404 while the file does not exist. step
// runs before each log read (1-based) to change the state.
type fakeLog struct {
	mu      sync.Mutex
	exists  bool
	content []byte
	status  fsm.Status
	chunk   int // at most this many bytes per answer; 0: all
	reads   int
	offsets []int64 // the ?offset= of every log read
	step    func(l *fakeLog, read int)
}

func (l *fakeLog) install(f *fakeHost) {
	f.mux.HandleFunc("GET /api/task/{id}/{stream}", func(w http.ResponseWriter, r *http.Request) {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.reads++
		if l.step != nil {
			l.step(l, l.reads)
		}
		var off int64
		if v := r.URL.Query().Get("offset"); v != "" {
			var err error
			if off, err = strconv.ParseInt(v, 10, 64); err != nil {
				reply(w, http.StatusBadRequest, api.ErrorResponse{Error: "bad offset"})
				return
			}
		}
		l.offsets = append(l.offsets, off)
		if !l.exists {
			w.Header().Set(api.LogOffsetHeader, "0")
			reply(w, http.StatusNotFound, api.ErrorResponse{Error: r.PathValue("stream") + " file of task " + r.PathValue("id") + " not found (might not be generated yet)"})
			return
		}
		data := l.content[min(int(off), len(l.content)):]
		if l.chunk > 0 && len(data) > l.chunk {
			data = data[:l.chunk]
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set(api.LogOffsetHeader, strconv.FormatInt(off+int64(len(data)), 10))
		w.Header().Set(api.TaskStatusHeader, string(l.status))
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(data) // a short write shows as missing output
	})
	f.mux.HandleFunc("GET /api/status/{id}", func(w http.ResponseWriter, r *http.Request) {
		l.mu.Lock()
		st := l.status
		l.mu.Unlock()
		reply(w, http.StatusOK, fsm.Task{TaskID: 5, Status: st})
	})
}

func TestCLI_TaskLogsFollow(t *testing.T) {
	f := newFakeHost(t)
	l := &fakeLog{status: fsm.StatusRunning, chunk: 4, step: func(l *fakeLog, n int) {
		switch n {
		case 3:
			l.exists = true
			l.content = append(l.content, "line 1\n"...)
		case 5, 7:
			l.content = append(l.content, "line "+strconv.Itoa(n)+"\n"...)
		case 9:
			// The last bytes land as the task ends: they must still be printed.
			l.content = append(l.content, "last words\n"...)
			l.status = fsm.StatusCompleted
		}
	}}
	l.install(f)
	out, errOut, err := runCLI(t, "--host", f.srv.URL, "task", "logs", "--follow", "--poll-interval", "5ms", "5")
	if err != nil {
		t.Fatalf("logs --follow: %v (stderr %q)", err, errOut)
	}
	want := "line 1\nline 5\nline 7\nlast words\n"
	if out != want {
		t.Fatalf("out = %q, want %q", out, want)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	// Every read asks for the bytes after the last one printed, and the
	// follow ends with one empty read at the end of the file.
	var at int64
	for i, off := range l.offsets {
		if off < at {
			t.Fatalf("read %d asked offset %d after %d bytes were printed: %v", i+1, off, at, l.offsets)
		}
		at = off
	}
	if last := l.offsets[len(l.offsets)-1]; last != int64(len(want)) {
		t.Fatalf("last read at offset %d, want %d: %v", last, len(want), l.offsets)
	}
	if errOut != "" {
		t.Fatalf("a log not written yet must not warn: %q", errOut)
	}
	if p := f.last(t, "/api/task/5/stdout"); p.Method != http.MethodGet {
		t.Fatalf("method = %s", p.Method)
	}
}

func TestCLI_TaskLogsFollowFinalWithoutFile(t *testing.T) {
	f := newFakeHost(t)
	l := &fakeLog{status: fsm.StatusFailed}
	l.install(f)
	_, _, err := runCLI(t, "--host", f.srv.URL, "task", "logs", "-f", "--stderr", "--poll-interval", "5ms", "5")
	if err == nil || !strings.Contains(err.Error(), "ended failed without a stderr file") || api.StatusCode(err) != http.StatusNotFound {
		t.Fatalf("err = %v", err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.reads != 2 {
		t.Fatalf("%d reads, want 2 (one more once the task was seen final)", l.reads)
	}
}

func TestCLI_TaskLogsFollowStopsOnBadRequest(t *testing.T) {
	f := newFakeHost(t)
	f.handle("GET /api/task/{id}/stdout", http.StatusBadRequest, api.ErrorResponse{Error: "VPS tasks do not have stdout."})
	_, _, err := runCLI(t, "--host", f.srv.URL, "task", "logs", "--follow", "--poll-interval", "5ms", "5")
	if err == nil || !strings.Contains(err.Error(), "VPS tasks do not have stdout.") {
		t.Fatalf("err = %v", err)
	}
}

func TestCLI_TaskLogsFollowBoundedByContext(t *testing.T) {
	f := newFakeHost(t)
	l := &fakeLog{status: fsm.StatusRunning, exists: true, content: []byte("tick\n")}
	l.install(f)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	root := testRoot()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs([]string{"--host", f.srv.URL, "task", "logs", "--follow", "--poll-interval", "10ms", "5"})
	start := time.Now()
	err := root.ExecuteContext(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want the context's", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("took %s after the context ended", d)
	}
	if out.String() != "tick\n" {
		t.Fatalf("out = %q", out.String())
	}
}

func TestCLI_TaskLogs(t *testing.T) {
	f := newFakeHost(t)
	content := strings.Repeat("0123456789", 10)
	l := &fakeLog{status: fsm.StatusRunning, exists: true, content: []byte(content), chunk: 32}
	l.install(f)
	// Without --follow the whole file is printed, over several answers.
	out, _, err := runCLI(t, "--host", f.srv.URL, "task", "logs", "5")
	if err != nil || out != content {
		t.Fatalf("out = %q, err = %v", out, err)
	}
	if p := f.last(t, "/api/task/5/stdout"); p.Query != "offset=100" {
		t.Fatalf("last query = %q", p.Query)
	}
	out, _, err = runCLI(t, "--host", f.srv.URL, "task", "logs", "--stderr", "5")
	if err != nil || out != content {
		t.Fatalf("stderr: out = %q, err = %v", out, err)
	}
	f.last(t, "/api/task/5/stderr")

	// Without --follow a missing file is an error with the host's message.
	f2 := newFakeHost(t)
	(&fakeLog{status: fsm.StatusRunning}).install(f2)
	_, _, err = runCLI(t, "--host", f2.srv.URL, "task", "logs", "5")
	if err == nil || !strings.Contains(err.Error(), "stdout file of task 5 not found (might not be generated yet)") {
		t.Fatalf("err = %v", err)
	}
	if _, _, err := runCLI(t, "--host", f2.srv.URL, "task", "logs", "-f", "--poll-interval", "0s", "5"); err == nil || !strings.Contains(err.Error(), "--poll-interval") {
		t.Fatalf("err = %v", err)
	}
}
