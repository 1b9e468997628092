package scheduler

import (
	"fmt"
	"slices"

	"github.com/hakuriver/hakuriver-ha/fsm"
)

// Use is what tasks hold against a quota: the tasks of an account (or of
// all the members of a group) that hold resources (Holds), and for VPS the
// VPS tasks among them.
type Use struct {
	Cores        int
	MemoryBytes  int64
	GPUs         int
	RunningTasks int
	VPS          int
}

// Demand is what t counts against its owner's quotas while it holds
// resources: its cores, memory and GPUs (the IDs it was given, or the count
// it asked for), one running task, and one VPS for a VPS task.
func Demand(t *fsm.Task) Use {
	d := Use{Cores: t.RequiredCores, MemoryBytes: t.RequiredMemoryBytes, GPUs: max(len(t.RequiredGPUs), t.GPUCount), RunningTasks: 1}
	if t.TaskType == fsm.TaskVPS {
		d.VPS = 1
	}
	return d
}

// Add adds d to u.
func (u *Use) Add(d Use) {
	u.Cores += d.Cores
	u.MemoryBytes += d.MemoryBytes
	u.GPUs += d.GPUs
	u.RunningTasks += d.RunningTasks
	u.VPS += d.VPS
}

// quotaItem is one limited resource: its name in reasons, its limit, and
// what a Use holds of it.
type quotaItem struct {
	unit  string
	limit int64
	used  func(Use) int64
}

// items lists q's resources in a fixed order, limited or not.
func items(q fsm.Quota) [5]quotaItem {
	return [5]quotaItem{
		{"cores", int64(q.Cores), func(u Use) int64 { return int64(u.Cores) }},
		{"bytes of memory", q.MemoryBytes, func(u Use) int64 { return u.MemoryBytes }},
		{"GPUs", int64(q.GPUs), func(u Use) int64 { return int64(u.GPUs) }},
		{"running tasks", int64(q.RunningTasks), func(u Use) int64 { return int64(u.RunningTasks) }},
		{"VPS", int64(q.VPS), func(u Use) int64 { return int64(u.VPS) }},
	}
}

// Limited reports whether q sets any limit.
func Limited(q fsm.Quota) bool { return q != fsm.Quota{} }

// overQuota returns why adding d to use would exceed q ("" when it would
// not): "quota: user alice uses 8 of 8 cores", with ", needs N" when the
// task asks for more than one unit of that resource.
func overQuota(kind, name string, q fsm.Quota, use, d Use) string {
	for _, it := range items(q) {
		need := it.used(d)
		if it.limit == 0 || need == 0 || it.used(use)+need <= it.limit {
			continue
		}
		reason := fmt.Sprintf("quota: %s %s uses %d of %d %s", kind, name, it.used(use), it.limit, it.unit)
		if need > 1 {
			reason += fmt.Sprintf(", needs %d", need)
		}
		return reason
	}
	return ""
}

// Quotas are the account limits Plan enforces. The caller builds them from
// the committed accounts (NewQuotas), so Plan stays a pure function of its
// inputs. A nil *Quotas enforces nothing.
type Quotas struct {
	// users holds every user with a limit of their own or in a group
	// with one: their own quota and their limited groups, deduplicated.
	users  map[string]userQuota
	groups map[string]fsm.Quota
}

type userQuota struct {
	quota  fsm.Quota
	groups []string
}

// NewQuotas builds the limits of these users and groups. A user's group
// that does not exist, or sets no limit, limits nothing. It returns nil
// when nothing is limited.
func NewQuotas(users []fsm.User, groups []fsm.Group) *Quotas {
	q := &Quotas{users: map[string]userQuota{}, groups: map[string]fsm.Quota{}}
	for _, g := range groups {
		if Limited(g.Quota) {
			q.groups[g.Name] = g.Quota
		}
	}
	for _, u := range users {
		uq := userQuota{quota: u.Quota}
		for _, g := range u.Groups {
			if _, ok := q.groups[g]; ok && !slices.Contains(uq.groups, g) {
				uq.groups = append(uq.groups, g)
			}
		}
		if Limited(uq.quota) || len(uq.groups) > 0 {
			q.users[u.Name] = uq
		}
	}
	if len(q.users) == 0 {
		return nil
	}
	return q
}

// QuotaUse is what the tasks holding resources hold against each limited
// user's and group's quota.
type QuotaUse struct {
	Users  map[string]*Use
	Groups map[string]*Use
}

// Usage sums what the tasks holding resources (Holds) among active hold
// against q's users and groups. Every limited user and group has an entry.
func (q *Quotas) Usage(active []*fsm.Task) QuotaUse {
	u := QuotaUse{Users: map[string]*Use{}, Groups: map[string]*Use{}}
	if q == nil {
		return u
	}
	for name := range q.users {
		u.Users[name] = &Use{}
	}
	for name := range q.groups {
		u.Groups[name] = &Use{}
	}
	for _, t := range active {
		if Holds(t.Status) {
			q.charge(t, u)
		}
	}
	return u
}

// charge adds t's demand to its owner's use and that of their groups.
func (q *Quotas) charge(t *fsm.Task, use QuotaUse) {
	uq, ok := q.users[t.Owner]
	if !ok {
		return
	}
	d := Demand(t)
	use.Users[t.Owner].Add(d)
	for _, g := range uq.groups {
		use.Groups[g].Add(d)
	}
}

// hold returns why t must wait for its owner's quota ("" when it may be
// placed now): the first of the user's own limits, then each limited
// group's, that placing t would exceed.
func (q *Quotas) hold(t *fsm.Task, use QuotaUse) string {
	if q == nil {
		return ""
	}
	uq, ok := q.users[t.Owner]
	if !ok {
		return ""
	}
	d := Demand(t)
	if r := overQuota("user", t.Owner, uq.quota, *use.Users[t.Owner], d); r != "" {
		return r
	}
	for _, g := range uq.groups {
		if r := overQuota("group", g, q.groups[g], *use.Groups[g], d); r != "" {
			return r
		}
	}
	return ""
}

// QuotaLimit says why t could never run under its owner's quotas, even with
// nothing else of theirs running ("" when it could): it asks for more
// cores, memory or GPUs than the user's or one of their groups' limit.
// Submit refuses such work instead of queueing it forever.
func (q *Quotas) QuotaLimit(t *fsm.Task) string {
	if q == nil {
		return ""
	}
	uq, ok := q.users[t.Owner]
	if !ok {
		return ""
	}
	d := Demand(t)
	check := func(kind, name string, quota fsm.Quota) string {
		for _, it := range items(quota) {
			if need := it.used(d); it.limit > 0 && need > it.limit {
				return fmt.Sprintf("quota: the task needs %d %s but %s %s's quota is %d", need, it.unit, kind, name, it.limit)
			}
		}
		return ""
	}
	if r := check("user", t.Owner, uq.quota); r != "" {
		return r
	}
	for _, g := range uq.groups {
		if r := check("group", g, q.groups[g]); r != "" {
			return r
		}
	}
	return ""
}
