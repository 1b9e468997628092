package cluster

import (
	"bytes"
	"context"
	"log/slog"
	"time"

	"github.com/hashicorp/go-hclog"
)

// slogWriter turns hclog's formatted lines into slog records.
type slogWriter struct {
	log *slog.Logger
	// stops quiets complaints about replicas that stopped cleanly (nil:
	// none).
	stops *cleanStops
}

func (w slogWriter) Write(p []byte) (int, error) {
	line := string(bytes.TrimSpace(p))
	level := slog.LevelDebug
	switch {
	case bytes.Contains(p, []byte("[ERROR]")):
		level = slog.LevelError
	case bytes.Contains(p, []byte("[WARN]")):
		level = slog.LevelWarn
	case bytes.Contains(p, []byte("[INFO]")):
		level = slog.LevelInfo
	}
	if level > slog.LevelInfo {
		// A line about a cleanly stopped replica is DEBUG; otherwise a
		// routine one (an election, a step-down's reset) is INFO.
		if routine(p) {
			level = slog.LevelInfo
		}
		now := time.Now()
		switch w.stops.judge(p, now) {
		case quiet:
			level = slog.LevelDebug
		case unsure:
			// About a replica alive in gossip: its departure may be on the
			// way. Logged once that is settled, with its own time.
			held := bytes.Clone(p)
			time.AfterFunc(w.stops.settle, func() {
				lvl := level
				if w.stops.settled(held, now) {
					lvl = slog.LevelDebug
				}
				w.logAt(now, lvl, line)
			})
			return len(p), nil
		}
	}
	w.log.Log(context.Background(), level, line)
	return len(p), nil
}

// logAt logs line at level with the time at.
func (w slogWriter) logAt(at time.Time, level slog.Level, line string) {
	h := w.log.Handler()
	if !h.Enabled(context.Background(), level) {
		return
	}
	h.Handle(context.Background(), slog.NewRecord(at, level, line, 0)) //nolint:errcheck // as slog.Logger.Log does
}

// routine reports whether a raft warning or error describes the normal
// course of an election rather than a fault, so that a healthy cluster's
// log holds no WARN or ERROR line: the first election of a fresh replica
// (no leader was ever known); a leader stepping down because a peer won
// a newer term (a leadership transfer, or a leader that was cut off and is
// now replaced, whose loss is logged on its own); a new leader finding
// where a follower's log ends (log matching: the leader's first guess is
// its own last index, which a follower a few entries behind rejects); a
// follower seeing the old leader's replication connection reset when it
// stepped down; and this replica's own Raft transport closing during a
// clean stop.
func routine(p []byte) bool {
	for _, s := range []string{
		"peer has newer term, stopping replication",
		"appendEntries rejected, sending older logs",
		"failed to get previous log",
	} {
		if bytes.Contains(p, []byte(s)) {
			return true
		}
	}
	if bytes.Contains(p, []byte("failed to decode incoming command")) && bytes.Contains(p, []byte("connection reset by peer")) {
		return true
	}
	// This replica's own transport closing under a connection it serves
	// (a clean stop).
	if bytes.Contains(p, []byte(`error="transport shutdown"`)) {
		return true
	}
	neverLed := bytes.Contains(p, []byte("last-leader-id= ")) || bytes.HasSuffix(bytes.TrimSpace(p), []byte("last-leader-id="))
	return neverLed && bytes.Contains(p, []byte("heartbeat timeout reached, starting election"))
}

// newHCLogger bridges raft's hclog output to log; stops (may be nil)
// quiets complaints about replicas that stopped cleanly.
func newHCLogger(log *slog.Logger, name string, stops *cleanStops) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{
		Name:            name,
		Level:           hclog.Info,
		Output:          slogWriter{log: log, stops: stops},
		DisableTime:     true,
		IncludeLocation: false,
	})
}
