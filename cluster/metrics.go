package cluster

import (
	"bufio"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics is the replica's Prometheus registry (never the global one) and
// the instruments the replica updates as it works. Everything else is read
// from the replica's state at scrape time (metricscollect.go). Every label
// has a bounded set of values: route patterns (never raw paths), known
// methods, status codes, task statuses, node names, queue kinds.
type metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	// applyTime is how long a command takes on the leader from raft.Apply
	// to its future's answer: replication to a quorum (each fsyncing its
	// log), commit and FSM apply.
	applyTime prometheus.Histogram
	// storeTime is one write of the local Raft log store (boltdb
	// transaction with its fsync).
	storeTime prometheus.Histogram
	// placements counts placements this replica committed as leader.
	placements prometheus.Counter
	// notifyAttempts counts webhook attempts by outcome; notifyPost is one
	// POST's duration and notifyLag the time from a task's end to its
	// notification's delivery (notifier.go).
	notifyAttempts *prometheus.CounterVec
	notifyPost     prometheus.Histogram
	notifyLag      prometheus.Histogram
}

func newMetrics(h *Host) *metrics {
	// Buckets for requests and Raft writes alike: 0.5 ms to 5 s.
	latencyBuckets := []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hakuriver_http_requests_total", Help: "API requests served by this replica, by route pattern, method and status code.",
		}, []string{"route", "method", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "hakuriver_http_request_duration_seconds", Help: "API request latency on this replica, by route pattern, method and status code.",
			Buckets: latencyBuckets,
		}, []string{"route", "method", "code"}),
		applyTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "hakuriver_raft_apply_duration_seconds", Help: "Time from proposing a command on the leader to its being committed and applied.",
			Buckets: latencyBuckets,
		}),
		storeTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "hakuriver_raft_store_duration_seconds", Help: "Time of one write (with fsync) to this replica's Raft log store.",
			Buckets: latencyBuckets,
		}),
		placements: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hakuriver_scheduler_placements_total", Help: "Placements of pending tasks this replica committed as leader.",
		}),
		notifyAttempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hakuriver_notify_attempts_total", Help: "Webhook delivery attempts this replica made as leader, by outcome (delivered, retry, failed: given up).",
		}, []string{"outcome"}),
		notifyPost: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "hakuriver_notify_post_duration_seconds", Help: "Duration of one webhook POST.", Buckets: latencyBuckets,
		}),
		notifyLag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "hakuriver_notify_delivery_lag_seconds", Help: "Time from a task's end to the delivery of its final-state webhook.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 1800},
		}),
	}
	m.reg.MustRegister(m.requests, m.latency, m.applyTime, m.storeTime, m.placements, m.notifyAttempts, m.notifyPost, m.notifyLag,
		raftCollector{h}, stateCollector{h}, leaderCollector{h}, sshCollector{h})
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// observeNotify records one webhook attempt (lag < 0: not a delivered
// final event).
func (m *metrics) observeNotify(outcome string, post, lag time.Duration) {
	m.notifyAttempts.WithLabelValues(outcome).Inc()
	m.notifyPost.Observe(post.Seconds())
	if lag >= 0 {
		m.notifyLag.Observe(lag.Seconds())
	}
}

// observeStore records one Raft log store write.
func (m *metrics) observeStore(d time.Duration) { m.storeTime.Observe(d.Seconds()) }

// statusRecorder captures the status code a handler writes.
type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.code = code
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Hijack lets WebSocket handlers (the Docker terminal) take the connection.
func (r *statusRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	r.code = http.StatusSwitchingProtocols
	return http.NewResponseController(r.ResponseWriter).Hijack()
}

// Unwrap exposes the underlying writer to http.ResponseController.
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// routeUnmatched labels requests that matched no route.
const routeUnmatched = "unmatched"

// instrument counts and times every request by its route pattern (chi's,
// "/api/status/{id}", never the raw path; a blocking status query, which
// may wait up to api.MaxStatusWait, as "/api/status/{id}?wait" so that it
// does not skew the plain read's latency), its method (any method not
// served anywhere is "other": a client chooses it freely) and its code.
func (m *metrics) instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		next.ServeHTTP(rec, r)
		route := routeUnmatched
		if rc := chi.RouteContext(r.Context()); rc != nil && rc.RoutePattern() != "" {
			route = rc.RoutePattern()
		}
		if strings.HasSuffix(route, "/status/{id}") && r.URL.Query().Has("wait") {
			route += "?wait"
		}
		code := strconv.Itoa(rec.code)
		method := metricMethod(r.Method)
		m.requests.WithLabelValues(route, method, code).Inc()
		m.latency.WithLabelValues(route, method, code).Observe(time.Since(start).Seconds())
	})
}

// metricMethod bounds the method label.
func metricMethod(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions:
		return method
	}
	return "other"
}
