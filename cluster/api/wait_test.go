package api_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/fsm"
)

// answer is one scripted reply of a fake replica: an HTTP status and a
// JSON body (a task or an error).
type answer struct {
	status int
	body   any
}

// script serves, for each path, its answers in order, repeating the last.
type script struct {
	mu    sync.Mutex
	paths map[string][]answer
	calls map[string]int
}

func newScript(tb testing.TB, paths map[string][]answer) *api.Client {
	c, _ := newScriptCounting(tb, paths)
	return c
}

// newScriptCounting is newScript that also returns the script, whose
// calls count the requests per path.
func newScriptCounting(tb testing.TB, paths map[string][]answer) (*api.Client, *script) {
	s := &script{paths: paths, calls: map[string]int{}}
	srv := newRecorder(tb, func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		as, ok := s.paths[r.URL.Path]
		n := s.calls[r.URL.Path]
		s.calls[r.URL.Path]++
		s.mu.Unlock()
		if !ok {
			writeJSON(w, http.StatusNotFound, api.ErrorResponse{Error: "no such path in the script"})
			return
		}
		a := as[min(n, len(as)-1)]
		writeJSON(w, a.status, a.body)
	})
	return newClient(tb, nil, srv.srv.URL), s
}

func task(id int64, st fsm.Status) answer {
	return answer{http.StatusOK, fsm.Task{TaskID: id, Status: st}}
}

func apiErr(status int, msg string) answer {
	return answer{status, api.ErrorResponse{Error: msg}}
}

func pollOpts(warns *[]string) api.PollOptions {
	return api.PollOptions{Interval: time.Millisecond, CallTimeout: 5 * time.Second, NotFoundGrace: time.Minute,
		Warn: func(err error) { *warns = append(*warns, err.Error()) }}
}

// TestClient_WaitTasks: a task the replica does not know yet and transient
// errors keep the wait going (each error warned once); the tasks come back
// in the order asked, each reported once as it ends.
func TestClient_WaitTasks(t *testing.T) {
	c := newScript(t, map[string][]answer{
		"/api/status/1": {apiErr(404, "task 1 not found"), task(1, fsm.StatusRunning), task(1, fsm.StatusCompleted)},
		"/api/status/2": {apiErr(500, "boom"), apiErr(500, "boom"), task(2, fsm.StatusFailed)},
	})
	var warns, ended []string
	tasks, err := c.WaitTasks(ctxT(t), []string{"2", "1"}, pollOpts(&warns), func(id string, tk fsm.Task) {
		ended = append(ended, fmt.Sprintf("%s %s", id, tk.Status))
	})
	if err != nil {
		t.Fatalf("WaitTasks: %v", err)
	}
	if len(tasks) != 2 || tasks[0].TaskID != 2 || tasks[0].Status != fsm.StatusFailed || tasks[1].TaskID != 1 || tasks[1].Status != fsm.StatusCompleted {
		t.Fatalf("tasks = %+v", tasks)
	}
	if strings.Join(ended, ",") != "2 failed,1 completed" {
		t.Fatalf("ended = %v", ended)
	}
	if len(warns) != 1 || !strings.Contains(warns[0], "boom") {
		t.Fatalf("warnings = %q, want one about boom", warns)
	}
}

func TestClient_WaitTasksStops(t *testing.T) {
	for _, tc := range []struct {
		name  string
		ans   []answer
		grace time.Duration
		want  string
	}{
		{"4xx", []answer{apiErr(400, "bad task id")}, time.Minute, "wait for task 9: get task 9: bad task id"},
		{"unknown past the grace", []answer{apiErr(404, "task 9 not found")}, time.Nanosecond, "task 9 not found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newScript(t, map[string][]answer{"/api/status/9": tc.ans})
			var warns []string
			o := pollOpts(&warns)
			o.NotFoundGrace = tc.grace
			_, err := c.WaitTasks(ctxT(t), []string{"9"}, o, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
	// The end of ctx names every unfinished task with its last status.
	c := newScript(t, map[string][]answer{"/api/status/1": {task(1, fsm.StatusRunning)}, "/api/status/2": {task(2, fsm.StatusCompleted)}})
	ctx, cancel := context.WithTimeout(ctxT(t), 50*time.Millisecond)
	defer cancel()
	var warns []string
	_, err := c.WaitTasks(ctx, []string{"1", "2"}, pollOpts(&warns), nil)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.HasSuffix(err.Error(), "still unfinished: 1 running") {
		t.Fatalf("err = %v", err)
	}
	if _, err := c.WaitTasks(ctxT(t), []string{"1"}, api.PollOptions{}, nil); err == nil {
		t.Fatal("a zero poll interval was accepted")
	}
}

func TestClient_WaitVPS(t *testing.T) {
	running := fsm.Task{TaskID: 5, Status: fsm.StatusRunning, TaskType: fsm.TaskVPS}
	withPort := running
	withPort.SSHPort = 2222
	for _, tc := range []struct {
		name  string
		ans   []answer
		grace time.Duration
		port  int
		want  string
	}{
		{"runs", []answer{apiErr(404, "not yet"), task(5, fsm.StatusPending), {200, running}, {200, withPort}}, time.Minute, 2222, ""},
		{"ends first", []answer{task(5, fsm.StatusPending), {200, fsm.Task{TaskID: 5, Status: fsm.StatusFailed, ErrorMessage: "no image"}}},
			time.Minute, 0, "VPS 5 failed before it ran: no image"},
		{"unknown past the grace", []answer{apiErr(404, "task 5 not found")}, time.Nanosecond, 0, "task 5 not found"},
		{"other error", []answer{apiErr(500, "boom")}, time.Minute, 0, "boom"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newScript(t, map[string][]answer{"/api/status/5": tc.ans})
			var warns []string
			o := pollOpts(&warns)
			o.NotFoundGrace = tc.grace
			got, err := c.WaitVPS(ctxT(t), "5", o)
			if tc.want == "" {
				if err != nil || got.SSHPort != tc.port {
					t.Fatalf("WaitVPS = %+v, %v", got, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

// TestClient_WaitTasksBatchListingRefused: tasks of a batch whose listing
// the replica refuses (here: no such path) are read one by one, and the
// listing is not asked again.
func TestClient_WaitTasksBatchListingRefused(t *testing.T) {
	paths := map[string][]answer{}
	var ids []string
	for i := int64(1); i <= 10; i++ {
		id := fmt.Sprint(i)
		ids = append(ids, id)
		paths["/api/status/"+id] = []answer{
			{http.StatusOK, fsm.Task{TaskID: i, BatchID: 7, Status: fsm.StatusRunning}},
			{http.StatusOK, fsm.Task{TaskID: i, BatchID: 7, Status: fsm.StatusCompleted}},
		}
	}
	c, s := newScriptCounting(t, paths)
	var warns []string
	tasks, err := c.WaitTasks(ctxT(t), ids, pollOpts(&warns), nil)
	if err != nil {
		t.Fatalf("WaitTasks: %v", err)
	}
	for i, tk := range tasks {
		if tk.TaskID != int64(i+1) || tk.Status != fsm.StatusCompleted {
			t.Fatalf("task %d = %+v", i, tk)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := s.calls["/api/tasks"]; n != 1 {
		t.Errorf("the batch listing was asked %d times, want once (refused, then not again)", n)
	}
}

// TestClient_WaitTasksLargeBatchFewTasks: waiting on 9 tasks of a batch
// whose listing goes on page after page with other tasks, WaitTasks stops
// listing after about 4 rows per task waited on (plus a page), reads the
// others one by one, and does not list the batch again.
func TestClient_WaitTasksLargeBatchFewTasks(t *testing.T) {
	var mu sync.Mutex
	lists := 0
	var ids []string
	for i := 1; i <= 9; i++ {
		ids = append(ids, fmt.Sprint(i))
	}
	srv := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/tasks" {
			mu.Lock()
			lists++
			mu.Unlock()
			rows := make([]fsm.Task, 1000)
			for i := range rows {
				rows[i] = fsm.Task{TaskID: int64(1_000_000 + i), BatchID: 7, Status: fsm.StatusPending}
			}
			w.Header().Set(api.MoreHeader, "true")
			w.Header().Set(api.NextAfterHeader, "1000000")
			writeJSON(w, http.StatusOK, rows)
			return
		}
		id, _ := strconv.ParseInt(strings.TrimPrefix(r.URL.Path, "/api/status/"), 10, 64)
		writeJSON(w, http.StatusOK, fsm.Task{TaskID: id, BatchID: 7, Status: fsm.StatusCompleted})
	})
	c := newClient(t, nil, srv.srv.URL)
	var warns []string
	tasks, err := c.WaitTasks(ctxT(t), ids, pollOpts(&warns), nil)
	if err != nil || len(tasks) != 9 {
		t.Fatalf("WaitTasks = %d tasks, %v", len(tasks), err)
	}
	mu.Lock()
	defer mu.Unlock()
	if lists != 2 {
		t.Errorf("listed %d pages, want 2 (8 tasks still waited on: 4×8+1000 rows, then stop)", lists)
	}
}

// TestClient_WaitTasksBatchRange: once WaitTasks knows which tasks of a
// batch it waits on, a later round lists the batch from the highest
// unfinished one down (after = highest + 1), not from the top.
func TestClient_WaitTasksBatchRange(t *testing.T) {
	var mu sync.Mutex
	var afters []string
	var ids []string
	for i := 1; i <= 10; i++ {
		ids = append(ids, fmt.Sprint(i))
	}
	srv := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		status := fsm.StatusRunning
		if len(afters) >= 2 {
			status = fsm.StatusCompleted
		}
		if r.URL.Path == "/api/tasks" {
			afters = append(afters, r.URL.Query().Get("after"))
			if len(afters) >= 2 {
				status = fsm.StatusCompleted
			}
			var rows []fsm.Task
			for i := int64(20); i >= 1; i-- { // the batch: 20 tasks, newest first
				rows = append(rows, fsm.Task{TaskID: i, BatchID: 7, Status: status})
			}
			writeJSON(w, http.StatusOK, rows)
			return
		}
		id, _ := strconv.ParseInt(strings.TrimPrefix(r.URL.Path, "/api/status/"), 10, 64)
		writeJSON(w, http.StatusOK, fsm.Task{TaskID: id, BatchID: 7, Status: status})
	})
	c := newClient(t, nil, srv.srv.URL)
	var warns []string
	tasks, err := c.WaitTasks(ctxT(t), ids, pollOpts(&warns), nil)
	if err != nil || len(tasks) != 10 || tasks[9].Status != fsm.StatusCompleted {
		t.Fatalf("WaitTasks = %+v, %v", tasks, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(afters) != 2 || afters[0] != "" || afters[1] != "11" {
		t.Fatalf("listings asked with after = %q, want the whole batch, then after=11", afters)
	}
}

// TestClient_WaitTasksDuplicateIDs: an ID given twice is waited on once
// and returned twice; the wait ends when it ends.
func TestClient_WaitTasksDuplicateIDs(t *testing.T) {
	c := newScript(t, map[string][]answer{"/api/status/1": {task(1, fsm.StatusRunning), task(1, fsm.StatusCompleted)}})
	var warns []string
	ctx, cancel := context.WithTimeout(ctxT(t), 10*time.Second)
	defer cancel()
	tasks, err := c.WaitTasks(ctx, []string{"1", "1"}, pollOpts(&warns), nil)
	if err != nil || len(tasks) != 2 || tasks[0].Status != fsm.StatusCompleted || tasks[1].Status != fsm.StatusCompleted {
		t.Fatalf("WaitTasks = %+v, %v", tasks, err)
	}
}
