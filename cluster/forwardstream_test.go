package cluster

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/fsm"
)

// TestForwardStreamIdleTimeout relays answers of a real HTTP "leader"
// through forwardTo with shortened bounds: a stream that runs longer than
// the overall bound but never pauses for the idle bound arrives whole on a
// streamed route and is cut on any other route; a stream that stalls is cut
// on the streamed route too.
func TestForwardStreamIdleTimeout(t *testing.T) {
	const chunks = 30
	leader := http.NewServeMux()
	// Steady: one byte every 50 ms, about 1.5 s in all.
	leader.HandleFunc("/steady", func(w http.ResponseWriter, r *http.Request) {
		for range chunks {
			if _, err := w.Write([]byte{'x'}); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	})
	// Stalled: one byte, then nothing until the relay gives up.
	leader.HandleFunc("/stall", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte{'x'}) //nolint:errcheck // checked by the relay's reader
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-time.After(20 * time.Second):
		}
	})
	srv := httptest.NewServer(leader)
	defer srv.Close()

	limits := forwardLimits{total: 500 * time.Millisecond, idle: time.Second}
	h := &Host{
		cfg:       Config{NodeID: "follower"},
		log:       slog.New(slog.NewTextHandler(io.Discard, nil)),
		machine:   fsm.New(),
		fwd:       &http.Client{Timeout: limits.total},
		fwdLimits: limits,
	}
	relay := func(path string, stream bool) (int, []byte) {
		t.Helper()
		req := httptest.NewRequest(http.MethodGet, path, nil)
		rec := httptest.NewRecorder()
		if !h.forwardTo(rec, req, "", srv.URL, nil, stream) {
			t.Fatalf("%s (stream %v): the relay found no leader", path, stream)
		}
		return rec.Code, rec.Body.Bytes()
	}

	t.Run("steady stream longer than the overall bound passes", func(t *testing.T) {
		code, body := relay("/steady", true)
		if code != http.StatusOK || !bytes.Equal(body, bytes.Repeat([]byte{'x'}, chunks)) {
			t.Fatalf("got %d, %d bytes; want 200, %d bytes", code, len(body), chunks)
		}
	})
	t.Run("other routes keep the overall bound", func(t *testing.T) {
		if _, body := relay("/steady", false); len(body) >= chunks {
			t.Fatalf("got all %d bytes; the overall bound should have cut the answer", len(body))
		}
	})
	t.Run("stalled stream fails", func(t *testing.T) {
		if _, body := relay("/stall", true); len(body) != 1 {
			t.Fatalf("got %d bytes; want the 1 byte sent before the stall", len(body))
		}
	})
}
