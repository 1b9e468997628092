//go:build integration

package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/integration/harness"
)

// requestTimeout bounds one submit of the bench.
const requestTimeout = 15 * time.Second

// startBenchCluster starts 3 replicas with quiet logs in scope sc.
func startBenchCluster(sc *scope, bin string) *harness.Cluster {
	return harness.StartCluster(sc, harness.Options{Bin: bin, Replicas: 3, LogLevel: "warn"})
}

// load is the outcome of one closed-loop load run.
type load struct {
	sent, ok int
	elapsed  time.Duration
	lat      []time.Duration // of the 202 answers, sorted
	firstErr string
}

func (l load) perSecond() float64 {
	if l.elapsed <= 0 {
		return 0
	}
	return float64(l.ok) / l.elapsed.Seconds()
}

func (l load) pct(p float64) time.Duration {
	if len(l.lat) == 0 {
		return 0
	}
	return l.lat[min(len(l.lat)-1, int(p*float64(len(l.lat))))]
}

// submitLoad runs clients goroutines that each submit one task after the
// other through replica i until d has passed or max requests were sent,
// as the cluster's admin.
func submitLoad(c *harness.Cluster, i, clients int, d time.Duration, max int, tag string) load {
	return submitLoadAs(c, i, clients, d, max, tag, c.AdminToken())
}

// submitLoadAs is submitLoad with an account's token (bearer; "" sends
// none: an anonymous caller).
func submitLoadAs(c *harness.Cluster, i, clients int, d time.Duration, max int, tag, bearer string) load {
	var issued atomic.Int64
	var mu sync.Mutex
	var res load
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(d)
	for w := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var lat []time.Duration
			sent, ok := 0, 0
			firstErr := ""
			for n := 0; time.Now().Before(deadline) && issued.Add(1) <= int64(max); n++ {
				sent++
				ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
				t0 := time.Now()
				a, err := c.CallAs(ctx, i, http.MethodPost, "/api/submit", bearer, api.SubmitRequest{Command: "true", Arguments: []string{tag, fmt.Sprint(w), fmt.Sprint(n)}})
				cancel()
				switch {
				case err != nil:
					if firstErr == "" {
						firstErr = err.Error()
					}
				case a.Status != http.StatusAccepted:
					if firstErr == "" {
						firstErr = a.String()
					}
				default:
					ok++
					lat = append(lat, time.Since(t0))
				}
			}
			mu.Lock()
			res.sent += sent
			res.ok += ok
			res.lat = append(res.lat, lat...)
			if res.firstErr == "" {
				res.firstErr = firstErr
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	slices.Sort(res.lat)
	return res
}

// tpRun is one throughput measurement.
type tpRun struct {
	via     string
	clients int
	load
}

// throughput measures submit throughput through the leader and through a
// follower with 1 and 16 clients, each on a fresh cluster.
func throughput(parent *scope, bin string, s settings) []tpRun {
	var out []tpRun
	for _, via := range []string{"leader", "follower"} {
		for _, clients := range []int{1, 16} {
			sc := parent.child(fmt.Sprintf("throughput-%s-%d", via, clients))
			c := startBenchCluster(sc, bin)
			target := c.WaitLeader(harness.LeaderTimeout)
			if via == "follower" {
				target = c.Followers()[0]
			}
			// Warm up connections and the leader's first fsyncs.
			submitLoad(c, target, clients, time.Second, 4*clients, "warmup")
			out = append(out, tpRun{via: via, clients: clients, load: submitLoad(c, target, clients, s.duration, s.maxRequests, "load")})
			sc.close()
		}
	}
	return out
}

func printThroughput(out io.Writer, s settings, runs []tpRun) {
	fmt.Fprintf(out, "Submit throughput: POST /api/submit, one task per request, closed loop; each run <= %s or %d requests, fresh cluster\n", s.duration, s.maxRequests)
	tw := table(out)
	fmt.Fprintln(tw, "through\tclients\trequests\t202\ttasks/s\tp50 ms\tp99 ms\tmax ms\tfirst error\t")
	for _, r := range runs {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%.0f\t%.1f\t%.1f\t%.1f\t%s\t\n", r.via, r.clients, r.sent, r.ok, r.perSecond(),
			msf(r.pct(0.50)), msf(r.pct(0.99)), msf(r.pct(1)), orDash(r.firstErr))
	}
	tw.Flush() //nolint:errcheck // stdout
}

func msf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	if len(s) > 60 {
		return s[:60] + "..."
	}
	return s
}
