package cluster

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/gossip"
)

func TestRaftRoutineLinesAreInfo(t *testing.T) {
	tests := []struct {
		line, want string
	}{
		{`[WARN]  raft: heartbeat timeout reached, starting election: last-leader-addr= last-leader-id=`, "INFO"},
		{`[WARN]  raft: heartbeat timeout reached, starting election: last-leader-addr=127.0.0.1:1 last-leader-id=h1`, "WARN"},
		{`[ERROR] raft: peer has newer term, stopping replication: peer="{Voter dev-1 127.0.0.1:34045}"`, "INFO"},
		{`[ERROR] raft: failed to appendEntries to: peer="{Voter h2 127.0.0.1:1}" error="connection refused"`, "ERROR"},
		{`[WARN]  raft: failed to contact quorum of nodes, stepping down`, "WARN"},
		{`[ERROR] transport: failed to decode incoming command: error="transport shutdown"`, "INFO"},
		{`[ERROR] transport: failed to decode incoming command: error="unknown rpc type 9"`, "ERROR"},
	}
	for _, tt := range tests {
		var buf bytes.Buffer
		w := slogWriter{log: slog.New(slog.NewTextHandler(&buf, nil))}
		w.Write([]byte(tt.line + "\n")) //nolint:errcheck // writes to a buffer
		if !strings.Contains(buf.String(), "level="+tt.want) {
			t.Errorf("%q logged as %s, want %s", tt.line, buf.String(), tt.want)
		}
	}
}

// TestRaftLinesAboutCleanStopsAreDebug: Raft's errors about a replica that
// left gossip on purpose are debug (after one info line per stop), also
// shortly after it is back; about a replica that did not leave, one whose
// address merely starts the same, or one back for long, they stay errors.
func TestRaftLinesAboutCleanStopsAreDebug(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h1 := gossip.Member{Name: "h1", Meta: gossip.Meta{Role: gossip.RoleHost, ID: "h1", Raft: "127.0.0.1:4542"}}
	leftAt := time.Now()
	deps := []gossip.Departure{{Member: h1, LeftAt: leftAt}}
	stops := newCleanStops(log)
	stops.departures = func() []gossip.Departure { return deps }
	w := slogWriter{log: log, stops: stops}
	check := func(line, want string) {
		t.Helper()
		buf.Reset()
		w.Write([]byte(line + "\n")) //nolint:errcheck // writes to a buffer
		if !strings.Contains(buf.String(), "level="+want+" msg=\"[") {
			t.Errorf("%q logged as %s, want %s", line, buf.String(), want)
		}
	}
	check(`[ERROR] raft: failed to appendEntries to: peer="{Voter h1 127.0.0.1:4542}" error="dial tcp 127.0.0.1:4542: connect: connection refused"`, "DEBUG")
	check(`[ERROR] raft: failed to heartbeat to: peer=127.0.0.1:4542 backoff time=10ms error=EOF`, "DEBUG")
	check(`[WARN]  raft: failed to contact: server-id=h1 time=256.126454ms`, "DEBUG")
	check(`[ERROR] raft: failed to heartbeat to: peer=127.0.0.1:45429 backoff time=10ms error=EOF`, "ERROR")
	check(`[ERROR] raft: failed to heartbeat to: peer=127.0.0.1:14542 backoff time=10ms error=EOF`, "ERROR")
	check(`[WARN]  raft: failed to contact: server-id=h10 time=256.126454ms`, "WARN")
	check(`[ERROR] raft: failed to appendEntries to: peer="{Voter h2 127.0.0.1:1}" error="connection refused"`, "ERROR")
	if len(stops.noted) != 1 {
		t.Errorf("noted %d stops, want 1", len(stops.noted))
	}
	// Just back: a connection to the old process fails late.
	deps[0].BackAt = time.Now()
	check(`[ERROR] raft: failed to appendEntries to: peer="{Voter h1 127.0.0.1:4542}" error=EOF`, "DEBUG")
	// Back for long: errors about it are errors again.
	deps[0].BackAt = time.Now().Add(-2 * cleanStopGrace)
	check(`[ERROR] raft: failed to appendEntries to: peer="{Voter h1 127.0.0.1:4542}" error=EOF`, "ERROR")
	// Its next stop is noted again.
	deps = []gossip.Departure{{Member: h1, LeftAt: leftAt.Add(time.Minute)}}
	buf.Reset()
	w.Write([]byte(`[WARN]  raft: failed to contact: server-id=h1 time=1s` + "\n")) //nolint:errcheck // writes to a buffer
	if !strings.Contains(buf.String(), "replica stopped cleanly") {
		t.Errorf("a second stop was not noted: %s", buf.String())
	}
	// Without gossip yet, nothing is quiet.
	var none *cleanStops
	if none.quiet([]byte("server-id=h1")) || newCleanStops(log).quiet([]byte("server-id=h1")) {
		t.Error("quiet without a pool")
	}
}
