package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/spf13/cobra"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/fsm"
)

// logsOptions holds the flags of "task logs".
type logsOptions struct {
	stderr       bool
	follow       bool
	pollInterval time.Duration
}

func newTaskLogsCmd(g *clientFlags) *cobra.Command {
	o := &logsOptions{}
	cmd := &cobra.Command{
		Use:   "logs TASK_ID",
		Short: "Print a command task's output",
		Long: `Print a command task's standard output (or, with --stderr, its standard
error) as the host's shared directory holds it. The bytes are written as
they are; --output does not apply.

Without --follow a log file that does not exist yet is an error. With
--follow the command keeps polling for new bytes, waits for a log file
that was not written yet, and stops once the task has reached a final
status and everything it wrote was printed. Ctrl-C stops it earlier.`,
		Example: `  hakuriver task logs 1790263384729600000
  hakuriver task logs --stderr 1790263384729600000
  hakuriver task logs --follow --poll-interval 2s 1790263384729600000`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runTaskLogs(cmd, g, o, args[0])
		},
	}
	f := cmd.Flags()
	f.BoolVar(&o.stderr, "stderr", false, "print the standard error instead of the standard output")
	f.BoolVarP(&o.follow, "follow", "f", false, "keep printing new output until the task finishes")
	f.DurationVar(&o.pollInterval, "poll-interval", 500*time.Millisecond, "time between reads with --follow")
	return cmd
}

func runTaskLogs(cmd *cobra.Command, g *clientFlags, o *logsOptions, id string) error {
	if _, err := g.format(); err != nil {
		return err
	}
	if o.follow && o.pollInterval <= 0 {
		return fmt.Errorf("invalid --poll-interval %s: must be positive", o.pollInterval)
	}
	stream := api.StreamStdout
	if o.stderr {
		stream = api.StreamStderr
	}
	c, err := g.client()
	if err != nil {
		return err
	}
	defer c.Close()
	f := &logFollower{g: g, c: c, id: id, stream: stream, out: cmd.OutOrStdout(), warn: cmd.ErrOrStderr()}
	if !o.follow {
		return f.dump(cmd.Context())
	}
	return f.follow(cmd.Context(), o.pollInterval)
}

// logFollower prints one log stream of one task, from offset on.
type logFollower struct {
	g      *clientFlags
	c      *api.Client
	id     string
	stream string
	out    io.Writer
	warn   io.Writer
	offset int64
}

// read fetches the bytes from f.offset on within one --timeout bound,
// prints them and advances f.offset. It returns how many bytes it printed
// and the task status the host sent along.
func (f *logFollower) read(ctx context.Context) (int, string, error) {
	cctx, cancel := f.g.call(ctx)
	data, next, status, err := f.c.Logs(cctx, f.id, f.stream, f.offset)
	cancel()
	if err != nil {
		return 0, "", err
	}
	if len(data) > 0 {
		if _, err := f.out.Write(data); err != nil {
			return 0, "", fmt.Errorf("write output: %w", err)
		}
	}
	f.offset = next
	return len(data), status, nil
}

// dump prints the whole log as it is now: it reads until a read returns
// nothing, so a log larger than one answer is printed whole.
func (f *logFollower) dump(ctx context.Context) error {
	for {
		n, _, err := f.read(ctx)
		if err != nil || n == 0 {
			return err
		}
	}
}

// follow prints the log and every byte appended to it, polling every
// interval, until a read made while the task was final returns nothing.
// A log file not written yet keeps it waiting; so do transient errors (no
// replica, no leader), reported once on f.warn. The end of ctx, another
// error answer, an unknown task, or a finished task that never wrote the
// file stop it with an error.
func (f *logFollower) follow(ctx context.Context, interval time.Duration) error {
	var m missingLog
	lastWarn := ""
	for {
		n, status, err := f.read(ctx)
		switch {
		case err != nil && ctx.Err() != nil:
			return fmt.Errorf("follow %s of task %s: %w", f.stream, f.id, ctx.Err())
		case err == nil:
			m = missingLog{}
			if status == "" && n == 0 {
				// A host that sends no status header: ask for it.
				status, _ = f.status(ctx) // on error the status stays unknown: keep polling
			}
			if n == 0 && fsm.Status(status).Final() {
				return nil
			}
			if n > 0 {
				continue // drain what is there before sleeping
			}
		case apiStatus(err) == http.StatusNotFound:
			if err := f.missing(ctx, &m, err, &lastWarn); err != nil {
				return err
			}
		case apiStatus(err) >= 400 && apiStatus(err) < 500:
			return err
		default:
			f.warnOnce(&lastWarn, err)
		}
		timer := time.NewTimer(interval)
		select {
		case <-ctx.Done():
			timer.Stop()
			return fmt.Errorf("follow %s of task %s: %w", f.stream, f.id, ctx.Err())
		case <-timer.C:
		}
	}
}

// missingLog is what follow knows about a run of 404 answers.
type missingLog struct {
	firstUnknown time.Time // when the task was first unknown
	final        bool      // the file was missing after the task had ended
}

// missing handles a 404 answer (notFound) of a log read while following:
// the file may not be written yet, or the answering replica may not know
// the task yet. It asks for the task's status and returns an error only
// when following must stop: the task stayed unknown for notFoundGrace, or
// it had ended and a further read still found no file.
func (f *logFollower) missing(ctx context.Context, m *missingLog, notFound error, lastWarn *string) error {
	st, err := f.status(ctx)
	switch {
	case err != nil && ctx.Err() != nil:
		return fmt.Errorf("follow %s of task %s: %w", f.stream, f.id, ctx.Err())
	case apiStatus(err) == http.StatusNotFound:
		if m.firstUnknown.IsZero() {
			m.firstUnknown = time.Now()
		} else if time.Since(m.firstUnknown) > notFoundGrace {
			return notFound
		}
	case err != nil:
		f.warnOnce(lastWarn, err)
	case fsm.Status(st).Final():
		if m.final {
			return fmt.Errorf("task %s ended %s without a %s file: %w", f.id, st, f.stream, notFound)
		}
		m.final = true // one more read, in case the file just appeared
	default:
		m.firstUnknown = time.Time{}
	}
	return nil
}

// status returns the task's status as the answering replica knows it.
func (f *logFollower) status(ctx context.Context) (string, error) {
	cctx, cancel := f.g.call(ctx)
	defer cancel()
	t, err := f.c.Status(cctx, f.id)
	if err != nil {
		return "", err
	}
	return string(t.Status), nil
}

// warnOnce reports a transient error on f.warn unless it repeats the last.
func (f *logFollower) warnOnce(last *string, err error) {
	if msg := err.Error(); msg != *last {
		fmt.Fprintf(f.warn, "warning: %s (still following)\n", msg)
		*last = msg
	}
}
