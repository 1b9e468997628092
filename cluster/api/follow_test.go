package api_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/fsm"
)

// fakeLog is a task's stdout on a fake replica: missing until written,
// growing by one chunk per read, served at most max bytes per answer.
type fakeLog struct {
	mu      sync.Mutex
	chunks  []string // appended one per read once the file exists
	content string
	exists  bool
	missing int // reads answered 404 before the file appears
	status  fsm.Status
	max     int
	noFile  bool // the task ends without ever writing the file
}

func (f *fakeLog) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if strings.HasPrefix(r.URL.Path, "/api/status/") {
		writeJSON(w, http.StatusOK, fsm.Task{TaskID: 7, Status: f.status})
		return
	}
	if f.noFile || f.missing > 0 {
		f.missing--
		writeJSON(w, http.StatusNotFound, api.ErrorResponse{Error: "stdout file of task 7 not found"})
		return
	}
	var off int
	if v := r.URL.Query().Get("offset"); v != "" {
		fmt.Sscan(v, &off) //nolint:errcheck // the client sends numbers
	}
	if len(f.chunks) > 0 {
		f.content += f.chunks[0]
		f.chunks = f.chunks[1:]
		if len(f.chunks) == 0 {
			f.status = fsm.StatusCompleted
		}
	}
	end := min(len(f.content), off+f.max)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set(api.LogOffsetHeader, fmt.Sprint(end))
	w.Header().Set(api.TaskStatusHeader, string(f.status))
	_, _ = io.WriteString(w, f.content[off:end]) // a short write shows as a wrong body
}

func logReader(t *testing.T, f *fakeLog, out io.Writer, warns *[]string) *api.LogReader {
	srv := newRecorder(t, f.serve)
	return &api.LogReader{Client: newClient(t, nil, srv.srv.URL), TaskID: "7", Stream: api.StreamStdout, W: out,
		Poll: api.PollOptions{Interval: time.Millisecond, CallTimeout: 5 * time.Second, NotFoundGrace: time.Minute,
			Warn: func(err error) { *warns = append(*warns, err.Error()) }}}
}

// TestLogReader_Dump: a log longer than one answer is copied whole; a
// missing file is an error at once.
func TestLogReader_Dump(t *testing.T) {
	var out bytes.Buffer
	var warns []string
	r := logReader(t, &fakeLog{content: "0123456789abcdef", status: fsm.StatusRunning, max: 5}, &out, &warns)
	if err := r.Dump(ctxT(t)); err != nil || out.String() != "0123456789abcdef" || r.Offset != 16 {
		t.Fatalf("Dump = %v, %q, offset %d", err, out.String(), r.Offset)
	}
	out.Reset()
	r = logReader(t, &fakeLog{missing: 1, status: fsm.StatusPending, max: 5}, &out, &warns)
	if err := r.Dump(ctxT(t)); api.StatusCode(err) != http.StatusNotFound {
		t.Fatalf("Dump of a missing file = %v, want a 404", err)
	}
}

// TestLogReader_Follow: following waits for the file, copies every byte as
// it is appended, and stops once the task ended and everything was read; a
// task that ended without the file stops it with an error.
func TestLogReader_Follow(t *testing.T) {
	var out bytes.Buffer
	var warns []string
	f := &fakeLog{missing: 3, chunks: []string{"hello ", "", "wor", "ld\n"}, status: fsm.StatusRunning, max: 4}
	if err := logReader(t, f, &out, &warns).Follow(ctxT(t)); err != nil {
		t.Fatalf("Follow: %v", err)
	}
	if out.String() != "hello world\n" || len(warns) != 0 {
		t.Fatalf("followed %q, warnings %q", out.String(), warns)
	}

	out.Reset()
	f = &fakeLog{noFile: true, status: fsm.StatusFailed, max: 4}
	err := logReader(t, f, &out, &warns).Follow(ctxT(t))
	if err == nil || !strings.Contains(err.Error(), "task 7 ended failed without a stdout file") || api.StatusCode(err) != http.StatusNotFound {
		t.Fatalf("Follow of a task that wrote nothing = %v", err)
	}
	if err := (&api.LogReader{Client: newClient(t, nil, "http://127.0.0.1:1")}).Follow(ctxT(t)); err == nil {
		t.Fatal("a zero poll interval was accepted")
	}
}
