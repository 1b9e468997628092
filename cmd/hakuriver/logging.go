package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/pflag"

	"github.com/hakuriver/hakuriver-ha/ops/logging"
)

// logFlags are the logging flags of the long-running commands (host,
// runner, dev).
type logFlags struct {
	level, format, file string
}

func (l *logFlags) bind(fs *pflag.FlagSet, defaultLevel string) {
	fs.StringVar(&l.level, "log-level", defaultLevel, "log level: debug, info, warn or error")
	fs.StringVar(&l.format, "log-format", logging.FormatText, "log format: text (key=value) or json (one object a line)")
	fs.StringVar(&l.file, "log-file", "", "append logs to this file instead of stderr; SIGHUP reopens it (for logrotate). host and runner default to the config's paths.host_log_file / runner_log_file")
}

// open returns the logger the flags ask for. With --log-file, SIGHUP
// reopens the file until ctx ends; done stops that and closes the file.
func (l *logFlags) open(ctx context.Context) (log *slog.Logger, done func(), err error) {
	log, file, err := logging.New(logging.Options{Level: l.level, Format: l.format, File: l.file}, os.Stderr)
	if err != nil {
		return nil, nil, err
	}
	if file == nil {
		return log, func() {}, nil
	}
	ctx, cancel := context.WithCancel(ctx)
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		file.ReopenOnSignal(ctx, log)
	}()
	return log, func() {
		cancel()
		<-stopped
		file.Close() //nolint:errcheck // the last record is written; nothing to report it to
	}, nil
}

// ignoreHangup keeps SIGHUP from stopping the process, logging each one,
// until ctx ends or the returned function is called (which then calls
// then). It catches the signal rather than ignoring it, so processes
// started meanwhile (task supervisors, tasks) get SIGHUP's default.
func ignoreHangup(ctx context.Context, log *slog.Logger, then func()) (stop func()) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGHUP)
	ctx, cancel := context.WithCancel(ctx)
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		for {
			select {
			case <-ctx.Done():
				return
			case <-ch:
				log.Info("SIGHUP ignored: there is no log file to reopen (logs go to standard error)")
			}
		}
	}()
	return func() {
		signal.Stop(ch)
		cancel()
		<-stopped
		then()
	}
}
