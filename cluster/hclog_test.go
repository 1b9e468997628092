package cluster

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
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
