package cluster

import (
	"bufio"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics is the replica's Prometheus registry (never the global one).
type metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

// taskCollector reports tasks by status from the local FSM at scrape time.
type taskCollector struct {
	h    *Host
	desc *prometheus.Desc
}

func (c taskCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c taskCollector) Collect(ch chan<- prometheus.Metric) {
	counts := c.h.machine.Counts()
	for _, s := range allStatusNames() {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(counts[s]), string(s))
	}
}

func newMetrics(h *Host) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hakuriver_http_requests_total", Help: "API requests served by this replica.",
		}, []string{"route", "method", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "hakuriver_http_request_duration_seconds", Help: "API request latency on this replica.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"route", "method"}),
	}
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f)
	}
	stat := func(key string) func() float64 {
		return func() float64 {
			v, _ := strconv.ParseFloat(h.raft.r.Stats()[key], 64)
			return v
		}
	}
	m.reg.MustRegister(
		m.requests, m.latency,
		taskCollector{h: h, desc: prometheus.NewDesc("hakuriver_tasks", "Tasks by status in this replica's FSM.", []string{"status"}, nil)},
		gauge("hakuriver_raft_state", "Raft state: 0 follower, 1 candidate, 2 leader, 3 shutdown.", func() float64 { return float64(h.raft.r.State()) }),
		gauge("hakuriver_raft_is_leader", "1 when this replica is the leader.", func() float64 {
			if h.IsLeader() {
				return 1
			}
			return 0
		}),
		gauge("hakuriver_raft_applied_index", "Last log index applied to the FSM.", func() float64 { return float64(h.machine.AppliedIndex()) }),
		gauge("hakuriver_raft_commit_index", "Raft commit index.", stat("commit_index")),
		gauge("hakuriver_raft_last_log_index", "Last Raft log index.", stat("last_log_index")),
		gauge("hakuriver_raft_term", "Current Raft term.", stat("term")),
		gauge("hakuriver_nodes", "Registered runner nodes.", func() float64 { return float64(len(h.machine.Nodes())) }),
	)
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

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

// instrument counts and times every request by its route pattern.
func (m *metrics) instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		next.ServeHTTP(rec, r)
		route := "unmatched"
		if rc := chi.RouteContext(r.Context()); rc != nil && rc.RoutePattern() != "" {
			route = rc.RoutePattern()
		}
		m.requests.WithLabelValues(route, r.Method, strconv.Itoa(rec.code)).Inc()
		m.latency.WithLabelValues(route, r.Method).Observe(time.Since(start).Seconds())
	})
}
