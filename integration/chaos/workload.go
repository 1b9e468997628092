//go:build integration

package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
)

// Client timeouts: a write or read that takes longer is recorded as info.
const (
	writeTimeout = 5 * time.Second
	readTimeout  = 3 * time.Second
)

// Target is one member a client may talk to.
type Target struct {
	ID  string // node ID
	API string // base URL
}

// Workload is a set of clients submitting short native tasks, reading
// their status with consistent reads and killing some of them, recording
// every operation into a History.
type Workload struct {
	Hist      *History
	Token     string // the admin API token
	TokenFile string // the file tasks append their token to
	Targets   []Target
	// Runner is the node tasks target.
	Runner string

	hc     *http.Client
	mu     sync.Mutex
	wg     sync.WaitGroup
	cancel context.CancelFunc
	next   int
}

// NewWorkload returns a workload whose clients record into h.
func NewWorkload(h *History, token, tokenFile, runner string, targets []Target) *Workload {
	return &Workload{Hist: h, Token: token, TokenFile: tokenFile, Runner: runner, Targets: targets,
		hc: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16, IdleConnTimeout: 10 * time.Second}}}
}

// Start starts n clients until Stop; client k talks only to
// Targets[pin(k)] when pin returns >= 0, else to a random member per
// operation. Every client stops after maxOps operations at most.
func (w *Workload) Start(ctx context.Context, n int, seed uint64, maxOps int, pin func(k int) int) {
	ctx, cancel := context.WithCancel(ctx)
	w.mu.Lock()
	prev := w.cancel
	w.cancel = func() {
		if prev != nil {
			prev()
		}
		cancel()
	}
	base := w.next
	w.next += n
	w.mu.Unlock()
	for k := range n {
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			w.client(ctx, base+k, rand.New(rand.NewPCG(seed, uint64(base+k))), maxOps, pin(k))
		}()
	}
}

// Stop stops every client and waits for their last operations.
func (w *Workload) Stop() {
	w.mu.Lock()
	if w.cancel != nil {
		w.cancel()
	}
	w.cancel = nil
	w.mu.Unlock()
	w.wg.Wait()
	w.hc.CloseIdleConnections()
}

// client runs one client's loop: submit, then read the task's status a
// few times, sometimes killing it.
func (w *Workload) client(ctx context.Context, k int, rng *rand.Rand, maxOps, pin int) {
	pick := func() Target {
		if pin >= 0 {
			return w.Targets[pin]
		}
		return w.Targets[rng.IntN(len(w.Targets))]
	}
	ops := 0
	for ops < maxOps && ctx.Err() == nil {
		sub := w.submit(ctx, k, pick(), rng)
		ops++
		if sub.Result != Ok {
			sleep(ctx, 100*time.Millisecond)
			continue
		}
		for r := 0; r < 3 && ops < maxOps && ctx.Err() == nil; r++ {
			if r == 1 && rng.IntN(5) == 0 {
				ops++
				if w.kill(ctx, k, pick(), sub.TaskID).Result != Ok {
					break
				}
			}
			sleep(ctx, time.Duration(50+rng.IntN(150))*time.Millisecond)
			read := w.read(ctx, k, pick(), sub.TaskID)
			ops++
			// A failed operation ends the task's turn: the client goes on
			// writing, so that a client pinned to a cut-off member keeps
			// trying writes there.
			if read.Result != Ok || isFinal(read.Status) {
				break
			}
		}
	}
}

func isFinal(s string) bool {
	switch s {
	case "completed", "failed", "killed", "killed_oom", "lost":
		return true
	}
	return false
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// submit posts one native task that appends its token to the token file.
func (w *Workload) submit(ctx context.Context, k int, t Target, rng *rand.Rand) Op {
	rid := api.NewRequestID()
	tok := fmt.Sprintf("c%d-%s", k, rid)
	cores := 1
	sleepFor := []string{"0.1", "0.3", "1"}[rng.IntN(3)]
	req := api.SubmitRequest{
		Command:       "sh",
		Arguments:     []string{"-c", fmt.Sprintf("echo %s >> %s; sleep %s", tok, w.TokenFile, sleepFor)},
		RequiredCores: &cores,
		Targets:       []string{w.Runner},
	}
	op := Op{Client: k, Kind: OpSubmit, Member: t.ID, RequestID: rid, Token: tok}
	a := w.do(ctx, &op, t, http.MethodPost, "/api/submit", rid, req, writeTimeout)
	if op.Result == Ok {
		var resp api.SubmitResponse
		if err := json.Unmarshal(a, &resp); err != nil || len(resp.TaskIDs) != 1 {
			op.Result, op.Err = Info, fmt.Sprintf("undecodable 202: %v %s", err, a)
		} else {
			op.TaskID = resp.TaskIDs[0]
		}
	}
	w.Hist.Add(op)
	return op
}

// kill posts a kill of task id.
func (w *Workload) kill(ctx context.Context, k int, t Target, id string) Op {
	rid := api.NewRequestID()
	op := Op{Client: k, Kind: OpKill, Member: t.ID, RequestID: rid, TaskID: id}
	w.do(ctx, &op, t, http.MethodPost, "/api/kill/"+id, rid, nil, writeTimeout)
	w.Hist.Add(op)
	return op
}

// read reads task id's status with a consistent read.
func (w *Workload) read(ctx context.Context, k int, t Target, id string) Op {
	op := Op{Client: k, Kind: OpRead, Member: t.ID, TaskID: id}
	body := w.do(ctx, &op, t, http.MethodGet, "/api/status/"+id+"?consistent=1", "", nil, readTimeout)
	if op.Result == Ok && !op.NotFound {
		var st struct {
			Status string `json:"status"`
		}
		if err := json.Unmarshal(body, &st); err != nil || st.Status == "" {
			op.Result, op.Err = Fail, fmt.Sprintf("undecodable status: %v %.200s", err, body)
		} else {
			op.Status = st.Status
		}
	}
	w.Hist.Add(op)
	return op
}

// do sends one request and classifies its answer into op: 2xx ok; for a
// write 400/403/404/409 fail (refused before any effect) and anything else
// (timeout, reset, 5xx) info; for a read 404 is an ok "not found" and any
// other failure is fail (a read changes nothing).
func (w *Workload) do(ctx context.Context, op *Op, t Target, method, path, rid string, body any, timeout time.Duration) []byte {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			panic(err) // a SubmitRequest always encodes
		}
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	op.Invoke = time.Now()
	defer func() { op.Complete = time.Now() }()
	req, err := http.NewRequestWithContext(ctx, method, t.API+path, rd)
	if err != nil {
		op.Result, op.Err = Fail, err.Error()
		return nil
	}
	req.Header.Set("Authorization", "Bearer "+w.Token)
	req.Header.Set("Content-Type", "application/json")
	if rid != "" {
		req.Header.Set(api.RequestIDHeader, rid)
	}
	resp, err := w.hc.Do(req)
	if err != nil {
		op.Result, op.Err = Info, err.Error()
		if !op.Write() {
			op.Result = Fail
		}
		return nil
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		op.Result, op.Err = Info, fmt.Sprintf("read answer: %v", err)
		if !op.Write() {
			op.Result = Fail
		}
		return nil
	}
	if v := resp.Header.Get("X-Hakuriver-Applied-Index"); v != "" {
		op.Index, _ = strconv.ParseUint(v, 10, 64)
	}
	switch {
	case resp.StatusCode/100 == 2:
		op.Result = Ok
	case !op.Write() && resp.StatusCode == http.StatusNotFound:
		op.Result, op.NotFound = Ok, true
	case !op.Write():
		op.Result, op.Err = Fail, fmt.Sprintf("%d %.200s", resp.StatusCode, strings.TrimSpace(string(b)))
	case resp.StatusCode == http.StatusBadRequest || resp.StatusCode == http.StatusForbidden ||
		resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusConflict:
		op.Result, op.Err = Fail, fmt.Sprintf("%d %.200s", resp.StatusCode, strings.TrimSpace(string(b)))
	default:
		op.Result, op.Err = Info, fmt.Sprintf("%d %.200s", resp.StatusCode, strings.TrimSpace(string(b)))
	}
	return b
}
