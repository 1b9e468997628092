package httpapi

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster/auth"
	"github.com/hakuriver/hakuriver-ha/fsm"
)

// machineWith returns a real state machine holding n command tasks, one in
// a hundred with a 64 KiB argument.
func machineWith(tb testing.TB, n int) *fsm.Machine {
	tb.Helper()
	m := fsm.New()
	big := strings.Repeat("x", 64<<10)
	var batch []*fsm.Task
	idx := uint64(0)
	flush := func() {
		data, err := fsm.Encode(&fsm.SubmitTasks{Tasks: batch})
		if err != nil {
			tb.Fatal(err)
		}
		idx++
		if r := m.Apply(idx, data); r.Err != nil {
			tb.Fatal(r.Err)
		}
		batch = nil
	}
	for id := 1; id <= n; id++ {
		t := &fsm.Task{TaskID: int64(id), TaskType: fsm.TaskCommand, Command: "python", Arguments: []string{"train.py", fmt.Sprint(id)},
			Status: fsm.StatusPending, RequiredCores: 1, ContainerName: "NULL", SubmittedAt: time.Unix(1e9, 0).UTC(),
			EnvVars: map[string]string{"SEED": fmt.Sprint(id)}, Owner: "alice"}
		if id%100 == 0 {
			t.Arguments = append(t.Arguments, big)
		}
		batch = append(batch, t)
		if len(batch) == 500 {
			flush()
		}
	}
	if len(batch) > 0 {
		flush()
	}
	return m
}

// BenchmarkTaskListRefresh100k is one refresh of the dashboard's task
// list (GET /api/tasks?view=summary&limit=50) over 100,000 tasks: its time
// and bytes on the wire, against the whole-task page it replaces, and a text
// search that matches nothing (a scan of every task).
func BenchmarkTaskListRefresh100k(b *testing.B) {
	m := machineWith(b, 100000)
	a := New(Config{NodeID: "h1", SharedDir: b.TempDir(), MaxListTasks: 1000}, Deps{Tasks: m, Nodes: m})
	for _, q := range []string{"view=summary&limit=50", "limit=50", "view=summary&limit=50&text=no-such-text"} {
		b.Run(q, func(b *testing.B) {
			var n int
			for b.Loop() {
				r := httptest.NewRequest(http.MethodGet, "/api/tasks?"+q, nil)
				r = r.WithContext(auth.WithPrincipal(r.Context(), auth.Principal{Kind: auth.Account, Name: "op", Role: fsm.RoleOperator}))
				w := httptest.NewRecorder()
				a.Tasks(w, r)
				if w.Code != http.StatusOK {
					b.Fatalf("%d %s", w.Code, w.Body)
				}
				n = w.Body.Len()
			}
			b.ReportMetric(float64(n), "bytes/refresh")
		})
	}
}
