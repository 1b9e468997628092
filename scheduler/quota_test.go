package scheduler_test

import (
	"strings"
	"testing"

	"github.com/hakuriver/hakuriver-ha/fsm"
	"github.com/hakuriver/hakuriver-ha/scheduler"
)

// accounts builds the quotas of alice (8 cores, in lab and solo), bob (in
// lab), carol (no limit, no group) and lab (2 running tasks, 1 VPS).
func accounts() *scheduler.Quotas {
	return scheduler.NewQuotas(
		[]fsm.User{
			{Name: "alice", Quota: fsm.Quota{Cores: 8, GPUs: 1, MemoryBytes: 4 * gib}, Groups: []string{"lab", "lab", "nolimit", "ghost"}},
			{Name: "bob", Groups: []string{"lab"}},
			{Name: "carol"},
			{Name: "dave", Quota: fsm.Quota{RunningTasks: 2, VPS: 1}},
		},
		[]fsm.Group{
			{Name: "lab", Quota: fsm.Quota{RunningTasks: 3}},
			{Name: "nolimit"},
			{Name: "small", Quota: fsm.Quota{Cores: 1}},
		},
	)
}

func TestPlanQuota(t *testing.T) {
	big := nodes(node("a", 64, 64, withGPUs(0, 1, 2, 3)))
	runPlanCases(t, []planCase{
		{
			name:   "user cores quota holds a task while the owner uses it all",
			nodes:  big,
			tasks:  tasks(on(1, "a", 8, 0, owner("alice")), pending(2, 1, 0, owner("alice")), pending(3, 4, 0, owner("carol"))),
			quotas: accounts(),
			place:  map[int64]string{3: "a"},
			wait:   map[int64]string{2: "quota: user alice uses 8 of 8 cores"},
		},
		{
			name:   "quota adds up within one pass, and says what the task needs",
			nodes:  big,
			tasks:  tasks(pending(1, 6, 0, owner("alice")), pending(2, 3, 0, owner("alice")), pending(3, 2, 0, owner("alice"))),
			quotas: accounts(),
			place:  map[int64]string{1: "a", 3: "a"},
			wait:   map[int64]string{2: "quota: user alice uses 6 of 8 cores, needs 3"},
		},
		{
			name:  "placed, assigning and paused tasks count; pending and finished ones do not",
			nodes: big,
			tasks: tasks(on(1, "a", 3, 0, owner("alice"), status(fsm.StatusAssigning)), on(2, "a", 3, 0, owner("alice"), status(fsm.StatusPaused)),
				pending(3, 2, 0, owner("alice")), pending(4, 1, 0, owner("alice")),
				on(5, "a", 8, 0, owner("alice"), status(fsm.StatusCompleted))),
			quotas: accounts(),
			place:  map[int64]string{3: "a"},
			wait:   map[int64]string{4: "quota: user alice uses 8 of 8 cores"},
		},
		{
			name:   "released when use drops",
			nodes:  big,
			tasks:  tasks(on(1, "a", 8, 0, owner("alice"), status(fsm.StatusCompleted)), pending(2, 8, 0, owner("alice"))),
			quotas: accounts(),
			place:  map[int64]string{2: "a"},
		},
		{
			name:   "memory and GPUs, asked by count or by ID",
			nodes:  big,
			tasks:  tasks(on(1, "a", 1, 3, owner("alice"), gpus(0)), pending(2, 1, 2, owner("alice")), pending(3, 1, 0, owner("alice"), gpuCount(1)), pending(4, 1, 1, owner("alice"))),
			quotas: accounts(),
			place:  map[int64]string{4: "a"},
			wait: map[int64]string{
				2: "quota: user alice uses 3221225472 of 4294967296 bytes of memory, needs 2147483648",
				3: "quota: user alice uses 1 of 1 GPUs",
			},
		},
		{
			name:  "a group quota caps the sum over its members",
			nodes: big,
			tasks: tasks(on(1, "a", 1, 0, owner("alice")), pending(2, 1, 0, owner("bob")), pending(3, 1, 0, owner("alice")),
				pending(4, 1, 0, owner("carol")), pending(5, 1, 0, owner("carol")), pending(6, 1, 0, owner("bob"))),
			quotas: accounts(),
			place:  map[int64]string{2: "a", 3: "a", 4: "a", 5: "a"},
			wait:   map[int64]string{6: "quota: group lab uses 3 of 3 running tasks"},
		},
		{
			name:   "a group listed twice counts once",
			nodes:  big,
			tasks:  tasks(pending(1, 1, 0, owner("alice")), pending(2, 1, 0, owner("alice")), pending(3, 1, 0, owner("alice")), pending(4, 1, 0, owner("alice"))),
			quotas: accounts(),
			place:  map[int64]string{1: "a", 2: "a", 3: "a"},
			wait:   map[int64]string{4: "group lab uses 3 of 3 running tasks"},
		},
		{
			name:   "VPS quota counts VPS tasks only",
			nodes:  big,
			tasks:  tasks(on(1, "a", 1, 0, owner("dave"), vps), pending(2, 1, 0, owner("dave"), vps), pending(3, 1, 0, owner("dave")), pending(4, 1, 0, owner("dave"))),
			quotas: accounts(),
			place:  map[int64]string{3: "a"},
			wait:   map[int64]string{2: "quota: user dave uses 1 of 1 VPS", 4: "quota: user dave uses 2 of 2 running tasks"},
		},
		{
			name:   "a quota-held task does not block others behind it",
			nodes:  big,
			tasks:  tasks(on(1, "a", 8, 0, owner("alice")), pending(2, 1, 0, owner("alice"), prio(10)), pending(3, 1, 0, owner("bob"))),
			quotas: accounts(),
			place:  map[int64]string{3: "a"},
			wait:   map[int64]string{2: "quota: user alice"},
		},
		{
			name:   "anonymous, unknown and unlimited owners are not limited",
			nodes:  big,
			tasks:  tasks(pending(1, 30, 0), pending(2, 30, 0, owner("nobody")), pending(3, 4, 0, owner("carol"))),
			quotas: accounts(),
			place:  map[int64]string{1: "a", 2: "a", 3: "a"},
		},
		{
			name:   "quota is checked before capacity",
			nodes:  nodes(node("a", 8, 8)),
			tasks:  tasks(on(1, "a", 8, 0, owner("alice")), pending(2, 1, 0, owner("alice")), pending(3, 1, 0, owner("carol"))),
			quotas: accounts(),
			wait:   map[int64]string{2: "quota: user alice uses 8 of 8 cores", 3: "no node has 1 cores free"},
		},
	})
}

func TestNewQuotasNothingLimited(t *testing.T) {
	q := scheduler.NewQuotas([]fsm.User{{Name: "a", Groups: []string{"g"}}}, []fsm.Group{{Name: "g"}})
	if q != nil {
		t.Fatalf("quotas without any limit: want nil, got %+v", q)
	}
	if u := q.Usage(nil); len(u.Users) != 0 || len(u.Groups) != 0 {
		t.Fatalf("nil quotas have usage %+v", u)
	}
	if r := q.QuotaLimit(pending(1, 100, 0, owner("a"))); r != "" {
		t.Fatalf("nil quotas limit a task: %q", r)
	}
}

func TestQuotaUsage(t *testing.T) {
	q := accounts()
	active := tasks(
		on(1, "a", 2, 1, owner("alice"), gpus(0, 1)),
		on(2, "a", 1, 0, owner("bob"), status(fsm.StatusPaused), vps),
		pending(3, 4, 0, owner("alice")),
		on(4, "a", 5, 0, owner("carol")),
	)
	u := q.Usage(active)
	if got, want := *u.Users["alice"], (scheduler.Use{Cores: 2, MemoryBytes: gib, GPUs: 2, RunningTasks: 1}); got != want {
		t.Errorf("alice uses %+v, want %+v", got, want)
	}
	if got, want := *u.Groups["lab"], (scheduler.Use{Cores: 3, MemoryBytes: gib, GPUs: 2, RunningTasks: 2, VPS: 1}); got != want {
		t.Errorf("lab uses %+v, want %+v", got, want)
	}
	if _, ok := u.Users["carol"]; ok {
		t.Errorf("carol has no limit but has usage %+v", u.Users["carol"])
	}
	if got := *u.Groups["small"]; got != (scheduler.Use{}) {
		t.Errorf("memberless group small uses %+v", got)
	}
}

func TestQuotaLimit(t *testing.T) {
	q := accounts()
	for _, c := range []struct {
		task *fsm.Task
		want string
	}{
		{pending(1, 16, 0, owner("alice")), "quota: the task needs 16 cores but user alice's quota is 8"},
		{pending(2, 8, 0, owner("alice")), ""},
		{pending(3, 1, 0, owner("alice"), gpuCount(2)), "quota: the task needs 2 GPUs but user alice's quota is 1"},
		{pending(4, 1, 5, owner("alice")), "bytes of memory but user alice's quota is 4294967296"},
		{pending(5, 100, 0, owner("bob")), ""},
		{pending(6, 100, 0, owner("carol")), ""},
		{pending(7, 100, 0), ""},
	} {
		got := q.QuotaLimit(c.task)
		if c.want == "" && got != "" || c.want != "" && !strings.Contains(got, c.want) {
			t.Errorf("task %d: QuotaLimit = %q, want %q", c.task.TaskID, got, c.want)
		}
	}
	g := scheduler.NewQuotas([]fsm.User{{Name: "e", Groups: []string{"small"}}}, []fsm.Group{{Name: "small", Quota: fsm.Quota{Cores: 1}}})
	if got, want := g.QuotaLimit(pending(1, 2, 0, owner("e"))), "quota: the task needs 2 cores but group small's quota is 1"; got != want {
		t.Errorf("group limit: %q, want %q", got, want)
	}
}
