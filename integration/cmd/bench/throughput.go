//go:build integration

package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/integration/harness"
)

// requestTimeout bounds one submit of the bench.
const requestTimeout = 15 * time.Second

// profileDirEnv names a directory where the replicas of the throughput
// clusters write their CPU profiles (<scope>/<node-id>.cpu.pprof), for
// `go tool pprof`.
const profileDirEnv = "HAKURIVER_BENCH_PROFILE_DIR"

// startBenchCluster starts 3 replicas with quiet logs in scope sc.
func startBenchCluster(sc *scope, bin string) *harness.Cluster {
	var args []string
	if dir := os.Getenv(profileDirEnv); dir != "" {
		dir = filepath.Join(dir, strings.ReplaceAll(strings.Trim(sc.name, "/"), "/", "_"))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			sc.Fatalf("profile directory: %v", err)
		}
		args = append(args, "--cpu-profile-dir", dir)
	}
	return harness.StartCluster(sc, harness.Options{Bin: bin, Replicas: 3, LogLevel: "warn", Args: args})
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
	raftCost
}

// raftCost is what one run cost the Raft group, from the leader's view:
// log entries and log-store writes (each an fsync) per accepted submit,
// and elections (term changes on any replica) during the run.
type raftCost struct {
	entries, stores uint64
	storeSeconds    float64 // the leader's time in log-store writes
	termChanges     uint64
	// leaderCPU and allCPU are the CPU time (user and system) the leader
	// and all replicas used during the run.
	leaderCPU, allCPU time.Duration
	costErr           string
}

// raftMark is the Raft state raftCost is measured between.
type raftMark struct {
	leader      int
	lastIndex   uint64
	storeWrites uint64
	storeSum    float64
	maxTerm     uint64
	cpu         []time.Duration // of each replica, by index
}

// markRaft reads the leader's last index and log-store write count and the
// highest term of any replica.
func markRaft(c *harness.Cluster) (raftMark, error) {
	m := raftMark{leader: c.WaitLeader(harness.LeaderTimeout)}
	for i := range c.N() {
		st, err := c.Status(i)
		if err != nil {
			return m, err
		}
		m.maxTerm = max(m.maxTerm, st.Term)
		if i == m.leader {
			m.lastIndex = st.LastIndex
		}
		cpu, err := processCPU(c.Replica(i).PID())
		if err != nil {
			return m, err
		}
		m.cpu = append(m.cpu, cpu)
	}
	n, err := metricValue(c, m.leader, "hakuriver_raft_store_duration_seconds_count")
	if err != nil {
		return m, err
	}
	m.storeWrites = uint64(n)
	m.storeSum, err = metricValue(c, m.leader, "hakuriver_raft_store_duration_seconds_sum")
	return m, err
}

// costBetween is the Raft cost from a to b; a leader change makes the
// per-leader counts meaningless, so only the term change is kept.
func costBetween(a, b raftMark, errA, errB error) raftCost {
	switch {
	case errA != nil:
		return raftCost{costErr: errA.Error()}
	case errB != nil:
		return raftCost{costErr: errB.Error()}
	}
	rc := raftCost{termChanges: b.maxTerm - a.maxTerm}
	if a.leader == b.leader {
		rc.entries = b.lastIndex - a.lastIndex
		rc.stores = b.storeWrites - a.storeWrites
		rc.storeSeconds = b.storeSum - a.storeSum
		rc.leaderCPU = b.cpu[b.leader] - a.cpu[a.leader]
	}
	for i := range min(len(a.cpu), len(b.cpu)) {
		rc.allCPU += b.cpu[i] - a.cpu[i]
	}
	return rc
}

// metricValue scrapes replica i's /metrics (cluster token) and returns the
// value of an unlabelled sample.
func metricValue(c *harness.Cluster, i int, name string) (float64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	a, err := c.CallInternal(ctx, i, http.MethodGet, "/metrics", nil)
	if err != nil {
		return 0, err
	}
	if a.Status != http.StatusOK {
		return 0, fmt.Errorf("GET /metrics: %s", a)
	}
	for _, line := range strings.Split(string(a.Body), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	return 0, fmt.Errorf("GET /metrics: no %s", name)
}

// throughput measures submit throughput through the leader and through a
// follower with 1, 16 and 64 clients, each on a fresh cluster, with what
// each run cost the Raft group.
func throughput(parent *scope, bin string, s settings) []tpRun {
	var out []tpRun
	for _, via := range []string{"leader", "follower"} {
		for _, clients := range []int{1, 16, 64} {
			sc := parent.child(fmt.Sprintf("throughput-%s-%d", via, clients))
			c := startBenchCluster(sc, bin)
			target := c.WaitLeader(harness.LeaderTimeout)
			if via == "follower" {
				target = c.Followers()[0]
			}
			// Warm up connections and the leader's first fsyncs.
			submitLoad(c, target, clients, time.Second, 4*clients, "warmup")
			before, errA := markRaft(c)
			l := submitLoad(c, target, clients, s.duration, s.maxRequests, "load")
			lastIndex(sc, c, before.leader) // what is in flight has landed
			after, errB := markRaft(c)
			out = append(out, tpRun{via: via, clients: clients, load: l, raftCost: costBetween(before, after, errA, errB)})
			if os.Getenv(profileDirEnv) != "" {
				for i := range 3 { // a clean stop writes the profiles
					c.Terminate(i)
				}
			}
			sc.close()
		}
	}
	return out
}

func printThroughput(out io.Writer, s settings, runs []tpRun) {
	fmt.Fprintf(out, "Submit throughput: POST /api/submit, one task per request, closed loop; each run <= %s or %d requests, fresh cluster\n", s.duration, s.maxRequests)
	tw := table(out)
	fmt.Fprintln(tw, "through\tclients\trequests\t202\ttasks/s\tp50 ms\tp99 ms\tmax ms\tentries/task\tfsyncs/task\tms/fsync\tleader CPU ms/task\tall CPU ms/task\telections\tfirst error\t")
	for _, r := range runs {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%.0f\t%.1f\t%.1f\t%.1f\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t\n", r.via, r.clients, r.sent, r.ok, r.perSecond(),
			msf(r.pct(0.50)), msf(r.pct(0.99)), msf(r.pct(1)), perTask(r.entries, r.ok), perTask(r.stores, r.ok), msPerStore(r.storeSeconds, r.stores), cpuPerTask(r.leaderCPU, r.ok), cpuPerTask(r.allCPU, r.ok), r.termChanges, orDash(r.firstErr+r.costErr))
	}
	tw.Flush() //nolint:errcheck // stdout
	fmt.Fprintln(out, "(entries/fsyncs per task: the leader's Raft log entries and log-store writes, each an fsync, per accepted submit; ms/fsync: the leader's mean log-store write; CPU ms/task: user+system CPU of the leader and of all 3 replicas per accepted submit, from /proc/<pid>/stat; elections: term changes on any replica during the run, target 0)")
}

// msPerStore formats the mean log-store write in milliseconds ("-" without
// any).
func msPerStore(seconds float64, stores uint64) string {
	if stores == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", seconds*1000/float64(stores))
}

// cpuPerTask formats CPU milliseconds per accepted submit ("-" without
// any).
func cpuPerTask(d time.Duration, ok int) string {
	if ok == 0 || d <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.3f", msf(d)/float64(ok))
}

// perTask formats n per accepted submit ("-" without any).
func perTask(n uint64, ok int) string {
	if ok == 0 || n == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", float64(n)/float64(ok))
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
