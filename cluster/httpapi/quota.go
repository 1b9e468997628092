package httpapi

import (
	"net/http"
	"slices"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/fsm"
	"github.com/hakuriver/hakuriver-ha/scheduler"
)

// quotas are the committed accounts' limits, as the scheduler enforces
// them (nil when nothing is limited, or without an account view).
func (a *API) quotas() *scheduler.Quotas {
	if a.d.Accounts == nil {
		return nil
	}
	return scheduler.NewQuotas(a.d.Accounts.Users(), a.d.Accounts.Groups())
}

// checkQuota refuses (403) a task that its owner's quotas could never let
// run, naming the quota; work that only has to wait for its owner's other
// tasks to finish is accepted and waits pending.
func checkQuota(q *scheduler.Quotas, tasks []*fsm.Task) error {
	for _, t := range tasks {
		if reason := q.QuotaLimit(t); reason != "" {
			return forbidden(reason + "; ask an admin to raise it")
		}
	}
	return nil
}

// quotaResources lists q's resources, each with what u uses of it.
func quotaResources(q fsm.Quota, u scheduler.Use) []api.QuotaResource {
	return []api.QuotaResource{
		{Resource: "cores", Used: int64(u.Cores), Limit: int64(q.Cores)},
		{Resource: "memory_bytes", Used: u.MemoryBytes, Limit: q.MemoryBytes},
		{Resource: "gpus", Used: int64(u.GPUs), Limit: int64(q.GPUs)},
		{Resource: "running_tasks", Used: int64(u.RunningTasks), Limit: int64(q.RunningTasks)},
		{Resource: "vps", Used: int64(u.VPS), Limit: int64(q.VPS)},
	}
}

// Quota serves GET /api/quota: every user and group that sets a limit, with
// what its tasks holding resources use of each (a group: all its members'
// tasks). ?user=NAME answers that user, limited or not, and their groups
// that set a limit.
func (a *API) Quota(w http.ResponseWriter, r *http.Request) {
	only := r.URL.Query().Get("user")
	if only != "" && !fsm.NameRE().MatchString(only) {
		writeError(w, badRequest("user %q: not a user name", only))
		return
	}
	users := a.d.Accounts.Users()
	if only != "" && !slices.ContainsFunc(users, func(u fsm.User) bool { return u.Name == only }) {
		writeError(w, notFound("no user %q", only))
		return
	}
	// What each owner's tasks holding resources use.
	byOwner := map[string]*scheduler.Use{}
	for _, t := range a.d.Tasks.Active() {
		if !scheduler.Holds(t.Status) {
			continue
		}
		u := byOwner[t.Owner]
		if u == nil {
			u = &scheduler.Use{}
			byOwner[t.Owner] = u
		}
		u.Add(scheduler.Demand(t))
	}
	use := func(owner string) scheduler.Use {
		if u := byOwner[owner]; u != nil {
			return *u
		}
		return scheduler.Use{}
	}
	limited := map[string]fsm.Group{}
	for _, g := range a.d.Accounts.Groups() {
		if scheduler.Limited(g.Quota) {
			limited[g.Name] = g
		}
	}
	groupUse, members := map[string]scheduler.Use{}, map[string][]string{}
	out := []api.QuotaEntry{}
	var wanted []string // the groups to list, in order
	for _, u := range users {
		var groups []string
		for _, g := range u.Groups {
			if _, ok := limited[g]; ok && !slices.Contains(groups, g) {
				groups = append(groups, g)
				members[g] = append(members[g], u.Name)
				gu := groupUse[g]
				gu.Add(use(u.Name))
				groupUse[g] = gu
			}
		}
		if only != "" && u.Name != only || only == "" && !scheduler.Limited(u.Quota) {
			continue
		}
		out = append(out, api.QuotaEntry{Kind: "user", Name: u.Name, Groups: groups, Resources: quotaResources(u.Quota, use(u.Name))})
		wanted = append(wanted, groups...)
	}
	for _, g := range a.d.Accounts.Groups() {
		if _, ok := limited[g.Name]; !ok || only != "" && !slices.Contains(wanted, g.Name) {
			continue
		}
		out = append(out, api.QuotaEntry{Kind: "group", Name: g.Name, Members: members[g.Name], Resources: quotaResources(g.Quota, groupUse[g.Name])})
	}
	writeJSON(w, http.StatusOK, out)
}
