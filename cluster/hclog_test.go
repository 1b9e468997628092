package cluster

import (
	"bytes"
	"log/slog"
	"slices"
	"strings"
	"sync"
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
		{`[WARN]  raft: appendEntries rejected, sending older logs: peer="{Voter h3 127.0.0.1:42045}" next=1564`, "INFO"},
		{`[WARN]  raft: failed to get previous log: previous-index=1573 last-index=1563 error="log not found"`, "INFO"},
		{`[ERROR] transport: failed to decode incoming command: error="read tcp 127.0.0.1:42045->127.0.0.1:52276: read: connection reset by peer"`, "INFO"},
		{`[ERROR] transport: failed to decode incoming command: error="msgpack decode error"`, "ERROR"},
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
	var mu sync.Mutex
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(lockedWriter{&mu, &buf}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h1 := gossip.Member{Name: "h1", Meta: gossip.Meta{Role: gossip.RoleHost, ID: "h1", Raft: "127.0.0.1:4542"}}
	h2 := gossip.Member{Name: "h2", Meta: gossip.Meta{Role: gossip.RoleHost, ID: "h2", Raft: "127.0.0.1:4543"}}
	h3 := gossip.Member{Name: "h3", Meta: gossip.Meta{Role: gossip.RoleHost, ID: "h3", Raft: "127.0.0.1:4544"}}
	leftAt := time.Now()
	var deps []gossip.Departure
	members := []gossip.Member{h2, h3}
	stops := newCleanStops(log)
	stops.settle = 100 * time.Millisecond
	var depsMu sync.Mutex
	stops.departures = func() []gossip.Departure {
		depsMu.Lock()
		defer depsMu.Unlock()
		return slices.Clone(deps)
	}
	stops.members = func() []gossip.Member { return members }
	w := slogWriter{log: log, stops: stops}
	logged := func() string {
		mu.Lock()
		defer mu.Unlock()
		out := buf.String()
		buf.Reset()
		return out
	}
	check := func(line, want string) {
		t.Helper()
		w.Write([]byte(line + "\n")) //nolint:errcheck // writes to a buffer
		if got := logged(); !strings.Contains(got, "level="+want+" msg=\"[") {
			t.Errorf("%q logged as %s, want %s", line, got, want)
		}
	}
	deps = []gossip.Departure{{Member: h1, LeftAt: leftAt}}
	check(`[ERROR] raft: failed to appendEntries to: peer="{Voter h1 127.0.0.1:4542}" error="dial tcp 127.0.0.1:4542: connect: connection refused"`, "DEBUG")
	check(`[ERROR] raft: failed to heartbeat to: peer=127.0.0.1:4542 backoff time=10ms error=EOF`, "DEBUG")
	check(`[WARN]  raft: failed to contact: server-id=h1 time=256.126454ms`, "DEBUG")
	check(`[ERROR] raft: failed to heartbeat to: peer=127.0.0.1:45429 backoff time=10ms error=EOF`, "ERROR")
	check(`[ERROR] raft: failed to heartbeat to: peer=127.0.0.1:14542 backoff time=10ms error=EOF`, "ERROR")
	check(`[WARN]  raft: failed to contact: server-id=h10 time=256.126454ms`, "WARN")
	if len(stops.noted) != 1 {
		t.Errorf("noted %d stops, want 1", len(stops.noted))
	}
	// Just back: a connection to the old process fails late.
	deps[0].BackAt = time.Now()
	check(`[ERROR] raft: failed to appendEntries to: peer="{Voter h1 127.0.0.1:4542}" error=EOF`, "DEBUG")
	// Back for long: errors about it are errors again.
	deps[0].BackAt = time.Now().Add(-2 * cleanStopGrace)
	check(`[ERROR] raft: failed to appendEntries to: peer="{Voter h1 127.0.0.1:4542}" error=EOF`, "ERROR")

	// About replicas alive in gossip: judged after settle. h2 never
	// leaves (an error); news of h3's departure comes after the line
	// (debug, with the line's own time).
	w.Write([]byte(`[ERROR] raft: failed to heartbeat to: peer=127.0.0.1:4543 backoff time=10ms error=EOF` + "\n")) //nolint:errcheck // a buffer
	w.Write([]byte(`[ERROR] raft: failed to appendEntries to: peer="{Voter h3 127.0.0.1:4544}" error=EOF` + "\n"))  //nolint:errcheck // a buffer
	if got := logged(); got != "" {
		t.Errorf("logged before settle: %s", got)
	}
	depsMu.Lock()
	deps = append(deps, gossip.Departure{Member: h3, LeftAt: time.Now()})
	depsMu.Unlock()
	time.Sleep(3 * stops.settle)
	got := logged()
	if !strings.Contains(got, `level=ERROR msg="[ERROR] raft: failed to heartbeat to: peer=127.0.0.1:4543`) ||
		!strings.Contains(got, `level=DEBUG msg="[ERROR] raft: failed to appendEntries to: peer=\"{Voter h3`) ||
		!strings.Contains(got, "replica=h3") {
		t.Errorf("after settle: %s", got)
	}

	// A connection from a peer reset: a clean stop's when a replica left
	// about then (DEBUG), otherwise routine (an old leader stepping down
	// closes its replication connections): INFO.
	reset := `[ERROR] transport: failed to decode incoming command: error="read tcp 127.0.0.1:42361->127.0.0.1:47994: read: connection reset by peer"`
	w.Write([]byte(reset + "\n")) //nolint:errcheck // a buffer
	time.Sleep(3 * stops.settle)
	if got := logged(); !strings.Contains(got, "level=DEBUG") {
		t.Errorf("reset while h3 left: %s", got)
	}
	depsMu.Lock()
	deps = nil
	depsMu.Unlock()
	w.Write([]byte(reset + "\n")) //nolint:errcheck // a buffer
	time.Sleep(3 * stops.settle)
	if got := logged(); !strings.Contains(got, "level=INFO") {
		t.Errorf("reset with no replica gone: %s", got)
	}

	// Its next stop is noted again.
	depsMu.Lock()
	deps = []gossip.Departure{{Member: h1, LeftAt: time.Now()}}
	depsMu.Unlock()
	w.Write([]byte(`[WARN]  raft: failed to contact: server-id=h1 time=1s` + "\n")) //nolint:errcheck // writes to a buffer
	if got := logged(); !strings.Contains(got, "replica stopped cleanly") {
		t.Errorf("a second stop was not noted: %s", got)
	}
	// Without gossip yet, nothing is judged.
	var none *cleanStops
	if none.judge([]byte("server-id=h1"), time.Now()) != notOurs || newCleanStops(log).judge([]byte("server-id=h1"), time.Now()) != notOurs {
		t.Error("judged without a pool")
	}
}

// lockedWriter serialises writes to w (log lines written by timers).
type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
