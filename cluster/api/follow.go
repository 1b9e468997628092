package api

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/hakuriver/hakuriver-ha/fsm"
)

// LogReader copies one log stream (StreamStdout or StreamStderr) of one
// task to W, from Offset on, through a Client. It is not safe for
// concurrent use.
type LogReader struct {
	Client *Client
	TaskID string
	Stream string
	W      io.Writer
	// Offset is the next byte to read; Read advances it.
	Offset int64
	Poll   PollOptions
}

// read fetches the bytes from r.Offset on within one call bound, writes
// them and advances r.Offset. It returns how many bytes it wrote and the
// task status the host sent along.
func (r *LogReader) read(ctx context.Context) (int, string, error) {
	cctx, cancel := r.Poll.call(ctx)
	data, next, status, err := r.Client.Logs(cctx, r.TaskID, r.Stream, r.Offset)
	cancel()
	if err != nil {
		return 0, "", err
	}
	if len(data) > 0 {
		if _, err := r.W.Write(data); err != nil {
			return 0, "", fmt.Errorf("write output: %w", err)
		}
	}
	r.Offset = next
	return len(data), status, nil
}

// Dump copies the whole log as it is now: it reads until a read returns
// nothing, so a log larger than one answer is copied whole. A log file not
// written yet is an error (HTTP 404).
func (r *LogReader) Dump(ctx context.Context) error {
	for {
		n, _, err := r.read(ctx)
		if err != nil || n == 0 {
			return err
		}
	}
}

// Follow copies the log and every byte appended to it, polling every
// r.Poll.Interval, until a read made while the task was final returns
// nothing. A log file not written yet keeps it waiting; so do transient
// errors (no replica, no leader), told to r.Poll.Warn. The end of ctx,
// another 4xx answer, a task unknown for longer than the not-found grace,
// or a finished task that never wrote the file stop it with an error.
func (r *LogReader) Follow(ctx context.Context) error {
	if r.Poll.Interval <= 0 {
		return fmt.Errorf("poll interval %s: must be positive", r.Poll.Interval)
	}
	var m missingLog
	w := warner{warn: r.Poll.Warn}
	for {
		n, status, err := r.read(ctx)
		switch {
		case err != nil && ctx.Err() != nil:
			return fmt.Errorf("follow %s of task %s: %w", r.Stream, r.TaskID, ctx.Err())
		case err == nil:
			m = missingLog{}
			if status == "" && n == 0 {
				// A host that sends no status header: ask for it.
				status, _ = r.status(ctx) // on error the status stays unknown: keep polling
			}
			if n == 0 && fsm.Status(status).Final() && r.lastAttempt(ctx) {
				return nil
			}
			if n > 0 {
				continue // drain what is there before sleeping
			}
		case StatusCode(err) == http.StatusNotFound:
			if err := r.missing(ctx, &m, err, &w); err != nil {
				return err
			}
		case StatusCode(err) >= 400 && StatusCode(err) < 500:
			return err
		default:
			w.report(err)
		}
		if !sleep(ctx, r.Poll.Interval) {
			return fmt.Errorf("follow %s of task %s: %w", r.Stream, r.TaskID, ctx.Err())
		}
	}
}

// missingLog is what Follow knows about a run of 404 answers.
type missingLog struct {
	firstUnknown time.Time // when the task was first unknown
	final        bool      // the file was missing after the task had ended
}

// missing handles a 404 answer (notFound) of a log read while following:
// the file may not be written yet, or the answering replica may not know
// the task yet. It asks for the task's status and returns an error only
// when following must stop: the task stayed unknown for the grace, or it
// had ended and a further read still found no file.
func (r *LogReader) missing(ctx context.Context, m *missingLog, notFound error, w *warner) error {
	st, err := r.status(ctx)
	switch {
	case err != nil && ctx.Err() != nil:
		return fmt.Errorf("follow %s of task %s: %w", r.Stream, r.TaskID, ctx.Err())
	case StatusCode(err) == http.StatusNotFound:
		if m.firstUnknown.IsZero() {
			m.firstUnknown = time.Now()
		} else if time.Since(m.firstUnknown) > r.Poll.grace() {
			return notFound
		}
	case err != nil:
		w.report(err)
	case fsm.Status(st).Final():
		if m.final {
			return fmt.Errorf("task %s ended %s without a %s file: %w", r.TaskID, st, r.Stream, notFound)
		}
		m.final = true // one more read, in case the file just appeared
	default:
		m.firstUnknown = time.Time{}
	}
	return nil
}

// status returns the task's status as the answering replica knows it.
func (r *LogReader) status(ctx context.Context) (string, error) {
	cctx, cancel := r.Poll.call(ctx)
	defer cancel()
	t, err := r.Client.Status(cctx, r.TaskID)
	if err != nil {
		return "", err
	}
	return string(t.Status), nil
}

// lastAttempt reports whether the task, final, will not be retried (a
// retry appends the next attempt's output to the same file): true also
// when its state cannot be read.
func (r *LogReader) lastAttempt(ctx context.Context) bool {
	cctx, cancel := r.Poll.call(ctx)
	defer cancel()
	t, err := r.Client.Status(cctx, r.TaskID)
	return err != nil || t.Done()
}
