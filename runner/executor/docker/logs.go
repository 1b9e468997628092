package docker

// Log streaming. A task's stdout and stderr are copied from the engine's log
// stream (json-file driver, demultiplexed with stdcopy) and appended to the
// task's output files while it runs, so `task logs --follow` sees them live.
//
// The stream is read with timestamps. The timestamp of the last entry
// appended to each file is kept in the task's state file in StateDir
// (written at most every stateSaveEvery and when the stream ends). A
// restarted runner re-attaches with Since set to those timestamps and skips
// entries it already appended, so output survives a runner restart without
// loss; only entries written in the last stateSaveEvery before a crash
// (SIGKILL) of the runner may appear twice. A task's end is reported only
// once its stream has been copied to the end.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/hakuriver/hakuriver-ha/ops/environment"
	"github.com/hakuriver/hakuriver-ha/runner/executor"
)

// stateSaveEvery bounds how often a task's log position is written.
const stateSaveEvery = 250 * time.Millisecond

// logState is a task's state file: the timestamp (Unix ns) of the last log
// entry appended per stream, and whether Kill ended it.
type logState struct {
	Stdout int64 `json:"stdout_ns,omitempty"`
	Stderr int64 `json:"stderr_ns,omitempty"`
	Killed bool  `json:"killed,omitempty"`
}

// task is the in-memory record of one task container.
type task struct {
	id      int64
	name    string
	stdout  string
	stderr  string
	started time.Time
	// logsDone is closed once the log stream was copied to its end.
	logsDone chan struct{}

	mu    sync.Mutex
	st    logState
	saved time.Time
	exit  *exitRecord
}

// exitRecord caches how an ended container ended.
type exitRecord struct {
	code      int
	oom       bool
	message   string
	startedAt time.Time
	endedAt   time.Time
	// usage is what the container consumed (nil: not measured).
	usage *executor.Usage
}

func (e *Executor) statePath(id int64) string {
	return filepath.Join(e.cfg.StateDir, strconv.FormatInt(id, 10)+".json")
}

// loadState reads a task's state file (zero when missing or unreadable).
func (e *Executor) loadState(id int64) logState {
	var st logState
	b, err := os.ReadFile(e.statePath(id))
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			e.log.Warn("read task state", keyTaskID, id, keyErr, err)
		}
		return st
	}
	if err := json.Unmarshal(b, &st); err != nil {
		e.log.Warn("corrupt task state; starting over", keyTaskID, id, keyErr, err)
		return logState{}
	}
	return st
}

// saveStateLocked writes t's state file atomically; t.mu is held.
func (e *Executor) saveStateLocked(t *task) error {
	b, err := json.Marshal(t.st)
	if err != nil {
		return fmt.Errorf("encode task state: %w", err)
	}
	path := e.statePath(t.id)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("write task state: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write task state: %w", err)
	}
	t.saved = time.Now()
	return nil
}

// copyLogs copies t's log stream to its files until the container has
// ended and its stream was read to the end, or ctx ends. It re-attaches
// when the stream breaks while the container runs.
func (e *Executor) copyLogs(ctx context.Context, t *task) {
	defer close(t.logsDone)
	backoff := 200 * time.Millisecond
	for {
		err := e.copyOnce(ctx, t)
		if ctx.Err() != nil {
			return
		}
		ins, ierr := e.cli.ContainerInspect(ctx, t.name)
		if ierr != nil && errors.Is(translate(ierr), environment.ErrNotFound) {
			return
		}
		if ierr == nil && ins.State != nil && !ins.State.Running && !ins.State.Restarting && err == nil {
			return
		}
		if err != nil {
			e.log.Warn("task log stream broke; re-attaching", keyTaskID, t.id, keyErr, err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// copyOnce follows the log stream once, from the saved positions.
func (e *Executor) copyOnce(ctx context.Context, t *task) error {
	t.mu.Lock()
	// While a stream has had no entry yet, read from the start and skip by
	// timestamp what the other stream already appended.
	since := ""
	if t.st.Stdout > 0 && t.st.Stderr > 0 {
		since = formatSince(min(t.st.Stdout, t.st.Stderr))
	}
	t.mu.Unlock()
	rc, err := e.cli.ContainerLogs(ctx, t.name, container.LogsOptions{
		ShowStdout: true, ShowStderr: true, Follow: true, Timestamps: true, Since: since,
	})
	if err != nil {
		return fmt.Errorf("attach to logs of %s: %w", t.name, translate(err))
	}
	defer rc.Close()
	out, err := openOutput(t.stdout)
	if err != nil {
		return err
	}
	defer out.Close()
	errf := out
	if t.stderr != t.stdout {
		if errf, err = openOutput(t.stderr); err != nil {
			return err
		}
		defer errf.Close()
	}
	_, err = stdcopy.StdCopy(
		&stampedWriter{e: e, t: t, w: out, last: &t.st.Stdout},
		&stampedWriter{e: e, t: t, w: errf, last: &t.st.Stderr},
		rc)
	t.mu.Lock()
	serr := e.saveStateLocked(t)
	t.mu.Unlock()
	if err != nil {
		return fmt.Errorf("copy logs of %s: %w", t.name, err)
	}
	return serr
}

func formatSince(ns int64) string {
	return fmt.Sprintf("%d.%09d", ns/1e9, ns%1e9)
}

// nopFile discards output of a task without an output path.
type nopFile struct{ io.Writer }

// Close implements io.Closer.
func (nopFile) Close() error { return nil }

// openOutput opens an output file for appending, creating it and its
// directory.
func openOutput(path string) (io.WriteCloser, error) {
	if path == "" {
		return nopFile{io.Discard}, nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("create output directory: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open output file: %w", err)
	}
	return f, nil
}

// stampedWriter receives one log entry per Write (stdcopy writes each frame
// at once; the engine sends each entry as one frame) as "<RFC 3339 time>
// <text>", appends the text unless it is not newer than *last, and records
// its time.
type stampedWriter struct {
	e    *Executor
	t    *task
	w    io.Writer
	last *int64
}

// Write implements io.Writer; p is one log entry.
func (s *stampedWriter) Write(p []byte) (int, error) {
	sp := bytes.IndexByte(p, ' ')
	if sp <= 0 {
		return s.write(p, p, 0)
	}
	ts, err := time.Parse(time.RFC3339Nano, string(p[:sp]))
	if err != nil {
		return s.write(p, p, 0)
	}
	return s.write(p, p[sp+1:], ts.UnixNano())
}

func (s *stampedWriter) write(frame, text []byte, ns int64) (int, error) {
	s.t.mu.Lock()
	defer s.t.mu.Unlock()
	if ns != 0 && ns <= *s.last {
		return len(frame), nil // appended before a restart
	}
	if _, err := s.w.Write(text); err != nil {
		return 0, err
	}
	if ns != 0 {
		*s.last = ns
	}
	if time.Since(s.t.saved) >= stateSaveEvery {
		if err := s.e.saveStateLocked(s.t); err != nil {
			s.e.log.Warn("save task log position", keyTaskID, s.t.id, keyErr, err)
		}
	}
	return len(frame), nil
}

// waitLogs waits until t's log stream was copied to its end, bounded by
// ctx.
func waitLogs(ctx context.Context, t *task) error {
	select {
	case <-t.logsDone:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("wait for the logs of task %d: %w", t.id, ctx.Err())
	}
}
