package cluster

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/cluster/auth"
	"github.com/hakuriver/hakuriver-ha/fsm"
)

// The change feed (GET /api/events) tells the dashboards of a replica what
// changed, so that they re-fetch what they show instead of polling whole
// lists: one Server-Sent Events stream per dashboard, fed by one loop per
// replica that runs while anyone listens.
const (
	// feedTick is how often the loop looks at the applied index: changes
	// are coalesced to at most one "applied" event per tick.
	feedTick = 250 * time.Millisecond
	// feedLiveEvery is how often a "live" event carries the leader's live
	// figures (when they changed).
	feedLiveEvery = 3 * time.Second
	// feedHeartbeat is how often an idle stream gets a comment line, so
	// that proxies and browsers keep it open.
	feedHeartbeat = 15 * time.Second
	// maxFeedStreams caps the concurrent streams of a replica; beyond it
	// a stream is refused with 503 (the browser retries).
	maxFeedStreams = 256
)

// AppliedEvent is the data of an "applied" event: this replica's FSM moved.
type AppliedEvent struct {
	AppliedIndex uint64             `json:"applied_index"`
	Counts       map[fsm.Status]int `json:"counts"`
	Leader       string             `json:"leader"`
	NodeID       string             `json:"node_id"`
}

// LiveEvent is the data of a "live" event: the leader's newest health
// sample (Aggregate and Nodes are empty on a follower, which holds no live
// figures: its dashboards re-read them from the leader through the API).
type LiveEvent struct {
	Leader    string               `json:"leader"`
	At        time.Time            `json:"at"`
	Aggregate *api.HealthAggregate `json:"aggregate,omitempty"`
	Nodes     []api.NodeHealth     `json:"nodes,omitempty"`
}

// feedEvent is one message to the streams: an event name and its JSON.
type feedEvent struct {
	name string
	data []byte
}

// changeFeed fans the replica's changes out to its streams.
type changeFeed struct {
	h       *Host
	mu      sync.Mutex
	subs    map[chan feedEvent]struct{}
	running bool
	last    map[string]feedEvent // newest event of each name, for new streams
	// done is closed when the API server shuts down: the streams end
	// then, not when its Shutdown gives up waiting for them.
	done     chan struct{}
	stopOnce sync.Once
}

func newChangeFeed(h *Host) *changeFeed {
	return &changeFeed{h: h, subs: map[chan feedEvent]struct{}{}, last: map[string]feedEvent{}, done: make(chan struct{})}
}

// stop ends the loop and every stream.
func (f *changeFeed) stop() { f.stopOnce.Do(func() { close(f.done) }) }

// subscribe adds a stream; ok is false when maxFeedStreams are open. The
// channel holds one event per name at most: a slow stream misses
// intermediate states, never the newest one.
func (f *changeFeed) subscribe() (ch chan feedEvent, cancel func(), ok bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.subs) >= maxFeedStreams {
		return nil, nil, false
	}
	ch = make(chan feedEvent, 4)
	f.subs[ch] = struct{}{}
	if !f.running {
		f.running = true
		f.last = map[string]feedEvent{}
		f.h.goRun(f.loop)
	}
	return ch, func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		delete(f.subs, ch)
	}, true
}

// publish sends ev to every stream without blocking: a full stream loses
// its oldest event.
func (f *changeFeed) publish(ev feedEvent) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.last[ev.name] = ev
	for ch := range f.subs {
		for {
			select {
			case ch <- ev:
			default:
				select {
				case <-ch:
				default:
				}
				continue
			}
			break
		}
	}
}

// idle stops the loop when nobody listens; it reports whether it did.
func (f *changeFeed) idle() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.subs) == 0 {
		f.running = false
		return true
	}
	return false
}

// loop watches the applied index and the leader's live figures while
// streams are open.
func (f *changeFeed) loop() {
	h := f.h
	tick := time.NewTicker(feedTick)
	defer tick.Stop()
	var applied uint64
	var leader string
	var liveAt, lastLive time.Time
	for {
		if f.idle() {
			return
		}
		lid, _ := h.leaderInfo()
		if idx := h.machine.AppliedIndex(); idx != applied || lid != leader {
			applied, leader = idx, lid
			f.publish(mustEvent("applied", AppliedEvent{AppliedIndex: idx, Counts: h.machine.Counts(), Leader: lid, NodeID: h.cfg.NodeID}))
		}
		if now := time.Now(); now.Sub(lastLive) >= feedLiveEvery {
			lastLive = now
			ev := LiveEvent{Leader: lid, At: now.UTC()}
			if s := h.liveState().samples(); len(s) > 0 {
				newest := s[len(s)-1]
				if !newest.aggregate.LastUpdated.Equal(liveAt) {
					liveAt = newest.aggregate.LastUpdated
					ev.At = liveAt.UTC()
					ev.Aggregate = &newest.aggregate
					ev.Nodes = newest.nodes
					f.publish(mustEvent("live", ev))
				}
			} else {
				f.publish(mustEvent("live", ev))
			}
		}
		select {
		case <-f.done:
			f.mu.Lock()
			f.running = false
			f.mu.Unlock()
			return
		case <-tick.C:
		}
	}
}

// mustEvent encodes an event; its types always encode.
func mustEvent(name string, v any) feedEvent {
	b, err := json.Marshal(v)
	if err != nil {
		b = []byte(`{}`)
	}
	return feedEvent{name: name, data: b}
}

// handleEvents serves GET /api/events: a text/event-stream of "applied"
// and "live" events (see AppliedEvent, LiveEvent), starting with the newest
// of each, with a comment line every feedHeartbeat; it ends with the
// request (or the replica).
func (h *Host) handleEvents(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	ch, cancel, ok := h.feed.subscribe()
	if !ok {
		w.Header().Set("Retry-After", "10")
		writeError(w, &httpError{status: http.StatusServiceUnavailable, msg: fmt.Sprintf("too many event streams on this replica (%d)", maxFeedStreams)})
		return
	}
	defer cancel()
	// The stream outlives the server's write timeout, if any.
	_ = rc.SetWriteDeadline(time.Time{})
	hd := w.Header()
	hd.Set("Content-Type", "text/event-stream")
	hd.Set("Cache-Control", "no-cache")
	hd.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	// Tell the browser to reconnect after 3 s, and start with the state.
	fmt.Fprint(w, "retry: 3000\n\n")
	h.feed.mu.Lock()
	first := []feedEvent{}
	for _, n := range []string{"applied", "live"} {
		if ev, ok := h.feed.last[n]; ok {
			first = append(first, ev)
		}
	}
	h.feed.mu.Unlock()
	if len(first) == 0 {
		lid, _ := h.leaderInfo()
		first = append(first, mustEvent("applied", AppliedEvent{AppliedIndex: h.machine.AppliedIndex(), Counts: h.machine.Counts(), Leader: lid, NodeID: h.cfg.NodeID}))
	}
	for _, ev := range first {
		writeSSE(w, ev)
	}
	if err := rc.Flush(); err != nil {
		return
	}
	hb := time.NewTicker(feedHeartbeat)
	defer hb.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-h.feed.done:
			return
		case ev := <-ch:
			writeSSE(w, ev)
		case <-hb.C:
			fmt.Fprint(w, ": keep-alive\n\n")
		}
		if err := rc.Flush(); err != nil {
			return
		}
	}
}

// writeSSE writes one event (its JSON has no newline).
func writeSSE(w http.ResponseWriter, ev feedEvent) {
	fmt.Fprintf(w, "event: %s\ndata: %s\n\n", ev.name, ev.data)
}

// Conditional reads: the dashboard re-reads a list when the feed says the
// state moved; an ETag lets an unchanged answer be a 304 without a body.

// etagApplied answers GET next with an ETag made of this replica's applied
// index, the query and the caller: next must be a function of the FSM
// state, the query and the caller only (tasks, queue). The index is read
// before next runs, so a tag never claims a newer state than its body.
func (h *Host) etagApplied(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, _ := auth.FromContext(r.Context())
		sum := sha256.Sum256([]byte(r.URL.Path + "?" + r.URL.RawQuery + "\x00" + p.Name + "\x00" + string(p.Role)))
		tag := fmt.Sprintf(`W/"a%d-%s"`, h.machine.AppliedIndex(), hex.EncodeToString(sum[:8]))
		w.Header().Set("Cache-Control", "private, no-cache")
		if matchETag(r.Header.Get("If-None-Match"), tag) {
			w.Header().Set("ETag", tag)
			w.WriteHeader(http.StatusNotModified)
			return
		}
		next(&etagWriter{ResponseWriter: w, tag: tag}, r)
	}
}

// etagBody answers GET next with an ETag made of the hash of its answer
// (nodes, cluster: they hold figures that move without the log).
func etagBody(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		rec := &bufferWriter{header: http.Header{}, code: http.StatusOK}
		next(rec, r)
		for k, v := range rec.header {
			w.Header()[k] = v
		}
		if rec.code == http.StatusOK {
			sum := sha256.Sum256(rec.body.Bytes())
			tag := `"b` + hex.EncodeToString(sum[:12]) + `"`
			w.Header().Set("ETag", tag)
			w.Header().Set("Cache-Control", "private, no-cache")
			if matchETag(r.Header.Get("If-None-Match"), tag) {
				w.Header().Del("Content-Length")
				w.WriteHeader(http.StatusNotModified)
				return
			}
		}
		w.WriteHeader(rec.code)
		w.Write(rec.body.Bytes()) //nolint:errcheck // the client went away
	}
}

// matchETag tells whether an If-None-Match header names tag (weak
// comparison).
func matchETag(header, tag string) bool {
	if header == "" {
		return false
	}
	bare := strings.TrimPrefix(tag, "W/")
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimSpace(t)
		if t == "*" || strings.TrimPrefix(t, "W/") == bare {
			return true
		}
	}
	return false
}

// etagWriter sets the ETag on a 200 answer only.
type etagWriter struct {
	http.ResponseWriter
	tag     string
	written bool
}

func (e *etagWriter) WriteHeader(code int) {
	if !e.written {
		e.written = true
		if code == http.StatusOK {
			e.Header().Set("ETag", e.tag)
		}
	}
	e.ResponseWriter.WriteHeader(code)
}

func (e *etagWriter) Write(b []byte) (int, error) {
	if !e.written {
		e.WriteHeader(http.StatusOK)
	}
	return e.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection.
func (e *etagWriter) Unwrap() http.ResponseWriter { return e.ResponseWriter }

// bufferWriter records an answer in memory.
type bufferWriter struct {
	header http.Header
	code   int
	body   bytes.Buffer
	wrote  bool
}

func (b *bufferWriter) Header() http.Header { return b.header }
func (b *bufferWriter) WriteHeader(code int) {
	if !b.wrote {
		b.wrote = true
		b.code = code
	}
}
func (b *bufferWriter) Write(p []byte) (int, error) {
	b.wrote = true
	return b.body.Write(p)
}
