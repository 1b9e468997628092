//go:build integration

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster"
	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/fsm"
	"github.com/hakuriver/hakuriver-ha/integration/harness"
)

// Shape of the sweep benchmark: 100 × 100 = 10,000 combinations (the
// cluster sweep's limit) on sweepRunners simulated runners of
// sweepRunnerCores cores each, enough for every task at once.
const (
	sweepSide        = 100
	sweepRunners     = 40
	sweepRunnerCores = 256
	sweepBudget      = 5 * time.Minute
	// The simulated runners heart-beat every sweepHBInterval seconds and
	// go offline after sweepHBFactor missed beats: lenient, as a loaded
	// 2-core machine runs 3 replicas, 40 runners and the CLI at once.
	sweepHBInterval = 2
	sweepHBFactor   = 15
)

// sweepResult is one 10,000-combination sweep's timeline, from the moment
// `hakuriver sweep` started.
type sweepResult struct {
	tasks    int
	accepted time.Duration // the CLI exited 0 with the batch ID and every task ID
	placed   time.Duration // no task of the batch pending: every placement committed
	started  time.Duration // every task running (reported by the simulated runners)
	runs     int           // /run calls the simulated runners answered
	dupRuns  int           // of which for a task already started (re-sent /run)
	terms    uint64        // Raft terms that began during the run (a leader change under load)
	err      string
	failed   int // heartbeats and update posts that failed (retried)
	// entries is the number of Raft entries that carried the sweep's
	// tasks and largest the size of the largest (0: not read).
	entries, largest int
}

// simRunner is a runner simulated in the bench process: it answers the
// leader's /run with 200, reports the task running through POST
// /api/updates, and heart-beats with the tasks it holds, as a real runner
// would, without running anything.
type simRunner struct {
	name string
	srv  *http.Server
	url  string

	mu      sync.Mutex
	running map[int64]bool
	fresh   []int64 // accepted, not yet reported
	runs    int
	dups    int
	failed  int
}

func (r *simRunner) serve(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodPost || req.URL.Path != "/run" {
		http.Error(w, `{"detail":"the simulated runner answers POST /run only"}`, http.StatusNotFound)
		return
	}
	var run api.RunRequest
	if err := json.NewDecoder(io.LimitReader(req.Body, 1<<20)).Decode(&run); err != nil || run.TaskID == 0 {
		http.Error(w, `{"detail":"bad /run body"}`, http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	r.runs++
	if r.running[run.TaskID] {
		r.dups++
	} else {
		r.running[run.TaskID] = true
		r.fresh = append(r.fresh, run.TaskID)
	}
	r.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprint(w, `{"message":"started"}`)
}

// requeue puts back tasks whose report failed.
func (r *simRunner) requeue(ids []int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fresh = append(r.fresh, ids...)
	r.failed++
}

// take returns the tasks accepted since the last call.
func (r *simRunner) take() []int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.fresh
	r.fresh = nil
	return out
}

// held returns every task the runner holds.
func (r *simRunner) held() []int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]int64, 0, len(r.running))
	for id := range r.running {
		out = append(out, id)
	}
	return out
}

// startSimRunner listens on loopback and registers the runner through
// replica i.
func startSimRunner(sc *scope, c *harness.Cluster, i int, name string) *simRunner {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		sc.Fatalf("simulated runner %s: %v", name, err)
	}
	r := &simRunner{name: name, running: map[int64]bool{}, url: "http://" + ln.Addr().String()}
	r.srv = &http.Server{Handler: http.HandlerFunc(r.serve), ReadHeaderTimeout: 10 * time.Second}
	go r.srv.Serve(ln) //nolint:errcheck // ends with Close
	sc.Cleanup(func() { r.srv.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	a, err := c.CallInternal(ctx, i, http.MethodPost, "/api/register", api.RegisterRequest{
		Hostname: name, TotalCores: sweepRunnerCores, TotalRAMBytes: 1 << 40, RunnerURL: r.url, Version: "bench",
	})
	if err != nil || a.Status != http.StatusOK {
		sc.Fatalf("register %s: %v %s", name, err, a)
	}
	return r
}

// loop heart-beats every second with the held tasks and reports new ones
// running (at most api.MaxUpdateBatch per POST /api/updates) until ctx
// ends.
func (r *simRunner) loop(ctx context.Context, c *harness.Cluster, i int, errs chan<- string) {
	report := time.NewTicker(50 * time.Millisecond)
	defer report.Stop()
	beat := time.NewTicker(sweepHBInterval * time.Second)
	defer beat.Stop()
	note := func(s string) {
		select {
		case errs <- s:
		default:
		}
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-beat.C:
			cpu, mem := 50.0, 10.0
			used, total := int64(1<<30), int64(1<<40)
			body := api.HeartbeatRequest{RunningTasks: r.held(), CPUPercent: &cpu, MemoryPercent: &mem, MemoryUsedBytes: &used, MemoryTotalBytes: &total}
			rctx, cancel := context.WithTimeout(ctx, harness.WriteTimeout)
			a, err := c.CallInternal(rctx, i, http.MethodPut, "/api/heartbeat/"+r.name, body)
			cancel()
			if ctx.Err() == nil && (err != nil || a.Status != http.StatusOK) {
				r.mu.Lock()
				r.failed++
				r.mu.Unlock()
				note(fmt.Sprintf("heartbeat %s: %v %s", r.name, err, a))
			}
		case <-report.C:
			ids := r.take()
			for len(ids) > 0 {
				n := min(len(ids), api.MaxUpdateBatch)
				now := time.Now().UTC()
				req := api.UpdatesRequest{}
				for _, id := range ids[:n] {
					req.Updates = append(req.Updates, api.UpdateRequest{TaskID: id, Status: "running", StartedAt: &now})
				}
				rctx, cancel := context.WithTimeout(ctx, harness.WriteTimeout)
				a, err := c.CallInternal(rctx, i, http.MethodPost, "/api/updates", req)
				cancel()
				if ctx.Err() == nil && (err != nil || a.Status != http.StatusOK) {
					// Sent again on the next tick (a leader change).
					r.requeue(ids[:n])
					note(fmt.Sprintf("updates %s: %v %s", r.name, err, a))
				}
				ids = ids[n:]
			}
		}
	}
}

// sweepSection starts 3 replicas and sweepRunners simulated runners, runs
// `hakuriver sweep` of 10,000 combinations through every replica and
// times it until the CLI has the batch accepted, until no task is pending
// (all placed) and until every task runs.
func sweepSection(out io.Writer, parent *scope, bin string, s settings) {
	sc := parent.child("sweep")
	defer sc.close()
	c := harness.StartCluster(sc, harness.Options{Bin: bin, Replicas: 3, LogLevel: "warn",
		HeartbeatInterval: sweepHBInterval, HeartbeatTimeoutFactor: sweepHBFactor})
	leader := c.WaitLeader(harness.LeaderTimeout)
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	errs := make(chan string, 1)
	runners := make([]*simRunner, sweepRunners)
	var wg sync.WaitGroup
	for k := range runners {
		runners[k] = startSimRunner(sc, c, k%3, fmt.Sprintf("sweep-%02d", k))
		wg.Add(1)
		go func() {
			defer wg.Done()
			runners[k].loop(ctx, c, k%3, errs)
		}()
	}
	defer wg.Wait()
	defer stop()
	c.Poll(30*time.Second, "simulated runners online", func() (bool, string) {
		nodes, err := c.Nodes(leader)
		if err != nil {
			return false, err.Error()
		}
		online := 0
		for _, n := range nodes {
			if n.Status == "online" {
				online++
			}
		}
		return online == sweepRunners, fmt.Sprintf("%d/%d online", online, sweepRunners)
	})

	res := sweepResult{tasks: sweepSide * sweepSide}
	st0, err := c.Status(leader)
	if err != nil {
		sc.Fatalf("leader status: %v", err)
	}
	defer func() {
		if st1, err := c.Status(c.WaitLeader(harness.LeaderTimeout)); err == nil {
			res.terms = st1.Term - st0.Term
		}
		printSweep(out, res)
	}()
	span := fmt.Sprintf("span:{1..%d}", sweepSide)
	t0 := time.Now()
	r := c.CLIVia(nil, sweepBudget, "", "sweep", "--container", "NULL", "--cores", "1", "--name", "bench-sweep",
		"--", "python", "train.py", "--lr", span, "--seed", span)
	res.accepted = time.Since(t0)
	lines := strings.Fields(r.Stdout)
	if r.Code != 0 || len(lines) != res.tasks+1 {
		res.err = fmt.Sprintf("sweep: exit %d, %d lines: %s", r.Code, len(lines), lastLine(r.Stderr))
		return
	}
	batch := lines[0]
	// count reports whether the batch has no task in status (one page of
	// one task is enough to say "some").
	none := func(status string) (bool, error) {
		q := url.Values{"batch": {batch}, "status": {status}, "limit": {"1"}}
		rctx, cancel := context.WithTimeout(context.Background(), harness.ReadTimeout)
		defer cancel()
		// The leader's view: a follower that has not applied the submit
		// yet would see no task at all.
		at, _, ok := c.Leader()
		if !ok {
			return false, fmt.Errorf("no leader")
		}
		a, err := c.Call(rctx, at, http.MethodGet, "/api/tasks?"+q.Encode(), nil)
		if err != nil {
			return false, err
		}
		if a.Status != http.StatusOK {
			return false, fmt.Errorf("GET /api/tasks: %s", a)
		}
		var page []json.RawMessage
		if err := a.Decode(&page); err != nil {
			return false, err
		}
		return len(page) == 0, nil
	}
	deadline := t0.Add(sweepBudget)
	for res.started == 0 && time.Now().Before(deadline) {
		if res.placed == 0 {
			if ok, err := none("pending"); err == nil && ok {
				res.placed = time.Since(t0)
			}
		}
		if res.placed != 0 {
			okP, errP := none("pending")
			okA, errA := none("assigning")
			if errP == nil && errA == nil && okP && okA {
				res.started = time.Since(t0)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n, largest, err := submitEntries(c, st0.LastIndex); err != nil {
		res.err = fmt.Sprintf("read the submit's Raft entries: %v", err)
	} else {
		res.entries, res.largest = n, largest
	}
	for _, r := range runners {
		r.mu.Lock()
		res.runs += r.runs
		res.dupRuns += r.dups
		res.failed += r.failed
		r.mu.Unlock()
	}
	if res.started == 0 {
		res.err = fmt.Sprintf("not every task running after %s", sweepBudget)
		select {
		case e := <-errs:
			res.err += "; first failed call: " + e
		default:
		}
	}
}

func printSweep(out io.Writer, r sweepResult) {
	fmt.Fprintf(out, "Sweep of %d combinations (`hakuriver sweep --cores 1 -- python train.py --lr span:{1..%d} --seed span:{1..%d}`, one batch)\n", r.tasks, sweepSide, sweepSide)
	fmt.Fprintf(out, "on 3 replicas and %d simulated runners of %d cores (in the bench process: /run answered 200, reported running via POST /api/updates, heartbeats every %d s, offline after %d s); times from the CLI's start\n", sweepRunners, sweepRunnerCores, sweepHBInterval, sweepHBInterval*sweepHBFactor)
	tw := table(out)
	fmt.Fprintln(tw, "accepted ms\tall placed ms\tall running ms\t/run calls\tre-sent\tfailed calls\tnew terms\tsubmit entries\tlargest KiB\terror\t")
	fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t\n", ms(r.accepted), msOrDash(r.placed), msOrDash(r.started), r.runs, r.dupRuns, r.failed, r.terms,
		r.entries, r.largest>>10, orDash(r.err))
	tw.Flush() //nolint:errcheck // stdout
}

// submitEntries kills a follower (its Raft store is locked while it runs)
// and reads its log after index from: the number of entries that submit
// tasks (fsm.SubmitTasks, SubmitPlaced or SubmitPart, audited or not)
// and the size of the largest.
func submitEntries(c *harness.Cluster, from uint64) (n, largest int, err error) {
	at, _, ok := c.Leader()
	if !ok {
		return 0, 0, fmt.Errorf("no leader")
	}
	f := (at + 1) % 3
	c.Kill(f)
	err = cluster.ReadLogCommands(c.Replica(f).DataDir(), from, func(_ uint64, data []byte) error {
		switch fsm.CommandType(data[0]) {
		case fsm.CmdSubmitTasks, fsm.CmdSubmitPlaced, fsm.CmdSubmitPart:
		case fsm.CmdAudited:
			c, ok, err := fsm.Decode(data)
			a, audited := c.(*fsm.Audited)
			if err != nil || !ok || !audited || len(a.Command) == 0 {
				return nil
			}
			switch fsm.CommandType(a.Command[0]) {
			case fsm.CmdSubmitTasks, fsm.CmdSubmitPlaced, fsm.CmdSubmitPart:
			default:
				return nil
			}
		default:
			return nil
		}
		n++
		largest = max(largest, len(data))
		return nil
	})
	return n, largest, err
}

// msOrDash is ms(d), or "-" when d was never measured.
func msOrDash(d time.Duration) string {
	if d == 0 {
		return "-"
	}
	return ms(d)
}

// lastLine is the last non-empty line of s, at most 300 bytes.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	l := lines[len(lines)-1]
	if len(l) > 300 {
		l = l[:300]
	}
	return l
}
