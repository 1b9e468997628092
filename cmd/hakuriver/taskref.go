package main

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/fsm"
)

// taskRef is what a command-line argument names: one task or a batch.
type taskRef struct {
	id    string // the task or batch ID
	batch bool
	task  *fsm.Task // the task, when the lookup fetched it
}

// maxBatchList bounds the tasks read for one batch (the host's page limit).
const maxBatchList = 100000

// resolveRef turns a task ID, a batch ID or a task name into a taskRef.
// A numeric argument is a task ID when such a task exists, else a batch ID
// when a batch has it (a batch gets an ID of its own, never a task's);
// forceBatch takes it as a batch ID in any case (batches submitted before
// batch IDs of their own share their first task's ID). Any other argument
// is a task name: it must name one task, or tasks of one batch (a named
// sweep or array), else the error lists the candidates.
func resolveRef(ctx context.Context, c *api.Client, arg string, forceBatch bool) (taskRef, error) {
	arg = strings.TrimSpace(arg)
	if arg == "" {
		return taskRef{}, fmt.Errorf("empty task ID")
	}
	if _, err := strconv.ParseInt(arg, 10, 64); err == nil {
		if forceBatch {
			return taskRef{id: arg, batch: true}, nil
		}
		t, err := c.Status(ctx, arg)
		if err == nil {
			return taskRef{id: arg, task: &t}, nil
		}
		if api.StatusCode(err) != http.StatusNotFound {
			return taskRef{}, err
		}
		in, _, lerr := c.Tasks(ctx, api.TaskQuery{Batch: arg, Limit: 1})
		if lerr == nil && len(in) > 0 {
			return taskRef{id: arg, batch: true}, nil
		}
		return taskRef{}, err
	}
	if forceBatch {
		return taskRef{}, fmt.Errorf("--batch: %q is not a batch ID", arg)
	}
	if !fsm.ValidTaskName(arg) {
		return taskRef{}, fmt.Errorf("%q is neither a task ID, a batch ID nor a task name", arg)
	}
	named, _, err := c.Tasks(ctx, api.TaskQuery{Name: arg, Limit: 50})
	if err != nil {
		return taskRef{}, fmt.Errorf("look up task name %q: %w", arg, err)
	}
	switch {
	case len(named) == 0:
		return taskRef{}, fmt.Errorf("no task is named %q", arg)
	case len(named) == 1:
		t := named[0]
		return taskRef{id: strconv.FormatInt(t.TaskID, 10), task: &t}, nil
	}
	if b := named[0].BatchID; b != 0 && !slices.ContainsFunc(named, func(t fsm.Task) bool { return t.BatchID != b }) {
		return taskRef{id: strconv.FormatInt(b, 10), batch: true}, nil
	}
	var cands []string
	for _, t := range named {
		s := fmt.Sprintf("%d (%s", t.TaskID, t.Status)
		if t.BatchID != 0 {
			s += fmt.Sprintf(", batch %d", t.BatchID)
		}
		cands = append(cands, s+")")
	}
	return taskRef{}, fmt.Errorf("the name %q is ambiguous: %d tasks carry it: %s; give a task ID", arg, len(named), strings.Join(cands, ", "))
}

// isNumeric reports whether s is a decimal ID.
func isNumeric(s string) bool {
	_, err := strconv.ParseInt(s, 10, 64)
	return err == nil
}

// actionRef is resolveRef for kill, pause and resume, which try a numeric
// ID as a task first with the action itself (one call, no lookup).
func actionRef(ctx context.Context, c *api.Client, arg string, forceBatch bool) (taskRef, error) {
	arg = strings.TrimSpace(arg)
	if isNumeric(arg) {
		return taskRef{id: arg, batch: forceBatch}, nil
	}
	return resolveRef(ctx, c, arg, forceBatch)
}

// batchTasks lists every task of a batch, oldest first.
func batchTasks(ctx context.Context, c *api.Client, id string) ([]fsm.Task, error) {
	tasks, _, err := c.Tasks(ctx, api.TaskQuery{Batch: id, Limit: maxBatchList})
	if err != nil {
		return nil, err
	}
	if len(tasks) == 0 {
		return nil, fmt.Errorf("batch %s not found", id)
	}
	slices.SortFunc(tasks, func(a, b fsm.Task) int { return compareInt64(a.TaskID, b.TaskID) })
	return tasks, nil
}

func compareInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// batchSummary is what "task list --batch" and "task status BATCH_ID" say
// about a batch.
type batchSummary struct {
	BatchID string         `json:"batch_id"`
	Tasks   int            `json:"tasks"`
	Counts  map[string]int `json:"counts"`
	// FailedIndexes are the array indexes (or, outside arrays, task IDs)
	// of the tasks that ended other than completed.
	FailedIndexes []string `json:"failed_indexes"`
}

func summarizeBatch(id string, tasks []fsm.Task) batchSummary {
	s := batchSummary{BatchID: id, Tasks: len(tasks), Counts: map[string]int{}, FailedIndexes: []string{}}
	for _, t := range tasks {
		s.Counts[string(t.Status)]++
		if t.Done() && t.Status != fsm.StatusCompleted { // a task whose retry is due has not failed yet
			if t.ArrayIndex != nil {
				s.FailedIndexes = append(s.FailedIndexes, strconv.Itoa(*t.ArrayIndex))
			} else {
				s.FailedIndexes = append(s.FailedIndexes, strconv.FormatInt(t.TaskID, 10))
			}
		}
	}
	return s
}

// String renders the summary on one line: "batch 17: 12 tasks: 9
// completed, 3 failed; failed indexes: 1, 4, 7".
func (s batchSummary) String() string {
	var parts []string
	for _, st := range fsm.AllStatuses() {
		if n := s.Counts[string(st)]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, st))
		}
	}
	line := fmt.Sprintf("Batch %s: %d tasks: %s", s.BatchID, s.Tasks, strings.Join(parts, ", "))
	if len(s.FailedIndexes) > 0 {
		line += "; did not complete: " + compactList(s.FailedIndexes, 20)
	}
	return line
}

// compactList joins numbers with runs of consecutive ones as "A-B", at
// most max parts, then "... (N more)".
func compactList(items []string, max int) string {
	var parts []string
	more := 0
	for i := 0; i < len(items); {
		j := i
		for j+1 < len(items) && consecutive(items[j], items[j+1]) {
			j++
		}
		part := items[i]
		if j > i {
			part += "-" + items[j]
		}
		if len(parts) < max {
			parts = append(parts, part)
		} else {
			more += j - i + 1
		}
		i = j + 1
	}
	if more > 0 {
		parts = append(parts, fmt.Sprintf("... (%d more)", more))
	}
	return strings.Join(parts, ", ")
}

// consecutive reports whether b is the number after a.
func consecutive(a, b string) bool {
	x, err1 := strconv.ParseInt(a, 10, 64)
	y, err2 := strconv.ParseInt(b, 10, 64)
	return err1 == nil && err2 == nil && y == x+1
}
