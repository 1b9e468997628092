//go:build integration

package harness

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/fsm"
)

// Task returns task id as replica i holds it (its local FSM).
func (c *Cluster) Task(i int, id string) (api.Task, error) {
	a, err := c.callTimeout(i, ReadTimeout, http.MethodGet, "/api/status/"+id, nil)
	if err != nil {
		return api.Task{}, err
	}
	if a.Status != http.StatusOK {
		return api.Task{}, fmt.Errorf("GET /api/status/%s on %s: %s", id, c.Replica(i).ID, a)
	}
	var t api.Task
	return t, a.Decode(&t)
}

// TaskChange returns task id as replica i holds it once its status is no
// longer unless, or as it is after wait (at most ReadTimeout/2): GET
// /api/status's blocking query.
func (c *Cluster) TaskChange(i int, id string, unless fsm.Status, wait time.Duration) (api.Task, error) {
	wait = min(wait, ReadTimeout/2)
	q := url.Values{"wait": {wait.String()}, "unless": {string(unless)}}
	a, err := c.callTimeout(i, ReadTimeout, http.MethodGet, "/api/status/"+id+"?"+q.Encode(), nil)
	if err != nil {
		return api.Task{}, err
	}
	if a.Status != http.StatusOK {
		return api.Task{}, fmt.Errorf("GET /api/status/%s?%s on %s: %s", id, q.Encode(), c.Replica(i).ID, a)
	}
	var t api.Task
	return t, a.Decode(&t)
}

// anyTask returns task id from the first running replica that answers.
func (c *Cluster) anyTask(id string) (api.Task, error) {
	var errs []error
	for _, i := range c.Running() {
		t, err := c.Task(i, id)
		if err == nil {
			return t, nil
		}
		errs = append(errs, err)
	}
	return api.Task{}, fmt.Errorf("task %s: no running replica answered: %w", id, errors.Join(errs...))
}

// WaitTask waits until cond holds for task id, as the first running replica
// that answers sees it, and returns the task.
func (c *Cluster) WaitTask(id string, timeout time.Duration, what string, cond func(api.Task) bool) api.Task {
	c.tb.Helper()
	var out api.Task
	c.Poll(timeout, fmt.Sprintf("task %s %s", id, what), func() (bool, string) {
		t, err := c.anyTask(id)
		if err != nil {
			return false, err.Error()
		}
		out = t
		return cond(t), describeTask(t)
	})
	return out
}

// WaitStatus waits until task id has status.
func (c *Cluster) WaitStatus(id, status string, timeout time.Duration) api.Task {
	c.tb.Helper()
	return c.WaitTask(id, timeout, "to be "+status, func(t api.Task) bool { return string(t.Status) == status })
}

// WaitFinal waits until task id has a final status and returns it.
func (c *Cluster) WaitFinal(id string, timeout time.Duration) api.Task {
	c.tb.Helper()
	return c.WaitTask(id, timeout, "to end", func(t api.Task) bool { return t.Status.Final() })
}

// AllTasks lists every task replica i holds, in full, following the
// pagination headers.
func (c *Cluster) AllTasks(i int) ([]api.Task, error) {
	var all []api.Task
	after := ""
	for range maxPages {
		q := url.Values{"limit": {"100000"}}
		if after != "" {
			q.Set("after", after)
		}
		a, err := c.callTimeout(i, 30*time.Second, http.MethodGet, "/api/tasks?"+q.Encode(), nil)
		if err != nil {
			return nil, err
		}
		if a.Status != http.StatusOK {
			return nil, fmt.Errorf("GET /api/tasks on %s: %s", c.Replica(i).ID, a)
		}
		var page []api.Task
		if err := a.Decode(&page); err != nil {
			return nil, err
		}
		all = append(all, page...)
		if a.Header.Get(api.MoreHeader) != "true" {
			return all, nil
		}
		if after = a.Header.Get(api.NextAfterHeader); after == "" {
			return nil, fmt.Errorf("GET /api/tasks on %s: more pages but no %s", c.Replica(i).ID, api.NextAfterHeader)
		}
	}
	return nil, fmt.Errorf("GET /api/tasks on %s: more than %d pages", c.Replica(i).ID, maxPages)
}

// WaitAllFinal waits until every task in ids has a final status on the
// leader and returns them by ID.
func (c *Cluster) WaitAllFinal(ids []string, timeout time.Duration) map[string]api.Task {
	c.tb.Helper()
	out := map[string]api.Task{}
	c.Poll(timeout, fmt.Sprintf("%d tasks to end", len(ids)), func() (bool, string) {
		l, _, ok := c.Leader()
		if !ok {
			return false, "no leader"
		}
		tasks, err := c.AllTasks(l)
		if err != nil {
			return false, err.Error()
		}
		byID := make(map[string]api.Task, len(tasks))
		for _, t := range tasks {
			byID[fmt.Sprint(t.TaskID)] = t
		}
		counts := map[string]int{}
		var open []string
		for _, id := range ids {
			t, ok := byID[id]
			if !ok {
				counts["missing"]++
				open = append(open, id)
				continue
			}
			counts[string(t.Status)]++
			if !t.Status.Final() {
				open = append(open, id)
			}
			out[id] = t
		}
		return len(open) == 0, fmt.Sprintf("statuses %v; not final: %s", counts, head(open))
	})
	return out
}

func head(ids []string) string {
	if len(ids) > 5 {
		return fmt.Sprintf("%v... (%d)", ids[:5], len(ids))
	}
	return fmt.Sprint(ids)
}

// describeTask summarises a task for failure messages.
func describeTask(t api.Task) string {
	var b strings.Builder
	fmt.Fprintf(&b, "task %d %s on %q", t.TaskID, t.Status, t.AssignedNode)
	if t.ExitCode != nil {
		fmt.Fprintf(&b, " exit %d", *t.ExitCode)
	}
	if t.ErrorMessage != "" {
		fmt.Fprintf(&b, " (%s)", t.ErrorMessage)
	}
	return b.String()
}

// Stdout returns task id's stdout as replica i serves it.
func (c *Cluster) Stdout(i int, id string) (string, error) {
	a, err := c.callTimeout(i, ReadTimeout, http.MethodGet, "/api/task/"+id+"/stdout", nil)
	if err != nil {
		return "", err
	}
	if a.Status != http.StatusOK {
		return "", fmt.Errorf("GET /api/task/%s/stdout on %s: %s", id, c.Replica(i).ID, a)
	}
	return string(a.Body), nil
}

// post sends a write to replica i and fails unless it answers want.
func (c *Cluster) post(i int, path string, want int) Answer {
	c.tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), WriteTimeout)
	defer cancel()
	a, err := c.Call(ctx, i, http.MethodPost, path, nil)
	if err != nil {
		c.tb.Fatalf("POST %s on %s: %v", path, c.Replica(i).ID, err)
	}
	if a.Status != want {
		c.tb.Fatalf("POST %s on %s: want %d, got %s", path, c.Replica(i).ID, want, a)
	}
	return a
}

// KillTask asks replica i to kill task id (202).
func (c *Cluster) KillTask(i int, id string) {
	c.tb.Helper()
	c.post(i, "/api/kill/"+id, http.StatusAccepted)
}

// PauseTask and ResumeTask ask replica i to pause or resume task id (200).
func (c *Cluster) PauseTask(i int, id string) {
	c.tb.Helper()
	c.post(i, "/api/command/"+id+"/pause", http.StatusOK)
}

// ResumeTask asks replica i to resume task id (200).
func (c *Cluster) ResumeTask(i int, id string) {
	c.tb.Helper()
	c.post(i, "/api/command/"+id+"/resume", http.StatusOK)
}

// Drain drains (or, with drain false, undrains) node name through replica i.
func (c *Cluster) Drain(i int, name string, drain bool) {
	c.tb.Helper()
	verb := "drain"
	if !drain {
		verb = "undrain"
	}
	c.post(i, "/api/nodes/"+name+"/"+verb, http.StatusOK)
}

// Queue returns GET /api/queue from replica i.
func (c *Cluster) Queue(i int) ([]api.QueueEntry, error) {
	a, err := c.callTimeout(i, ReadTimeout, http.MethodGet, "/api/queue", nil)
	if err != nil {
		return nil, err
	}
	if a.Status != http.StatusOK {
		return nil, fmt.Errorf("GET /api/queue on %s: %s", c.Replica(i).ID, a)
	}
	var out []api.QueueEntry
	return out, a.Decode(&out)
}
