// Package logging builds the log/slog loggers of the long-running commands
// (host, runner, dev): a level, a format (text or JSON) and a destination,
// stderr or a file that is reopened on demand (on SIGHUP, after logrotate
// has moved it away).
package logging

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
)

// Formats of Options.Format.
const (
	FormatText = "text"
	FormatJSON = "json"
)

// Options choose a logger.
type Options struct {
	// Level is debug, info, warn or error (any letter case).
	Level string
	// Format is FormatText (the default when empty) or FormatJSON.
	Format string
	// File, when set, is the log file (appended to, created with mode
	// 0640); otherwise logs go to the stderr given to New.
	File string
}

// New returns the logger o describes. With o.File it also returns the
// open file, which the caller reopens (ReopenOnSignal) and closes; it is
// nil otherwise.
func New(o Options, stderr io.Writer) (*slog.Logger, *File, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(strings.ToUpper(o.Level))); err != nil {
		return nil, nil, fmt.Errorf("--log-level %q: use debug, info, warn or error", o.Level)
	}
	format := strings.ToLower(o.Format)
	if format != "" && format != FormatText && format != FormatJSON {
		return nil, nil, fmt.Errorf("--log-format %q: use text or json", o.Format)
	}
	out, file := stderr, (*File)(nil)
	if o.File != "" {
		var err error
		if file, err = OpenFile(o.File); err != nil {
			return nil, nil, err
		}
		out = file
	}
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewTextHandler(out, opts)
	if format == FormatJSON {
		h = slog.NewJSONHandler(out, opts)
	}
	return slog.New(h), file, nil
}

// File is a log file that can be reopened by its path while it is written
// to: logrotate renames it (or copies and truncates it), then a SIGHUP
// makes the process write to a new file at the path. Its methods are safe
// for concurrent use.
type File struct {
	path string
	mu   sync.Mutex
	f    *os.File
}

// OpenFile opens path for appending, creating it with mode 0640.
func OpenFile(path string) (*File, error) {
	f, err := openAppend(path)
	if err != nil {
		return nil, err
	}
	return &File{path: path, f: f}, nil
}

func openAppend(path string) (*os.File, error) {
	// O_NOFOLLOW: a symlink planted where the log goes (the runner logs as
	// root) must not make it append to another file.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|syscall.O_NOFOLLOW, 0o640)
	if err != nil {
		return nil, fmt.Errorf("open log file: %w", err)
	}
	return f, nil
}

// Path returns the file's path.
func (l *File) Path() string { return l.path }

// Write writes one log record.
func (l *File) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.f.Write(p)
}

// Reopen opens the path again and writes there from now on, closing the
// previous file. When the path cannot be opened the old file is kept.
func (l *File) Reopen() error {
	f, err := openAppend(l.path)
	if err != nil {
		return err
	}
	l.mu.Lock()
	old := l.f
	l.f = f
	l.mu.Unlock()
	if err := old.Close(); err != nil {
		return fmt.Errorf("close the previous log file: %w", err)
	}
	return nil
}

// Close closes the file.
func (l *File) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.f.Close()
}

// ReopenOnSignal reopens l on every SIGHUP until ctx ends, logging each
// reopen to log (so the new file starts with it). It blocks; run it in a
// goroutine. While it runs, SIGHUP no longer terminates the process.
func (l *File) ReopenOnSignal(ctx context.Context, log *slog.Logger) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGHUP)
	defer signal.Stop(ch)
	for {
		select {
		case <-ctx.Done():
			return
		case <-ch:
			if err := l.Reopen(); err != nil {
				log.Error("reopen log file on SIGHUP; still writing to the previous one", "path", l.path, "err", err)
				continue
			}
			log.Info("log file reopened on SIGHUP", "path", l.path)
		}
	}
}
