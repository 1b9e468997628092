package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/hakuriver/hakuriver-ha/fsm"
)

// DefaultNotFoundGrace is how long the waiting calls keep polling a task
// that the answering replica does not know yet: a replica's local state may
// lag the leader that acknowledged the submit.
const DefaultNotFoundGrace = 30 * time.Second

// PollOptions configure the polling calls (WaitTasks, WaitVPS, FollowLogs).
type PollOptions struct {
	// Interval is the time between two polls; it must be positive.
	Interval time.Duration
	// CallTimeout bounds each API call (0: only ctx bounds it).
	CallTimeout time.Duration
	// NotFoundGrace is how long a task may stay unknown (HTTP 404);
	// DefaultNotFoundGrace when 0.
	NotFoundGrace time.Duration
	// Warn, when set, is told of each transient error (no replica, no
	// leader) that keeps the call polling, once per distinct message in a
	// row.
	Warn func(error)
}

// StatusCode returns the HTTP status of an *APIError in err, or 0.
func StatusCode(err error) int {
	var e *APIError
	if errors.As(err, &e) {
		return e.StatusCode
	}
	return 0
}

// call returns ctx bounded by CallTimeout for one API call.
func (o PollOptions) call(ctx context.Context) (context.Context, context.CancelFunc) {
	if o.CallTimeout <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, o.CallTimeout)
}

func (o PollOptions) grace() time.Duration {
	if o.NotFoundGrace <= 0 {
		return DefaultNotFoundGrace
	}
	return o.NotFoundGrace
}

// warner reports transient errors through Warn, skipping repeats.
type warner struct {
	warn func(error)
	last string
}

func (w *warner) report(err error) {
	if msg := err.Error(); w.warn != nil && msg != w.last {
		w.warn(err)
		w.last = msg
	}
}

// sleep waits d or until ctx ends, and reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-timer.C:
		return true
	}
}

// WaitTasks polls every task of ids until each reaches a final status and
// returns them in ids order; ended, when set, is called once for each task
// (with its ID as given) as it is seen final. Transient errors (no replica, no leader) keep it
// polling; a task unknown for longer than o.NotFoundGrace or another 4xx
// answer stops it with that error, and the end of ctx with an error naming
// every unfinished task with its last seen status. It reads every
// unfinished task once per o.Interval (a round): task by task, or, for
// the tasks of a batch when it waits on batchReadMin or more, with the
// batch's listing (a page per thousand tasks); between two rounds it
// follows the first unfinished task with blocking queries (follow), so
// that its changes are seen at once at the cost of one request each, not
// of a round. It is safe for concurrent use as the Client is.
func (c *Client) WaitTasks(ctx context.Context, ids []string, o PollOptions, ended func(id string, t fsm.Task)) ([]fsm.Task, error) {
	if o.Interval <= 0 {
		return nil, fmt.Errorf("poll interval %s: must be positive", o.Interval)
	}
	done := make(map[string]fsm.Task, len(ids))
	seen := make(map[string]fsm.Status, len(ids))
	firstMiss := make(map[string]time.Time)
	w := warner{warn: o.Warn}
	distinct := map[string]bool{}
	for _, id := range ids {
		distinct[id] = true
	}
	br := newBatchReader(ids)
	record := func(id string, t fsm.Task) {
		delete(firstMiss, id)
		seen[id] = t.Status
		br.learn(id, t.BatchID)
		if t.Done() { // final, and no retry follows
			done[id] = t
			if ended != nil {
				ended(id, t)
			}
		}
	}
	for {
		round := time.Now()
		br.startRound()
		for _, id := range ids {
			if _, ok := done[id]; ok || br.read[id] {
				continue
			}
			cctx, cancel := o.call(ctx)
			t, err := c.Status(cctx, id)
			cancel()
			if err != nil {
				if ctx.Err() != nil {
					return nil, waitEnded(ctx, ids, done, seen)
				}
				switch st := StatusCode(err); {
				case st == http.StatusNotFound:
					if firstMiss[id].IsZero() {
						firstMiss[id] = time.Now()
					} else if time.Since(firstMiss[id]) > o.grace() {
						return nil, fmt.Errorf("wait for task %s: %w", id, err)
					}
				case st >= 400 && st < 500:
					return nil, fmt.Errorf("wait for task %s: %w", id, err)
				default:
					w.report(err)
				}
				continue
			}
			record(id, t)
			if b := t.BatchID; br.worthListing(b, len(distinct)-len(done), done) {
				if err := c.readBatch(ctx, o, br, b, done, record); err != nil {
					w.report(err)
				}
			}
		}
		if len(done) < len(distinct) {
			c.follow(ctx, o, round, ids, done, seen, ended)
		}
		if len(done) == len(distinct) {
			break
		}
		if !sleep(ctx, o.Interval-time.Since(round)) {
			return nil, waitEnded(ctx, ids, done, seen)
		}
	}
	tasks := make([]fsm.Task, len(ids))
	for i, id := range ids {
		tasks[i] = done[id]
	}
	return tasks, nil
}

// batchReadMin is how many unfinished tasks of a batch WaitTasks must
// wait on for it to read them with the batch's listing (GET
// /api/tasks?batch=) rather than task by task.
const batchReadMin = 8

// batchPage is the page size of WaitTasks' batch reads.
const batchPage = 1000

// batchReader is what WaitTasks knows of the batches of the tasks it waits
// on, to read them through their listings.
type batchReader struct {
	byID    map[int64][]string // the IDs as given (canonical integers only), by task ID
	batchOf map[string]int64   // the batch of each ID read (0: none)
	refused map[int64]bool     // listings the replica refused (4xx): never asked again
	known   map[int64]bool     // batches listed once: their members waited on are known
	// In the current round:
	read   map[string]bool // IDs read from a listing
	listed map[int64]bool  // batches listed
}

func newBatchReader(ids []string) *batchReader {
	br := &batchReader{byID: map[int64][]string{}, batchOf: map[string]int64{}, refused: map[int64]bool{}, known: map[int64]bool{}}
	for _, id := range ids {
		// Only canonical IDs: the replica refuses "+7" or "007" by ID,
		// and a listing must not accept what a read would refuse.
		if n, err := strconv.ParseInt(id, 10, 64); err == nil && n > 0 && strconv.FormatInt(n, 10) == id {
			br.byID[n] = append(br.byID[n], id)
		}
	}
	return br
}

func (br *batchReader) startRound() {
	br.read, br.listed = map[string]bool{}, map[int64]bool{}
}

func (br *batchReader) learn(id string, batch int64) { br.batchOf[id] = batch }

// unfinished returns the unfinished IDs (as task IDs) known to be of batch
// b, and the lowest and highest of them.
func (br *batchReader) unfinished(b int64, done map[string]fsm.Task) (n int, lo, hi int64) {
	for id, batch := range br.batchOf {
		if _, ok := done[id]; ok || batch != b {
			continue
		}
		v, err := strconv.ParseInt(id, 10, 64)
		if err != nil || len(br.byID[v]) == 0 {
			continue
		}
		if n == 0 || v < lo {
			lo = v
		}
		if n == 0 || v > hi {
			hi = v
		}
		n++
	}
	return n, lo, hi
}

// worthListing says whether batch b is to be listed now: not refused, not
// listed in this round, and with batchReadMin or more of the tasks waited
// on (of those known to be of b once it was listed; before, of all those
// unfinished: their batches are not known yet).
func (br *batchReader) worthListing(b int64, unfinished int, done map[string]fsm.Task) bool {
	if b == 0 || br.refused[b] || br.listed[b] {
		return false
	}
	if br.known[b] {
		unfinished, _, _ = br.unfinished(b, done)
	}
	return unfinished >= batchReadMin
}

// readBatch reads batch b's listing page by page and records each task of
// it that WaitTasks waits on and has not read in this round. Once the
// members of b it waits on are known, it starts at the highest unfinished
// one and stops below the lowest (newest first: tasks that ended before
// are not read again). It stops paging after 4 rows per task waited on
// plus a page, so that a few tasks of a large batch cost little; those
// not read are read one by one. A listing the replica refuses (4xx) is not
// asked again; other errors are returned.
func (c *Client) readBatch(ctx context.Context, o PollOptions, br *batchReader, b int64, done map[string]fsm.Task, record func(string, fsm.Task)) error {
	br.listed[b] = true
	wanted, lo, hi := br.unfinished(b, done)
	q := TaskQuery{Batch: strconv.FormatInt(b, 10), Limit: batchPage}
	if br.known[b] {
		q.After = strconv.FormatInt(hi+1, 10)
	} else {
		lo, wanted = 0, len(br.byID) // not known yet: the whole batch
	}
	rows := 0
	for {
		cctx, cancel := o.call(ctx)
		tasks, page, err := c.Tasks(cctx, q)
		cancel()
		if st := StatusCode(err); st >= 400 && st < 500 {
			br.refused[b] = true
			return nil
		} else if err != nil {
			return fmt.Errorf("list batch %d: %w", b, err)
		}
		rows += len(tasks)
		br.known[b] = true
		for _, t := range tasks {
			for _, id := range br.byID[t.TaskID] {
				if _, ok := done[id]; ok || br.read[id] {
					continue
				}
				br.read[id] = true
				record(id, t)
			}
		}
		if !page.More || page.NextAfter == "" || len(tasks) == 0 || tasks[len(tasks)-1].TaskID <= lo || rows > 4*wanted+batchPage {
			return nil
		}
		q.After = page.NextAfter
	}
}

// follow is WaitTasks' wait between two rounds, until o.Interval after the
// round began: it asks the replica (StatusChange, a blocking query) to
// answer as soon as the first unfinished task changes status, records the
// change (and the task's end, moving on to the next unfinished one) and
// asks again. A replica of an earlier version answers at once, unchanged:
// follow then returns, and WaitTasks sleeps the rest of the interval.
// Errors are left to the next round.
func (c *Client) follow(ctx context.Context, o PollOptions, round time.Time, ids []string, done map[string]fsm.Task, seen map[string]fsm.Status, ended func(id string, t fsm.Task)) {
	for _, id := range ids {
		if _, ok := done[id]; ok {
			continue
		}
		for {
			st, ok := seen[id]
			// The call must not time out: neither ctx's bound nor the
			// client's per-exchange one.
			wait := min(o.Interval-time.Since(round), MaxStatusWait, c.cfg.Timeout/2)
			if o.CallTimeout > 0 {
				wait = min(wait, o.CallTimeout/2)
			}
			if !ok || wait <= 0 || ctx.Err() != nil {
				return // not seen yet (nothing to wait on), or the round is due
			}
			cctx, cancel := o.call(ctx)
			t, err := c.StatusChange(cctx, id, st, wait)
			cancel()
			if err != nil {
				return
			}
			if t.Done() { // answered at once, changed or not
				seen[id], done[id] = t.Status, t
				if ended != nil {
					ended(id, t)
				}
				break // on to the next unfinished task
			}
			if t.Status == st {
				return
			}
			seen[id] = t.Status
		}
	}
}

// waitEnded is WaitTasks' error when ctx ended first: it wraps ctx's error
// and names every unfinished task with its last seen status.
func waitEnded(ctx context.Context, ids []string, done map[string]fsm.Task, seen map[string]fsm.Status) error {
	var pending []string
	for _, id := range ids {
		if _, ok := done[id]; ok {
			continue
		}
		st := string(seen[id])
		if st == "" {
			st = "unknown"
		}
		pending = append(pending, id+" "+st)
	}
	return fmt.Errorf("wait for tasks: %w; still unfinished: %s", ctx.Err(), strings.Join(pending, ", "))
}

// WaitVPS polls a VPS task until it runs with a known SSH port and returns
// it. A VPS that ends first is an error carrying its message (with the
// final task); one the answering replica does not know yet is waited for up
// to o.NotFoundGrace; any other error stops it at once. o.Warn is not used.
func (c *Client) WaitVPS(ctx context.Context, id string, o PollOptions) (fsm.Task, error) {
	if o.Interval <= 0 {
		return fsm.Task{}, fmt.Errorf("poll interval %s: must be positive", o.Interval)
	}
	var firstMiss time.Time
	for {
		cctx, cancel := o.call(ctx)
		t, err := c.Status(cctx, id)
		cancel()
		switch {
		case err == nil:
			firstMiss = time.Time{}
			if t.Status == fsm.StatusRunning && t.SSHPort > 0 {
				return t, nil
			}
			if t.Status.Final() {
				msg := t.ErrorMessage
				if msg == "" {
					msg = "-"
				}
				return t, fmt.Errorf("VPS %s %s before it ran: %s", id, t.Status, msg)
			}
		case ctx.Err() == nil && StatusCode(err) == http.StatusNotFound:
			// The answering replica has not applied the submit yet (it was
			// acknowledged by the leader): wait for it, as WaitTasks does.
			if firstMiss.IsZero() {
				firstMiss = time.Now()
			} else if time.Since(firstMiss) > o.grace() {
				return t, err
			}
		default:
			return t, err
		}
		if !sleep(ctx, o.Interval) {
			return t, fmt.Errorf("wait for VPS %s (status %s): %w", id, t.Status, ctx.Err())
		}
	}
}
