package fsm_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/hakuriver/hakuriver-ha/fsm"
)

// placed submits tasks with placements in one entry and returns the IDs
// the entry placed.
func (h *harness) placed(req string, tasks []*fsm.Task, place ...fsm.AssignTask) []int64 {
	h.t.Helper()
	r := h.ok(&fsm.SubmitPlaced{SubmitTasks: fsm.SubmitTasks{RequestID: req, Tasks: tasks}, Place: place})
	return r.Value.(fsm.SubmitResult).Placed
}

// newTaskGPUs returns the GPUs a new task edited by edit names.
func newTaskGPUs(edit func(*fsm.Task)) []int {
	tk := newTask(0)
	if edit != nil {
		edit(tk)
	}
	return tk.RequiredGPUs
}

func place(id int64, node string) fsm.AssignTask {
	return fsm.AssignTask{TaskID: id, Node: node, At: at(1)}
}

func withCores(tk *fsm.Task, cores int) *fsm.Task {
	tk.RequiredCores = cores
	return tk
}

func TestSubmitPlaced(t *testing.T) {
	h := newHarness(t)
	h.register("n1", 0)

	// A placement that fits: the task is created assigning, in one entry.
	if got := h.placed("r1", []*fsm.Task{newTask(1)}, place(1, "n1")); !slices.Equal(got, []int64{1}) {
		t.Fatalf("placed %v, want [1]", got)
	}
	if tk := h.task(1); tk.Status != fsm.StatusAssigning || tk.AssignedNode != "n1" || tk.RequestID != "r1" {
		t.Fatalf("task 1: %s on %q (request %q)", tk.Status, tk.AssignedNode, tk.RequestID)
	}
	// The same state as a submit followed by an assign.
	ref := newHarness(t)
	ref.register("n1", 0)
	ref.ok(&fsm.SubmitTasks{RequestID: "r1", Tasks: []*fsm.Task{newTask(1)}})
	ref.ok(&fsm.AssignTask{TaskID: 1, Node: "n1", At: at(1)})
	assertSameState(t, "submit+assign vs submit placed", stateBytes(t, ref.m), stateBytes(t, h.m))

	// A retry of the request creates and places nothing, whatever it says.
	r := h.unchanged(&fsm.SubmitPlaced{SubmitTasks: fsm.SubmitTasks{RequestID: "r1", Tasks: []*fsm.Task{newTask(2)}}, Place: []fsm.AssignTask{place(2, "n1")}})
	if sr := r.Value.(fsm.SubmitResult); !sr.Duplicate || !slices.Equal(sr.TaskIDs, []int64{1}) || sr.Placed != nil {
		t.Fatalf("retry: %+v", sr)
	}

	// Capacity: n1 has 16 cores, task 1 holds 2: 14 fit, 15 do not.
	if got := h.placed("", []*fsm.Task{withCores(newTask(3), 15)}, place(3, "n1")); got != nil {
		t.Fatalf("15 cores placed on 14 free: %v", got)
	}
	if tk := h.task(3); tk.Status != fsm.StatusPending || tk.AssignedNode != "" {
		t.Fatalf("task 3 is %s on %q, want pending", tk.Status, tk.AssignedNode)
	}
	h.ok(&fsm.KillTask{TaskID: 3, At: at(2)})
	// Two tasks in one submit: each counts against the node in turn.
	got := h.placed("", []*fsm.Task{withCores(newTask(4), 8), withCores(newTask(5), 8)}, place(4, "n1"), place(5, "n1"))
	if !slices.Equal(got, []int64{4}) || h.task(5).Status != fsm.StatusPending {
		t.Fatalf("placed %v (task 5 %s), want only 4", got, h.task(5).Status)
	}
	// Task 5 now waits: nothing jumps ahead of it, even where it fits.
	if got := h.placed("", []*fsm.Task{withCores(newTask(6), 1)}, place(6, "n1")); got != nil {
		t.Fatalf("placed %v ahead of pending task 5", got)
	}
	h.ok(&fsm.KillTask{TaskID: 5, At: at(3)})
	h.ok(&fsm.KillTask{TaskID: 6, At: at(3)})
	h.ok(&fsm.KillTask{TaskID: 4, At: at(3)})
	h.ok(&fsm.KillTask{TaskID: 1, At: at(3)})
	if got := h.placed("", []*fsm.Task{newTask(7)}, place(7, "n1")); !slices.Equal(got, []int64{7}) {
		t.Fatalf("placed %v on an empty node, want [7]", got)
	}
	h.ok(&fsm.KillTask{TaskID: 7, At: at(3)})

	// Placements that never fit leave the task pending, each on its own.
	h.register("n2", 0)
	h.ok(&fsm.SetNodeDrain{Hostname: "n2", Drained: true})
	h.register("n3", 0)
	h.ok(&fsm.SetNodeStatus{Hostname: "n3", Status: fsm.NodeOffline, At: at(4)})
	h.ok(&fsm.BootstrapAuth{Admin: testUser("root", fsm.RoleAdmin), Token: testToken("0000aaaa", "root")})
	limited := testUser("lim", fsm.RoleUser)
	limited.Groups = []string{"g"}
	h.ok(&fsm.PutUser{User: limited, Create: true})
	h.ok(&fsm.PutGroup{Group: &fsm.Group{Name: "g", Quota: fsm.Quota{Cores: 100}, CreatedAt: at(0)}, Create: true})
	id := int64(100)
	for _, c := range []struct {
		name  string
		task  func(*fsm.Task)
		place func(*fsm.AssignTask)
	}{
		{"unknown node", nil, func(p *fsm.AssignTask) { p.Node = "ghost" }},
		{"drained node", nil, func(p *fsm.AssignTask) { p.Node = "n2" }},
		{"offline node", nil, func(p *fsm.AssignTask) { p.Node = "n3" }},
		{"too many cores", func(tk *fsm.Task) { tk.RequiredCores = 17 }, nil},
		{"too much memory", func(tk *fsm.Task) { tk.RequiredMemoryBytes = 65 << 30 }, nil},
		{"other than its target", func(tk *fsm.Task) { tk.TargetNode = "n2" }, nil},
		{"a dependency", func(tk *fsm.Task) { tk.After = fsm.IDList{7} }, nil},
		{"an owner in a group with a quota", func(tk *fsm.Task) { tk.Owner = "lim" }, nil},
		{"GPUs not asked for", nil, func(p *fsm.AssignTask) { p.GPUs = []int{0} }},
		{"fewer GPUs than asked", func(tk *fsm.Task) { tk.GPUCount = 2 }, func(p *fsm.AssignTask) { p.GPUs = []int{0} }},
		{"a GPU twice", func(tk *fsm.Task) { tk.GPUCount = 2 }, func(p *fsm.AssignTask) { p.GPUs = []int{0, 0} }},
		{"a GPU the node lacks", func(tk *fsm.Task) { tk.GPUCount = 1 }, func(p *fsm.AssignTask) { p.GPUs = []int{5} }},
		{"other GPUs than named", func(tk *fsm.Task) { tk.RequiredGPUs = []int{1} }, func(p *fsm.AssignTask) { p.GPUs = []int{0} }},
		{"another NUMA node", func(tk *fsm.Task) { tk.TargetNUMANodeID = intp(0) }, func(p *fsm.AssignTask) { p.NUMA = intp(1) }},
		{"a NUMA node the node lacks", func(tk *fsm.Task) { tk.TargetNUMANodeID = intp(4) }, func(p *fsm.AssignTask) { p.NUMA = intp(4) }},
		{"more cores than the NUMA node", func(tk *fsm.Task) { tk.TargetNUMANodeID, tk.RequiredCores = intp(1), 9 }, func(p *fsm.AssignTask) { p.NUMA = intp(1) }},
	} {
		id++
		tk := newTask(id)
		if c.task != nil {
			c.task(tk)
		}
		p := place(id, "n1")
		if c.place != nil {
			c.place(&p)
		}
		if got := h.placed("", []*fsm.Task{tk}, p); got != nil {
			t.Errorf("%s: placed %v", c.name, got)
		}
		if tk := h.task(id); tk.Status != fsm.StatusPending || tk.AssignedNode != "" || !slices.Equal(tk.RequiredGPUs, newTaskGPUs(c.task)) {
			t.Errorf("%s: task is %s on %q with GPUs %v, want pending", c.name, tk.Status, tk.AssignedNode, tk.RequiredGPUs)
		}
		h.ok(&fsm.KillTask{TaskID: id, At: at(5)})
	}

	// The same kinds of placements that fit are applied.
	gpu := newTask(200)
	gpu.GPUCount = 2
	numa := newTask(201)
	numa.TargetNUMANodeID, numa.RequiredCores = intp(1), 8
	pg, pn := place(200, "n1"), place(201, "n1")
	pg.GPUs, pn.NUMA = []int{0, 1}, intp(1)
	if got := h.placed("", []*fsm.Task{gpu, numa}, pg, pn); !slices.Equal(got, []int64{200, 201}) {
		t.Fatalf("placed %v, want [200 201]", got)
	}
	// Now n1's GPUs and NUMA node 1 are held.
	named := newTask(202)
	named.RequiredGPUs = []int{1}
	pnamed := place(202, "n1")
	pnamed.GPUs = []int{1}
	numa2 := newTask(203)
	numa2.TargetNUMANodeID = intp(1)
	pn2 := place(203, "n1")
	pn2.NUMA = intp(1)
	if got := h.placed("", []*fsm.Task{named}, pnamed); got != nil {
		t.Fatalf("a held GPU placed: %v", got)
	}
	h.ok(&fsm.KillTask{TaskID: 202, At: at(6)})
	if got := h.placed("", []*fsm.Task{numa2}, pn2); got != nil {
		t.Fatalf("a full NUMA node placed: %v", got)
	}
	h.ok(&fsm.KillTask{TaskID: 203, At: at(6)})

	// An array under a throttle of 2: the third waits.
	var arr []*fsm.Task
	var ps []fsm.AssignTask
	for i := range 3 {
		tk := withCores(newTask(int64(300+i)), 1)
		tk.BatchID, tk.ArrayThrottle, tk.ArrayIndex = 300, 2, intp(i)
		arr = append(arr, tk)
		ps = append(ps, place(tk.TaskID, "n1"))
	}
	if got := h.placed("", arr, ps...); !slices.Equal(got, []int64{300, 301}) {
		t.Fatalf("array placed %v, want [300 301]", got)
	}
	h.ok(&fsm.KillTask{TaskID: 302, At: at(7)})
	// A placement of a task outside the submit (or twice) is ignored.
	h.submit(400)
	if got := h.placed("", []*fsm.Task{withCores(newTask(401), 1)}, place(400, "n1"), place(401, "n1"), place(401, "n1")); got != nil {
		t.Fatalf("placed %v behind pending task 400", got)
	}
	h.ok(&fsm.KillTask{TaskID: 400, At: at(8)})
	h.ok(&fsm.KillTask{TaskID: 401, At: at(8)})
	if got := h.placed("", []*fsm.Task{withCores(newTask(402), 1)}, place(400, "n1"), place(402, "n1"), place(402, "n1")); !slices.Equal(got, []int64{402}) {
		t.Fatalf("placed %v, want [402]", got)
	}
	if tk := h.task(400); tk.Status != fsm.StatusKilled {
		t.Fatalf("task 400 of an earlier submit changed: %s", tk.Status)
	}
	// An invalid submit is rejected whole, placements and all.
	h.reject(&fsm.SubmitPlaced{SubmitTasks: fsm.SubmitTasks{Tasks: []*fsm.Task{newTask(402)}}, Place: []fsm.AssignTask{place(402, "n1")}}, fsm.ErrInvalid)
	checkInvariants(t, h.m)
}

func TestAssignTasks(t *testing.T) {
	build := func(batched bool) (*harness, fsm.Result) {
		h := newHarness(t)
		h.register("n1", 0)
		h.register("n2", 0)
		h.submit(1, 2, 3, 4)
		h.ok(&fsm.SetNodeStatus{Hostname: "n2", Status: fsm.NodeOffline, At: at(1)})
		h.ok(&fsm.KillTask{TaskID: 3, At: at(1)})
		ps := []fsm.AssignTask{place(1, "n1"), place(2, "n2"), place(3, "n1"), place(4, "ghost"), place(9, "n1"), place(4, "n1"), place(1, "n1")}
		ps[5].GPUs, ps[5].NUMA = []int{1}, intp(0)
		if batched {
			return h, h.ok(&fsm.AssignTasks{Assign: ps})
		}
		var errs fsm.AssignResults
		for _, p := range ps {
			errs = append(errs, h.apply(&p).Err)
		}
		h.ok(&fsm.Record{}) // the same number of entries as the batched harness
		for range len(ps) - 1 {
			h.idx--
		}
		return h, fsm.Result{Value: errs}
	}
	batched, res := build(true)
	one, ref := build(false)
	assertSameState(t, "AssignTasks vs one AssignTask each", stateBytes(t, one.m), stateBytes(t, batched.m))
	got, want := res.Value.(fsm.AssignResults), ref.Value.(fsm.AssignResults)
	if len(got) != len(want) {
		t.Fatalf("%d results, want %d", len(got), len(want))
	}
	for i := range got {
		if fmt.Sprint(got[i]) != fmt.Sprint(want[i]) {
			t.Errorf("placement %d: %v, want %v", i, got[i], want[i])
		}
	}
	if got[0] != nil || got[1] == nil || got[2] == nil || got[3] == nil || got[4] == nil || got[5] != nil || got[6] == nil {
		t.Errorf("results %v: want only placements 0 and 5 applied", got)
	}
	if tk := batched.task(4); tk.Status != fsm.StatusAssigning || !slices.Equal(tk.RequiredGPUs, []int{1}) || *tk.TargetNUMANodeID != 0 {
		t.Errorf("task 4: %+v", tk)
	}
}

// genPlaced makes a random log of submits with and without placements,
// batched placements, runner reports, kills, node changes and quotas.
// Without assign, the log has no AssignTask(s): only submits place.
func genPlaced(t *testing.T, seed uint64, n int, assign bool) [][]byte {
	rng := rand.New(rand.NewPCG(seed, seed*7+1))
	nodes := []string{"n0", "n1", "n2", "ghost"}
	node := func() string { return nodes[rng.IntN(len(nodes))] }
	next, swept := int64(0), int64(0)
	id := func() int64 { return 1 + rng.Int64N(max(next, 1)) }
	out := [][]byte{
		encode(t, &fsm.BootstrapAuth{Admin: testUser("root", fsm.RoleAdmin), Token: testToken("0000aaaa", "root")}),
		encode(t, &fsm.PutUser{User: testUser("lim", fsm.RoleUser), Create: true}),
	}
	for i := range n {
		now := at(i)
		var c fsm.Command
		switch p := rng.IntN(100); {
		case p < 35:
			s := fsm.SubmitTasks{}
			if rng.IntN(3) == 0 {
				s.RequestID = fmt.Sprintf("r%d", rng.IntN(30))
			}
			var place []fsm.AssignTask
			batch := next + 1
			for range 1 + rng.IntN(3) {
				next++
				tk := newTask(next)
				tk.BatchID, tk.SubmittedAt = batch, now
				tk.RequiredCores = 1 + rng.IntN(8)
				if rng.IntN(4) == 0 {
					tk.GPUCount = 1 + rng.IntN(2)
				}
				if rng.IntN(6) == 0 {
					tk.TargetNUMANodeID = intp(rng.IntN(2))
				}
				if rng.IntN(8) == 0 {
					tk.Owner = "lim"
				}
				if rng.IntN(8) == 0 {
					tk.ArrayThrottle = 1
				}
				s.Tasks = append(s.Tasks, tk)
				a := fsm.AssignTask{TaskID: tk.TaskID, Node: node(), NUMA: tk.TargetNUMANodeID, At: now}
				for g := range tk.GPUCount {
					a.GPUs = append(a.GPUs, (g+rng.IntN(2))%3)
				}
				place = append(place, a)
			}
			if rng.IntN(4) == 0 {
				c = &s
			} else {
				c = &fsm.SubmitPlaced{SubmitTasks: s, Place: place}
			}
		case p < 45 && !assign:
			continue
		case p < 45:
			var as []fsm.AssignTask
			for range 1 + rng.IntN(4) {
				as = append(as, fsm.AssignTask{TaskID: id(), Node: node(), At: now})
			}
			c = &fsm.AssignTasks{Assign: as}
		case p < 65:
			st := []fsm.Status{fsm.StatusRunning, fsm.StatusCompleted, fsm.StatusFailed, fsm.StatusPending}[rng.IntN(4)]
			if st == fsm.StatusPending && !assign {
				st = fsm.StatusRunning // back in the queue only after a scheduler's placement
			}
			c = &fsm.UpdateTask{TaskID: id(), Status: st, ExitCode: intp(0), At: now}
		case p < 70:
			c = &fsm.KillTask{TaskID: id(), At: now}
		case p < 82:
			// The queue empties now and then: kill the tasks submitted
			// since the last time.
			for ; swept < next; swept++ {
				out = append(out, encode(t, &fsm.KillTask{TaskID: swept + 1, At: now}))
			}
			continue
		case p < 88:
			c = &fsm.RegisterNode{Node: testNode(node()), At: now}
		case p < 93:
			st := fsm.NodeOnline
			if rng.IntN(2) == 0 {
				st = fsm.NodeOffline
			}
			c = &fsm.SetNodeStatus{Hostname: node(), Status: st, At: now}
		case p < 97:
			c = &fsm.SetNodeDrain{Hostname: node(), Drained: rng.IntN(2) == 0}
		default:
			u := testUser("lim", fsm.RoleUser)
			if rng.IntN(2) == 0 {
				u.Quota.Cores = 4
			}
			c = &fsm.PutUser{User: u}
		}
		out = append(out, encode(t, c))
	}
	return out
}

// TestSubmitPlacedReplay checks that replicas applying the same log (one of
// them from a snapshot taken half way) reach identical states.
func TestSubmitPlacedReplay(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3} {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			entries := genPlaced(t, seed, 1500, true)
			m1, m2 := fsm.New(), fsm.New()
			r1, r2 := applyAll(m1, 1, entries), applyAll(m2, 1, entries)
			if !slices.Equal(r1, r2) {
				t.Fatalf("two replicas got different results")
			}
			assertSameState(t, "two replicas", snapshotBytes(t, m1), snapshotBytes(t, m2))
			checkInvariants(t, m1)

			half := len(entries) / 2
			m3 := fsm.New()
			applyAll(m3, 1, entries[:half])
			m4 := fsm.New()
			if err := m4.Restore(bytesReader(snapshotBytes(t, m3))); err != nil {
				t.Fatal(err)
			}
			applyAll(m4, uint64(half+1), entries[half:])
			assertSameState(t, "replica restored from a snapshot", snapshotBytes(t, m1), snapshotBytes(t, m4))
		})
	}
}

// TestSubmitPlacedNeverOverCommits applies random logs in which only
// submits place tasks, racing with reports, kills, node changes and
// quotas: no node ever holds more than it has.
func TestSubmitPlacedNeverOverCommits(t *testing.T) {
	for _, seed := range []uint64{4, 5, 6} {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			m := fsm.New()
			placed, kept := 0, 0
			for i, e := range genPlaced(t, seed, 1500, false) {
				r := m.Apply(uint64(i+1), e)
				if sr, ok := r.Value.(fsm.SubmitResult); ok && fsm.CommandType(e[0]) == fsm.CmdSubmitPlaced && !sr.Duplicate {
					placed += len(sr.Placed)
					kept += len(sr.TaskIDs) - len(sr.Placed)
				}
				if why := overCommitted(m); why != "" {
					t.Fatalf("entry %d: %s", i+1, why)
				}
			}
			if placed < 50 || kept < 50 {
				t.Fatalf("%d placed at submit, %d left pending: generator too weak", placed, kept)
			}
			t.Logf("%d placed at submit, %d left pending", placed, kept)
		})
	}
}

// overCommitted describes a node whose placed tasks hold more cores,
// memory or NUMA cores than it has, or a GPU twice ("" when none does).
func overCommitted(m *fsm.Machine) string {
	type use struct {
		cores int
		mem   int64
		gpus  map[int]int
		numa  map[int]int
	}
	held := map[string]*use{}
	for _, a := range m.Active() {
		if a.AssignedNode == "" || a.Status == fsm.StatusPending {
			continue
		}
		u := held[a.AssignedNode]
		if u == nil {
			u = &use{gpus: map[int]int{}, numa: map[int]int{}}
			held[a.AssignedNode] = u
		}
		u.cores += a.RequiredCores
		u.mem += a.RequiredMemoryBytes
		for _, g := range a.RequiredGPUs {
			u.gpus[g]++
		}
		if a.TargetNUMANodeID != nil {
			u.numa[*a.TargetNUMANodeID] += a.RequiredCores
		}
	}
	for name, u := range held {
		n, _ := m.Node(name)
		over := u.cores > n.TotalCores || u.mem > n.MemoryTotalBytes
		for _, k := range u.gpus {
			over = over || k > 1
		}
		for k, v := range u.numa {
			over = over || v > len(n.NUMATopology[fmt.Sprint(k)].Cores)
		}
		if over {
			return fmt.Sprintf("%s holds %d cores, %d bytes, GPUs %v, NUMA cores %v", name, u.cores, u.mem, u.gpus, u.numa)
		}
	}
	return ""
}

// TestSubmitPlacedAudited: an audited submit that places its task is
// recorded as a submit, like any other, and a retry adds no record.
func TestSubmitPlacedAudited(t *testing.T) {
	h := newHarness(t)
	h.register("n1", 0)
	c := &fsm.SubmitPlaced{SubmitTasks: fsm.SubmitTasks{RequestID: "r", Tasks: []*fsm.Task{newTask(1)}}, Place: []fsm.AssignTask{place(1, "n1")}}
	for range 2 {
		a, err := fsm.Wrap(c, fsm.AuditRecord{At: at(1), User: "alice", Role: fsm.RoleUser}, 10, 0)
		if err != nil {
			t.Fatal(err)
		}
		h.ok(a)
	}
	recs, _ := h.m.Audit(fsm.AuditFilter{}, 10)
	if len(recs) != 1 || recs[0].Action != "submit_tasks" || recs[0].Target != "task 1" {
		t.Fatalf("audit records %+v, want one submit_tasks of task 1", recs)
	}
	if tk := h.task(1); tk.Status != fsm.StatusAssigning {
		t.Fatalf("task 1 is %s", tk.Status)
	}
}
