package fsm_test

import (
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/fsm"
)

func ids(tasks []*fsm.Task) []int64 {
	out := make([]int64, len(tasks))
	for i, tk := range tasks {
		out[i] = tk.TaskID
	}
	return out
}

func TestTasksNewestFirstWithOutOfOrderIDs(t *testing.T) {
	h := newHarness(t)
	// Separate submits and one batch, IDs neither increasing nor decreasing.
	h.submit(50)
	h.submit(10)
	h.submit(70, 30, 20)
	h.submit(60)
	h.submit(5)
	h.submit(65, 1)
	want := []int64{70, 65, 60, 50, 30, 20, 10, 5, 1}
	all, more := h.m.Tasks(fsm.Filter{}, 0, 0)
	if !slices.Equal(ids(all), want) || more {
		t.Fatalf("Tasks = %v more=%v, want %v", ids(all), more, want)
	}
	if h.m.MaxTaskID() != 70 || h.m.Len() != 9 {
		t.Fatalf("MaxTaskID %d Len %d", h.m.MaxTaskID(), h.m.Len())
	}
	// The order survives a restore.
	m := fsm.New()
	if err := m.Restore(bytesReader(snapshotBytes(t, h.m))); err != nil {
		t.Fatal(err)
	}
	if got, _ := m.Tasks(fsm.Filter{}, 0, 0); !slices.Equal(ids(got), want) {
		t.Fatalf("after restore Tasks = %v", ids(got))
	}

	cases := []struct {
		after int64
		limit int
		want  []int64
		more  bool
	}{
		{0, 3, []int64{70, 65, 60}, true},
		{60, 3, []int64{50, 30, 20}, true},
		{20, 3, []int64{10, 5, 1}, false},
		{20, 4, []int64{10, 5, 1}, false},
		{1, 3, nil, false},
		{55, 2, []int64{50, 30}, true}, // after need not be an existing ID
		{1000, 1, []int64{70}, true},   // above every ID
		{71, 0, want, false},           // no limit
		{0, 9, want, false},            // exactly all: no more
		{0, 8, want[:8], true},         // one short
		{0, -1, want, false},           // negative limit = no limit
		{2, 5, []int64{1}, false},
	}
	for _, c := range cases {
		got, more := h.m.Tasks(fsm.Filter{}, c.after, c.limit)
		if !slices.Equal(ids(got), c.want) || more != c.more {
			t.Errorf("Tasks(after=%d, limit=%d) = %v more=%v, want %v more=%v", c.after, c.limit, ids(got), more, c.want, c.more)
		}
	}
}

func TestTasksFilters(t *testing.T) {
	h := newHarness(t)
	h.register("n1", 0)
	h.register("n2", 0)
	type row struct {
		id     int64
		status fsm.Status
		node   string
		batch  int64
		typ    fsm.TaskType
		owner  string
	}
	var rows []row
	for i, s := range fsm.AllStatuses() {
		for j, node := range []string{"n1", "n2"} {
			id := int64(100 + i*10 + j)
			c := newTask(id)
			c.BatchID = int64(1 + i%3)
			if j == 1 {
				c.TaskType = fsm.TaskVPS
			}
			c.Owner = []string{"alice", "bob", ""}[i%3]
			h.ok(&fsm.SubmitTasks{Tasks: []*fsm.Task{c}})
			for k, step := range pathTo(s) {
				if step == fsm.StatusAssigning {
					h.ok(&fsm.AssignTask{TaskID: id, Node: node, At: at(1)})
				} else {
					h.ok(&fsm.UpdateTask{TaskID: id, Status: step, At: at(2 + k)})
				}
			}
			assigned := node
			if s == fsm.StatusPending {
				assigned = ""
			}
			rows = append(rows, row{id, s, assigned, c.BatchID, c.TaskType, c.Owner})
		}
	}
	filters := []fsm.Filter{
		{},
		{Status: fsm.StatusRunning},
		{Status: fsm.StatusLost},
		{Status: "nonexistent"},
		{Node: "n1"},
		{Node: "n2", Status: fsm.StatusPaused},
		{Node: "n3"},
		{Batch: 2},
		{Batch: 3, Type: fsm.TaskVPS},
		{Type: fsm.TaskCommand},
		{Type: fsm.TaskVPS, Node: "n2", Batch: 1, Status: fsm.StatusAssigning},
		{Owner: "alice"},
		{Owner: "bob", Type: fsm.TaskVPS},
		{Owner: "carol"},
	}
	for _, f := range filters {
		var want []int64
		for i := len(rows) - 1; i >= 0; i-- { // rows were created in increasing ID order
			r := rows[i]
			if (f.Status == "" || r.status == f.Status) && (f.Node == "" || r.node == f.Node) &&
				(f.Batch == 0 || r.batch == f.Batch) && (f.Type == "" || r.typ == f.Type) && (f.Owner == "" || r.owner == f.Owner) {
				want = append(want, r.id)
			}
		}
		got, more := h.m.Tasks(f, 0, 0)
		if !slices.Equal(ids(got), want) || more {
			t.Errorf("Tasks(%+v) = %v more=%v, want %v", f, ids(got), more, want)
		}
		for _, tk := range got {
			if (f.Status != "" && tk.Status != f.Status) || (f.Node != "" && tk.AssignedNode != f.Node) ||
				(f.Batch != 0 && tk.BatchID != f.Batch) || (f.Type != "" && tk.TaskType != f.Type) || (f.Owner != "" && tk.Owner != f.Owner) {
				t.Errorf("Tasks(%+v) returned non-matching task %d", f, tk.TaskID)
			}
		}
		pageVisitsAll(t, h.m, f, want)
	}
}

// pageVisitsAll pages through f with several page sizes and checks every
// matching task is returned exactly once, in order, with more set correctly.
func pageVisitsAll(t *testing.T, m *fsm.Machine, f fsm.Filter, want []int64) {
	t.Helper()
	for _, limit := range []int{1, 2, 3, 7, len(want), len(want) + 1} {
		if limit <= 0 {
			continue
		}
		var got []int64
		var after int64
		for pages := 0; ; pages++ {
			if pages > len(want)+1 {
				t.Fatalf("filter %+v limit %d: paging does not terminate", f, limit)
			}
			page, more := m.Tasks(f, after, limit)
			if len(page) > limit {
				t.Fatalf("filter %+v limit %d: page of %d", f, limit, len(page))
			}
			got = append(got, ids(page)...)
			if !more {
				break
			}
			if len(page) == 0 {
				t.Fatalf("filter %+v limit %d: empty page with more=true", f, limit)
			}
			after = page[len(page)-1].TaskID
		}
		if !slices.Equal(got, want) {
			t.Fatalf("filter %+v limit %d: pages visit %v, want %v", f, limit, got, want)
		}
	}
}

func TestTasksPagingRandomIDs(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	h := newHarness(t)
	seen := map[int64]bool{}
	var all []int64
	for len(all) < 500 {
		var batch []int64
		for range 1 + rng.IntN(4) {
			id := 1 + rng.Int64N(1<<62)
			if seen[id] {
				continue
			}
			seen[id] = true
			batch = append(batch, id)
		}
		if len(batch) == 0 {
			continue
		}
		h.submit(batch...)
		all = append(all, batch...)
	}
	slices.Sort(all)
	slices.Reverse(all)
	got, _ := h.m.Tasks(fsm.Filter{}, 0, 0)
	if !slices.Equal(ids(got), all) {
		t.Fatalf("Tasks order wrong after random inserts")
	}
	if h.m.MaxTaskID() != all[0] {
		t.Fatalf("MaxTaskID = %d, want %d", h.m.MaxTaskID(), all[0])
	}
	pageVisitsAll(t, h.m, fsm.Filter{}, all)
	checkCounts(t, h.m)
}

func TestTasksTextFilter(t *testing.T) {
	h := newHarness(t)
	add := func(id int64, typ fsm.TaskType, cmd string, args ...string) {
		c := newTask(id)
		c.TaskType, c.Command, c.Arguments = typ, cmd, args
		h.ok(&fsm.SubmitTasks{Tasks: []*fsm.Task{c}})
	}
	long := strings.Repeat("x", fsm.TextScanBytes)
	add(1, fsm.TaskCommand, "python", "train.py", "--lr", "0.1")
	add(2, fsm.TaskCommand, "echo", "hello world")
	add(3, fsm.TaskVPS, "ssh-ed25519 AAAAC3Nza train.py")
	add(4, fsm.TaskCommand, long, "train.py")       // beyond the scanned prefix
	add(5, fsm.TaskCommand, "sh", "-c", "train.py") // across the command/argument boundary
	for _, c := range []struct {
		text string
		want []int64
	}{
		{"train.py", []int64{5, 1}},
		{"python train.py --lr", []int64{1}},
		{"echo hello", []int64{2}},
		{"ssh-ed25519", nil},
		{"-c train", []int64{5}},
		{"TRAIN", nil},
		{"xxxx", []int64{4}},
	} {
		got, more := h.m.Tasks(fsm.Filter{Text: c.text}, 0, 0)
		if !slices.Equal(ids(got), c.want) || more {
			t.Errorf("Text %q: %v more=%v, want %v", c.text, ids(got), more, c.want)
		}
		for _, tk := range got {
			if !(fsm.Filter{Text: c.text}).Match(tk) {
				t.Errorf("Match disagrees with Tasks for %q on %d", c.text, tk.TaskID)
			}
		}
		var want []int64
		if c.want != nil {
			want = c.want
		}
		pageVisitsAll(t, h.m, fsm.Filter{Text: c.text}, want)
	}
}

// TestTasksTextFilterCheap lists a text filter over 20,000 tasks with
// commands longer than the scanned prefix: the scan is bounded per task and
// does not allocate per task (BenchmarkTaskListRefresh100k in
// cluster/httpapi times it over 100,000).
func TestTasksTextFilterCheap(t *testing.T) {
	h := newHarness(t)
	big := strings.Repeat("a", fsm.TextScanBytes+100)
	var batch []*fsm.Task
	for id := int64(1); id <= 20000; id++ {
		c := newTask(id)
		c.Command, c.Arguments = big, []string{strconv.FormatInt(id, 10)}
		batch = append(batch, c)
		if len(batch) == 1000 {
			h.ok(&fsm.SubmitTasks{Tasks: batch})
			batch = nil
		}
	}
	f := fsm.Filter{Text: "needle-not-there"}
	allocs := testing.AllocsPerRun(3, func() {
		if got, more := h.m.Tasks(f, 0, 50); len(got) != 0 || more {
			t.Fatalf("got %d tasks", len(got))
		}
	})
	if allocs > 10 {
		t.Errorf("a text listing over 20,000 tasks allocates %.0f times, want a constant", allocs)
	}
	start := time.Now()
	h.m.Tasks(f, 0, 50)
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("a text listing over 20,000 tasks took %v", d)
	}
	t.Logf("text listing over 20,000 tasks of commands longer than TextScanBytes: %v", time.Since(start))
}
