//go:build integration

package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/fsm"
	"github.com/hakuriver/hakuriver-ha/integration/harness"
	"github.com/hakuriver/hakuriver-ha/ops/environment"
)

// Heartbeat timing of the runner benchmarks: heartbeat_interval 1 s and
// the default factor 3, so a runner is offline after 3 s of silence.
const (
	benchHBInterval = 1
	benchHBFactor   = 3
)

// taskBudget bounds one latency sample.
const taskBudget = 30 * time.Second

// statusRetry is how long the latency measurement waits after a failed
// or unchanged read of a task's status before the next.
const statusRetry = 2 * time.Millisecond

// startRunnerBenchCluster starts 3 replicas with 1 s heartbeats and quiet
// logs in scope sc.
func startRunnerBenchCluster(sc *scope, bin string) *harness.Cluster {
	return harness.StartCluster(sc, harness.Options{Bin: bin, Replicas: 3, LogLevel: "warn",
		HeartbeatInterval: benchHBInterval, HeartbeatTimeoutFactor: benchHBFactor})
}

// taskLatency is the outcome of the native-task latency measurement.
type taskLatency struct {
	samples    int
	submitters int
	via        string
	// entries is how many Raft entries the leader's log grew by over the
	// measurement (warm-up included), tasks how many tasks ended in it.
	entries, tasks int
	answered       []time.Duration // submit sent → its 202 received, sorted
	running        []time.Duration // submit sent → the task's process started (its started_at), sorted
	ended          []time.Duration // submit sent → the task's process ended (its completed_at, stamped by the runner), sorted
	completed      []time.Duration // submit sent → the follower reports completed, sorted
	firstErr       string
}

// detection is one runner-loss trial.
type detection struct {
	seen    time.Duration // SIGKILL → GET /api/nodes on the leader says offline
	silence time.Duration // last heartbeat → offline committed, as the leader measured it
}

// runnerResult gathers the measurements made with one real runner.
type runnerResult struct {
	lat    []taskLatency // 1 and 8 concurrent submitters
	trials []detection
}

// runnerBench starts 3 replicas and one runner, measures submit → running
// and submit → completed of native `true` through a follower, then SIGKILLs
// the runner s.offlineTrials times to measure the time to offline.
func runnerBench(parent *scope, bin string, s settings) runnerResult {
	sc := parent.child("runner")
	defer sc.close()
	c := startRunnerBenchCluster(sc, bin)
	c.StartRunner("r1", harness.RunnerOptions{NoDocker: true})
	var res runnerResult
	for _, k := range []int{1, 8} {
		res.lat = append(res.lat, nativeLatency(sc, c, s.runnerSamples, k))
	}
	for n := range s.offlineTrials {
		res.trials = append(res.trials, runnerLoss(sc, c, "r1", n))
	}
	return res
}

// nativeLatency has k submitters each submit native `true` n/k times, one
// after the other, through a follower and times each until its process
// started and until the follower reports it completed. It also counts the
// Raft entries the leader's log grew by per task that ended.
func nativeLatency(sc *scope, c *harness.Cluster, n, k int) taskLatency {
	via := c.Followers()[0]
	res := taskLatency{via: c.Replica(via).ID, submitters: k}
	leader := c.WaitLeader(harness.LeaderTimeout)
	first := lastIndex(sc, c, leader)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range k {
		wg.Add(1)
		go func() {
			defer wg.Done()
			one := latencyRun(sc, c, via, max(1, n/k))
			mu.Lock()
			defer mu.Unlock()
			res.samples += one.samples
			res.tasks += one.tasks
			res.answered = append(res.answered, one.answered...)
			res.running = append(res.running, one.running...)
			res.ended = append(res.ended, one.ended...)
			res.completed = append(res.completed, one.completed...)
			if res.firstErr == "" {
				res.firstErr = one.firstErr
			}
		}()
	}
	wg.Wait()
	res.entries = int(lastIndex(sc, c, leader) - first)
	for _, d := range [][]time.Duration{res.answered, res.running, res.ended, res.completed} {
		slices.Sort(d)
	}
	return res
}

// lastIndex returns replica i's last Raft index once it holds still for
// 300 ms (what is in flight has landed).
func lastIndex(sc *scope, c *harness.Cluster, i int) uint64 {
	var last uint64
	since := time.Now()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		st, err := c.Status(i)
		if err != nil {
			continue
		}
		if st.LastIndex != last {
			last, since = st.LastIndex, time.Now()
		}
		if time.Since(since) >= 300*time.Millisecond {
			return last
		}
	}
	sc.Fatalf("replica %d: Raft log never quiet", i)
	return 0
}

// awaitFinal returns task id as replica via holds it once final, or false
// at deadline. It waits on blocking queries (GET /api/status?wait&unless=
// <the status last seen>), which the replica answers at each change of
// status: no polling load on the machine measured.
func awaitFinal(c *harness.Cluster, via int, id string, deadline time.Time) (api.Task, bool) {
	seen := fsm.StatusPending
	for time.Now().Before(deadline) {
		t, err := c.TaskChange(via, id, seen, time.Second)
		if err != nil {
			time.Sleep(statusRetry)
			continue
		}
		if t.Status.Final() {
			return t, true
		}
		if t.Status == seen {
			// The wait ran out, or a replica of an earlier version
			// answered at once: it is polled every statusRetry then.
			time.Sleep(statusRetry)
		}
		seen = t.Status
	}
	return api.Task{}, false
}

// latencyRun is one submitter of nativeLatency: n tasks after 3 warm-up
// ones.
func latencyRun(sc *scope, c *harness.Cluster, via, n int) taskLatency {
	var res taskLatency
	null := environment.Native
	req := api.SubmitRequest{Command: "true", ContainerName: &null}
	const warmup = 3
	for k := range n + warmup {
		t0 := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
		a, out, err := c.Submit(ctx, via, req)
		cancel()
		answered := time.Since(t0)
		if err != nil || a.Status != http.StatusAccepted || len(out.TaskIDs) != 1 {
			if res.firstErr == "" {
				res.firstErr = fmt.Sprintf("submit: %v %s", err, a)
			}
			continue
		}
		id := out.TaskIDs[0]
		task, ok := awaitFinal(c, via, id, t0.Add(taskBudget))
		if !ok {
			sc.Fatalf("native true %s: not final within %s", id, taskBudget)
		}
		done := time.Since(t0)
		res.tasks++
		switch {
		case task.Status != "completed":
			if res.firstErr == "" {
				res.firstErr = fmt.Sprintf("task %s ended %s: %s", id, task.Status, task.ErrorMessage)
			}
			continue
		case k < warmup:
			continue
		}
		res.samples++
		res.answered = append(res.answered, answered)
		res.completed = append(res.completed, done)
		if task.StartedAt != nil {
			res.running = append(res.running, task.StartedAt.Sub(t0))
		}
		if task.CompletedAt != nil {
			res.ended = append(res.ended, task.CompletedAt.Sub(t0))
		}
	}
	return res
}

// runnerLoss SIGKILLs runner name, times until the leader lists it
// offline, then restarts it and waits until it is online again.
func runnerLoss(sc *scope, c *harness.Cluster, name string, trial int) detection {
	leader := c.WaitLeader(harness.LeaderTimeout)
	c.WaitNodeStatus(name, "online", harness.StartTimeout)
	// Kill right after a heartbeat, so every trial starts from the same
	// point of the heartbeat cycle.
	last := ""
	deadline := time.Now().Add(5 * benchHBInterval * time.Second)
	for time.Now().Before(deadline) {
		n, err := leaderNode(c, leader, name)
		if err == nil && n.LastHeartbeat != nil {
			if last != "" && *n.LastHeartbeat != last {
				break
			}
			last = *n.LastHeartbeat
		}
		time.Sleep(10 * time.Millisecond)
	}
	killedAt := time.Now()
	c.KillRunner(name)
	var d detection
	budget := 10 * benchHBInterval * benchHBFactor * time.Second
	for time.Since(killedAt) < budget {
		n, err := leaderNode(c, leader, name)
		if err == nil && n.Status == "offline" {
			d.seen = time.Since(killedAt)
			if n.LastHeartbeat != nil {
				if hb, err := time.Parse(time.RFC3339Nano, *n.LastHeartbeat); err == nil {
					d.silence = n.StatusChangedAt.Sub(hb)
				}
			}
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if d.seen == 0 {
		sc.Fatalf("runner loss trial %d: %s not offline within %s of SIGKILL", trial, name, budget)
	}
	c.RestartRunner(name)
	c.WaitNodeStatus(name, "online", harness.StartTimeout)
	return d
}

// leaderNode returns node name from the leader's GET /api/nodes.
func leaderNode(c *harness.Cluster, leader int, name string) (api.NodeView, error) {
	nodes, err := c.Nodes(leader)
	if err != nil {
		return api.NodeView{}, err
	}
	for _, n := range nodes {
		if n.Hostname == name {
			return n, nil
		}
	}
	return api.NodeView{}, fmt.Errorf("node %s not listed", name)
}

func printRunner(out io.Writer, s settings, r runnerResult) {
	for _, l := range r.lat {
		fmt.Fprintf(out, "Native `true` on 1 runner, %d submitter(s) each submitting one at a time through follower %s: %d samples (after 3 warm-up tasks each)\n", l.submitters, l.via, l.samples)
		fmt.Fprintln(out, "(answered = the submit's 202 received; running = the task's process started, its started_at; ended = its process ended, its completed_at as the runner stamped it; completed = the follower reports completed, to a blocking query (GET /api/status?wait&unless=<last status seen>) that answers at each change; all from the submit sent, on this machine's one clock)")
		tw := table(out)
		fmt.Fprintln(tw, "submit →\tsamples\tp50 ms\tp99 ms\tmax ms\ttarget\tfirst error\t")
		for _, row := range []struct {
			name, target string
			d            []time.Duration
		}{{"answered", "-", l.answered}, {"running", "-", l.running}, {"ended", "-", l.ended}, {"completed", "p50 <= 10, p99 <= 50", l.completed}} {
			fmt.Fprintf(tw, "%s\t%d\t%.1f\t%.1f\t%.1f\t%s\t%s\t\n", row.name, len(row.d), msf(pctD(row.d, 0.5)), msf(pctD(row.d, 0.99)), msf(pctD(row.d, 1)), row.target, orDash(l.firstErr))
		}
		tw.Flush() //nolint:errcheck // stdout
		if l.tasks > 0 {
			fmt.Fprintf(out, "Raft entries per completed task: %.2f (%d entries on the leader for %d tasks, heartbeats' node changes included)\n", float64(l.entries)/float64(l.tasks), l.entries, l.tasks)
		}
		fmt.Fprintln(out)
	}
	fmt.Fprintf(out, "Runner loss: SIGKILL of the runner just after a heartbeat, heartbeat_interval %d s x factor %d = %d s timeout; %d trials (runner restarted in between)\n",
		benchHBInterval, benchHBFactor, benchHBInterval*benchHBFactor, len(r.trials))
	tw := table(out)
	fmt.Fprintln(tw, "trial\tSIGKILL → offline seen ms\tlast heartbeat → offline committed ms\t")
	var seen, silence []time.Duration
	for n, d := range r.trials {
		fmt.Fprintf(tw, "%d\t%s\t%s\t\n", n+1, ms(d.seen), ms(d.silence))
		seen = append(seen, d.seen)
		silence = append(silence, d.silence)
	}
	fmt.Fprintf(tw, "median\t%s\t%s\t\n", ms(median(seen)), ms(median(silence)))
	tw.Flush() //nolint:errcheck // stdout
}

// pctD returns the p-quantile of sorted durations.
func pctD(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(p*float64(len(sorted))))]
}

// simResult is the outcome of the simulated-runner heartbeat load.
type simResult struct {
	runners        int
	window         time.Duration
	leader         string
	cpuPercent     float64 // of one core
	appliedBefore  uint64
	appliedAfter   uint64
	registerTime   time.Duration
	beats, beatsOK int
	beatLat        []time.Duration
	nodesLat       []time.Duration
	nodesErr       int
	online         int
	firstErr       string
}

// simulatedRunners registers s.simRunners fake runners with 3 replicas and
// makes each heartbeat every second (PUT /api/heartbeat/{name} with the
// cluster token, spread over the replicas, which forward to the leader)
// for s.simDuration, while GET /api/nodes is timed on every replica in
// turn. It reports the leader's CPU and the Raft entries added in that
// window.
func simulatedRunners(parent *scope, bin string, s settings) simResult {
	sc := parent.child("heartbeats")
	defer sc.close()
	c := startRunnerBenchCluster(sc, bin)
	leader := c.WaitLeader(harness.LeaderTimeout)
	res := simResult{runners: s.simRunners, window: s.simDuration, leader: c.Replica(leader).ID}
	names := make([]string, s.simRunners)
	for k := range names {
		names[k] = fmt.Sprintf("sim-%03d", k)
	}

	start := time.Now()
	work := make(chan string)
	errs := make(chan error, len(names))
	for range 8 {
		go func() {
			for name := range work {
				errs <- register(c, leader, name)
			}
		}()
	}
	for _, name := range names {
		work <- name
	}
	close(work)
	for range names {
		if err := <-errs; err != nil {
			sc.Fatalf("register simulated runners: %v", err)
		}
	}
	res.registerTime = time.Since(start)

	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	beats := make(chan beat, 1024)
	var wg sync.WaitGroup
	for k, name := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			heartbeater(ctx, c, k%3, name, time.Duration(k)*time.Second/time.Duration(len(names)), beats)
		}()
	}
	collected := make(chan []beat, 1)
	go func() {
		var all []beat
		for b := range beats {
			all = append(all, b)
		}
		collected <- all
	}()

	// Warm up: every runner has sent a few heartbeats and nothing is
	// pending in the log.
	time.Sleep(3 * benchHBInterval * time.Second)
	c.WaitSameApplied(30*time.Second, 0, 1, 2)
	pid := c.Replica(leader).PID()
	cpu0, err := harness.ReadProcStat(pid)
	if err != nil {
		sc.Fatalf("leader CPU: %v", err)
	}
	st0, err := c.Status(leader)
	if err != nil {
		sc.Fatalf("leader status: %v", err)
	}
	res.appliedBefore = st0.AppliedIndex
	windowStart := time.Now()
	nodesDone := make(chan struct{})
	go func() {
		defer close(nodesDone)
		for k := 0; time.Since(windowStart) < s.simDuration; k++ {
			ctx, cancel := context.WithTimeout(context.Background(), harness.ReadTimeout)
			a, err := c.Call(ctx, k%3, http.MethodGet, "/api/nodes", nil)
			cancel()
			if err != nil || a.Status != http.StatusOK {
				res.nodesErr++
			} else {
				res.nodesLat = append(res.nodesLat, a.Elapsed)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
	time.Sleep(s.simDuration)
	<-nodesDone
	cpu1, err := harness.ReadProcStat(pid)
	if err != nil {
		sc.Fatalf("leader CPU: %v", err)
	}
	elapsed := time.Since(windowStart)
	st1, err := c.Status(leader)
	if err != nil {
		sc.Fatalf("leader status: %v", err)
	}
	stop()
	if st1.Term != st0.Term || st1.LeaderID != st0.LeaderID {
		sc.Fatalf("leadership changed during the heartbeat window (%s term %d → %s term %d)", st0.LeaderID, st0.Term, st1.LeaderID, st1.Term)
	}
	res.appliedAfter = st1.AppliedIndex
	res.cpuPercent = float64(cpu1.CPUTicks-cpu0.CPUTicks) / harness.ClockTicks / elapsed.Seconds() * 100
	nodes, err := c.Nodes(leader)
	if err != nil {
		sc.Fatalf("nodes: %v", err)
	}
	for _, n := range nodes {
		if n.Status == "online" {
			res.online++
		}
	}
	// Cancelling ctx aborts the heartbeats in flight.
	wg.Wait()
	close(beats)
	for _, b := range <-collected {
		if b.at.Before(windowStart) || b.at.After(windowStart.Add(elapsed)) {
			continue
		}
		res.beats++
		if b.err == "" {
			res.beatsOK++
			res.beatLat = append(res.beatLat, b.lat)
		} else if res.firstErr == "" {
			res.firstErr = b.err
		}
	}
	slices.Sort(res.beatLat)
	slices.Sort(res.nodesLat)
	return res
}

// register registers one simulated runner through replica i.
func register(c *harness.Cluster, i int, name string) error {
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	a, err := c.CallInternal(ctx, i, http.MethodPost, "/api/register", api.RegisterRequest{
		Hostname: name, TotalCores: 8, TotalRAMBytes: 16 << 30,
		// Nothing is ever dispatched: no task is submitted.
		RunnerURL: "http://127.0.0.1:9", Version: "bench",
	})
	if err != nil {
		return fmt.Errorf("register %s: %w", name, err)
	}
	if a.Status != http.StatusOK {
		return fmt.Errorf("register %s: %s", name, a)
	}
	return nil
}

// beat is one heartbeat's outcome.
type beat struct {
	at  time.Time
	lat time.Duration
	err string
}

// heartbeater sends a heartbeat for name to replica i every
// benchHBInterval, starting after offset, until ctx ends.
func heartbeater(ctx context.Context, c *harness.Cluster, i int, name string, offset time.Duration, out chan<- beat) {
	select {
	case <-ctx.Done():
		return
	case <-time.After(offset):
	}
	cpu, mem, used, total := 12.5, 40.0, int64(6<<30), int64(16<<30)
	body := api.HeartbeatRequest{RunningTasks: []int64{}, CPUPercent: &cpu, MemoryPercent: &mem, MemoryUsedBytes: &used, MemoryTotalBytes: &total}
	tick := time.NewTicker(benchHBInterval * time.Second)
	defer tick.Stop()
	for {
		rctx, cancel := context.WithTimeout(ctx, harness.WriteTimeout)
		at := time.Now()
		a, err := c.CallInternal(rctx, i, http.MethodPut, "/api/heartbeat/"+name, body)
		cancel()
		b := beat{at: at, lat: a.Elapsed}
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			b.err = err.Error()
		case a.Status != http.StatusOK:
			b.err = a.String()
		}
		out <- b
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func printSimulated(out io.Writer, r simResult) {
	fmt.Fprintf(out, "%d simulated runners heart-beating every %d s against 3 replicas (forwarded to the leader), %s window after registration and 3 s of warm-up\n",
		r.runners, benchHBInterval, r.window)
	fmt.Fprintf(out, "(registration of all %d took %s; leader %s; CPU %% is of one core, from /proc/<pid>/stat utime+stime)\n", r.runners, r.registerTime.Round(time.Millisecond), r.leader)
	tw := table(out)
	fmt.Fprintln(tw, "leader CPU %\tRaft entries added\theartbeats\tfailed\thb p50 ms\thb p99 ms\tGET /api/nodes\tnodes p50 ms\tnodes p99 ms\tonline at end\tfirst error\t")
	fmt.Fprintf(tw, "%.1f\t%d\t%d\t%d\t%.1f\t%.1f\t%d\t%.1f\t%.1f\t%d/%d\t%s\t\n",
		r.cpuPercent, r.appliedAfter-r.appliedBefore, r.beats, r.beats-r.beatsOK,
		msf(pctD(r.beatLat, 0.5)), msf(pctD(r.beatLat, 0.99)),
		len(r.nodesLat)+r.nodesErr, msf(pctD(r.nodesLat, 0.5)), msf(pctD(r.nodesLat, 0.99)),
		r.online, r.runners, orDash(strings.TrimSpace(r.firstErr)))
	tw.Flush() //nolint:errcheck // stdout
}
