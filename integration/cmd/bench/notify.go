//go:build integration

package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/cluster/notify"
	"github.com/hakuriver/hakuriver-ha/fsm"
	"github.com/hakuriver/hakuriver-ha/integration/harness"
)

// notifyBatch is how many pending tasks one batch kill ends: the offered
// rate is reached by killing a batch every notifyBatch/rate seconds.
const notifyBatch = 50

// notifyDrain bounds the wait for the last deliveries of a run.
const notifyDrain = 120 * time.Second

// notifyRun is one paced run of final states.
type notifyRun struct {
	offered   int // final states per second asked for
	achieved  float64
	finals    int
	delivered int
	requests  int // POSTs received (more than delivered: redeliveries)
	badSig    int
	lat       []time.Duration // completed_at → first receipt of the key, sorted
	perSecond float64         // delivered / (last receipt − first kill)
	err       string
}

// webhookSink is the receiver: it verifies each signature and keeps the
// first receipt time of each key.
type webhookSink struct {
	secret []byte
	mu     sync.Mutex
	first  map[string]time.Time
	count  int
	badSig int
}

func (w *webhookSink) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20)) //nolint:errcheck // a short body fails the signature
	now := time.Now()
	ok := notify.Verify(w.secret, body, r.Header.Get(notify.SignatureHeader))
	key := r.Header.Get(notify.DeliveryHeader)
	w.mu.Lock()
	w.count++
	if !ok {
		w.badSig++
	}
	if _, seen := w.first[key]; !seen {
		w.first[key] = now
	}
	w.mu.Unlock()
	rw.WriteHeader(http.StatusNoContent)
}

// notifySection measures webhook delivery from a 3-replica cluster to a
// receiver on loopback: tasks with no runner stay pending and are killed
// in batches, paced to an offered rate of final states per second; for
// each the time from its completed_at (stamped by the leader) to the
// receiver's first receipt of its key.
func notifySection(out io.Writer, root *scope, bin string, s settings) {
	sc := root.child("notify")
	defer sc.close()
	total := 5000
	if s.quick {
		total = 1000
	}
	sink := &webhookSink{secret: []byte("bench-secret"), first: map[string]time.Time{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		sc.Fatalf("listen: %v", err)
	}
	srv := &http.Server{Handler: sink, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln) //nolint:errcheck // ends with ErrServerClosed
	defer srv.Close()
	c := harness.StartCluster(sc, harness.Options{Bin: bin, Replicas: 3, LogLevel: "warn",
		Args: []string{"--webhook-urls", "http://" + ln.Addr().String() + "/hook", "--webhook-secret", "bench-secret"}})
	leader := c.WaitLeader(harness.LeaderTimeout)
	// The webhook receives the events of tasks that end after it is
	// registered: a first task, killed, tells when it is.
	warm := submitBatch(sc, c, leader, 1)
	if err := harness.Eventually(60*time.Second, func() (bool, string) {
		if err := kill(c, leader, warm, false); err != nil {
			return false, err.Error()
		}
		sink.mu.Lock()
		defer sink.mu.Unlock()
		return sink.count > 0, "no delivery yet"
	}); err != nil {
		sc.Fatalf("no webhook delivery: %v", err)
	}
	var runs []notifyRun
	for _, rate := range []int{200, 1000} {
		runs = append(runs, notifyPaced(sc, c, sink, rate, total))
	}
	printNotify(out, total, runs)
}

func submitBatch(sc *scope, c *harness.Cluster, leader, n int) string {
	null := "NULL"
	req := api.SubmitRequest{Command: "true", ContainerName: &null, Array: "0-" + strconv.Itoa(n-1)}
	if n == 1 {
		req.Array = ""
	}
	ctx, cancel := context.WithTimeout(context.Background(), harness.WriteTimeout)
	defer cancel()
	a, resp, err := c.Submit(ctx, leader, req)
	if err != nil || a.Status != http.StatusAccepted {
		sc.Fatalf("submit %d tasks: %v %s", n, err, a)
	}
	if resp.BatchID != "" {
		return resp.BatchID
	}
	return resp.TaskIDs[0]
}

// kill kills a batch, or one task; a task already ended (409) is no
// error.
func kill(c *harness.Cluster, leader int, id string, batch bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), harness.WriteTimeout)
	defer cancel()
	path := "/api/kill/" + id
	if batch {
		path = "/api/batch/" + id + "/kill"
	}
	a, err := c.Call(ctx, leader, http.MethodPost, path, nil)
	if err != nil {
		return err
	}
	if a.Status >= 300 && a.Status != http.StatusConflict {
		return fmt.Errorf("%s: %s", path, a)
	}
	return nil
}

// notifyPaced submits total tasks in batches, then kills the batches at
// rate final states per second and waits for every delivery.
func notifyPaced(sc *scope, c *harness.Cluster, sink *webhookSink, rate, total int) notifyRun {
	run := notifyRun{offered: rate}
	leader := c.WaitLeader(harness.LeaderTimeout)
	var batches []string
	for n := 0; n < total; n += notifyBatch {
		batches = append(batches, submitBatch(sc, c, leader, notifyBatch))
	}
	every := time.Duration(float64(time.Second) * notifyBatch / float64(rate))
	start := time.Now()
	for i, b := range batches {
		if d := time.Until(start.Add(time.Duration(i) * every)); d > 0 {
			time.Sleep(d)
		}
		if err := kill(c, leader, b, true); err != nil && run.err == "" {
			run.err = err.Error()
		}
	}
	run.achieved = float64(len(batches)*notifyBatch) / time.Since(start).Seconds()
	// Every task of the run, with its completed_at.
	ended := map[string]time.Time{}
	if err := harness.Eventually(notifyDrain, func() (bool, string) {
		tasks, err := c.AllTasks(leader)
		if err != nil {
			return false, err.Error()
		}
		for _, t := range tasks {
			if t.Status == fsm.StatusKilled && t.CompletedAt != nil && slices.Contains(batches, strconv.FormatInt(t.BatchID, 10)) {
				ended[fsm.NotifyKey(t.TaskID, 1, t.Status)] = *t.CompletedAt
			}
		}
		sink.mu.Lock()
		defer sink.mu.Unlock()
		got := 0
		for k := range ended {
			if _, ok := sink.first[k]; ok {
				got++
			}
		}
		return len(ended) == total && got == total, fmt.Sprintf("%d of %d ended, %d delivered", len(ended), total, got)
	}); err != nil && run.err == "" {
		run.err = err.Error()
	}
	sink.mu.Lock()
	defer sink.mu.Unlock()
	run.finals = len(ended)
	var last time.Time
	for k, at := range ended {
		if got, ok := sink.first[k]; ok {
			run.delivered++
			run.lat = append(run.lat, got.Sub(at))
			if got.After(last) {
				last = got
			}
		}
	}
	slices.Sort(run.lat)
	run.requests, run.badSig = sink.count, sink.badSig
	if run.delivered > 0 {
		run.perSecond = float64(run.delivered) / last.Sub(start).Seconds()
	}
	return run
}

func printNotify(out io.Writer, total int, runs []notifyRun) {
	fmt.Fprintf(out, "Webhook delivery: 3 replicas, one cluster-wide webhook on loopback (HMAC verified), %d final states per run\n", total)
	fmt.Fprintf(out, "(pending tasks killed %d per batch, paced; latency = the task's completed_at to the receiver's first POST of its key)\n", notifyBatch)
	tw := table(out)
	fmt.Fprintln(tw, "offered/s\tachieved/s\tfinal\tdelivered\tPOSTs (cumulative)\tbad sig\tp50 ms\tp99 ms\tmax ms\tdelivered/s\t")
	for _, r := range runs {
		maxLat := time.Duration(0)
		if len(r.lat) > 0 {
			maxLat = r.lat[len(r.lat)-1]
		}
		fmt.Fprintf(tw, "%d\t%.0f\t%d\t%d\t%d\t%d\t%s\t%s\t%s\t%.0f\t\n", r.offered, r.achieved, r.finals, r.delivered, r.requests, r.badSig,
			ms(pctD(r.lat, 0.5)), ms(pctD(r.lat, 0.99)), ms(maxLat), r.perSecond)
	}
	tw.Flush() //nolint:errcheck // stdout
	for _, r := range runs {
		if r.err != "" {
			fmt.Fprintf(out, "  at %d/s: %s\n", r.offered, r.err)
		}
	}
}
