package cluster

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

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
// left gossip on purpose are debug (after one info line per stop); about a
// replica that did not leave, or one whose address merely starts the same,
// they stay errors.
func TestRaftLinesAboutCleanStopsAreDebug(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	left := []gossip.Member{{Name: "h1", Meta: gossip.Meta{Role: gossip.RoleHost, ID: "h1", Raft: "127.0.0.1:4542"}}}
	stops := newCleanStops(log)
	stops.left = func() []gossip.Member { return left }
	w := slogWriter{log: log, stops: stops}
	tests := []struct {
		line, want string
	}{
		{`[ERROR] raft: failed to appendEntries to: peer="{Voter h1 127.0.0.1:4542}" error="dial tcp 127.0.0.1:4542: connect: connection refused"`, "DEBUG"},
		{`[ERROR] raft: failed to heartbeat to: peer=127.0.0.1:4542 backoff time=10ms error=EOF`, "DEBUG"},
		{`[WARN]  raft: failed to contact: server-id=h1 time=256.126454ms`, "DEBUG"},
		{`[ERROR] raft: failed to heartbeat to: peer=127.0.0.1:45429 backoff time=10ms error=EOF`, "ERROR"},
		{`[WARN]  raft: failed to contact: server-id=h10 time=256.126454ms`, "WARN"},
		{`[ERROR] raft: failed to appendEntries to: peer="{Voter h2 127.0.0.1:1}" error="connection refused"`, "ERROR"},
	}
	for _, tt := range tests {
		buf.Reset()
		w.Write([]byte(tt.line + "\n")) //nolint:errcheck // writes to a buffer
		if !strings.Contains(buf.String(), "level="+tt.want+" msg=\"[") {
			t.Errorf("%q logged as %s, want %s", tt.line, buf.String(), tt.want)
		}
	}
	if n := len(stops.noted); n != 1 {
		t.Errorf("noted %d stops, want 1", n)
	}
	// Back and gone again: the next stop is noted again.
	left = nil
	stops.quiet([]byte("x"))
	left = []gossip.Member{{Name: "h1", Meta: gossip.Meta{Role: gossip.RoleHost, ID: "h1", Raft: "127.0.0.1:4542"}}}
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
