package cluster

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/fsm"
	"github.com/hakuriver/hakuriver-ha/gossip"
)

// These tests drive the leader through its dependencies alone: the
// proposer applies commands straight to a local fsm.Machine (no Raft), the
// clock is a variable, runners and voters are fakes.

// fakeClock is a settable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// localProposer applies commands to m in order, as a one-replica log would.
type localProposer struct {
	mu    sync.Mutex
	m     *fsm.Machine
	index uint64
}

func (p *localProposer) apply(_ context.Context, c fsm.Command) (any, error) {
	data, err := fsm.Encode(c)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.index++
	res := p.m.Apply(p.index, data)
	return res.Value, res.Err
}

// fakeRunners records /run and /kill calls; run, when set, answers /run.
type fakeRunners struct {
	runs, kills atomic.Int64
	run         func(ctx context.Context) error
}

func (f *fakeRunners) Run(ctx context.Context, _ string, _ api.RunRequest) error {
	f.runs.Add(1)
	if f.run != nil {
		return f.run(ctx)
	}
	return nil
}

func (f *fakeRunners) Kill(context.Context, string, api.TaskRef) error {
	f.kills.Add(1)
	return nil
}

// fakeVoters is a Raft membership in memory whose proofs fail while
// refuse is set.
type fakeVoters struct {
	mu      sync.Mutex
	known   map[string]string
	proofs  int
	refuse  bool
	reached chan struct{}
}

func (v *fakeVoters) servers() (map[string]string, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	out := map[string]string{}
	for k, a := range v.known {
		out[k] = a
	}
	return out, nil
}

func (v *fakeVoters) addVoter(id, addr string) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.known[id] = addr
	return nil
}

func (v *fakeVoters) prove(context.Context, gossip.Member) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.proofs++
	if v.refuse {
		return errors.New("wrong token")
	}
	return nil
}

type leaderHarness struct {
	l       *leader
	m       *fsm.Machine
	clock   *fakeClock
	runners *fakeRunners
	voters  *fakeVoters
	hosts   []gossip.Member
}

func newLeaderHarness(t *testing.T) *leaderHarness {
	t.Helper()
	x := &leaderHarness{
		m:       fsm.New(),
		clock:   &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)},
		runners: &fakeRunners{},
		voters:  &fakeVoters{known: map[string]string{"h1": "127.0.0.1:1"}},
	}
	p := &localProposer{m: x.m}
	x.l = newLeader(leaderDeps{
		log:              slog.New(slog.NewTextHandler(io.Discard, nil)),
		state:            x.m,
		apply:            p.apply,
		known:            func(fsm.CommandType) error { return nil },
		hosts:            func() []gossip.Member { return x.hosts },
		changed:          func() <-chan struct{} { return nil },
		voters:           x.voters,
		runners:          x.runners,
		heartbeatTimeout: 3 * time.Second,
		livenessTick:     10 * time.Millisecond,
		now:              x.clock.now,
		mono:             x.clock.now,
	})
	return x
}

// must applies c through the leader's proposer or fails the test.
func (x *leaderHarness) must(t *testing.T, c fsm.Command) {
	t.Helper()
	if _, err := x.l.apply(context.Background(), c); err != nil {
		t.Fatalf("apply %s: %v", c.Type(), err)
	}
}

// runningTask registers node n1 and puts task 7 running there.
func (x *leaderHarness) runningTask(t *testing.T) {
	t.Helper()
	now := x.clock.now()
	x.must(t, &fsm.RegisterNode{Node: &fsm.Node{Hostname: "n1", URL: "http://n1", TotalCores: 4, MemoryTotalBytes: 8 << 30}, At: now})
	x.must(t, &fsm.SubmitTasks{Tasks: []*fsm.Task{{TaskID: 7, TaskType: fsm.TaskCommand, BatchID: 7, Command: "true",
		RequiredCores: 1, Status: fsm.StatusPending, ContainerName: "NULL", SubmittedAt: now}}})
	x.must(t, &fsm.AssignTask{TaskID: 7, Node: "n1", At: now})
	x.must(t, &fsm.UpdateTask{TaskID: 7, Status: fsm.StatusRunning, StartedAt: &now, At: now})
}

func (x *leaderHarness) status(t *testing.T, id int64) fsm.Status {
	t.Helper()
	tk, ok := x.m.Task(id)
	if !ok {
		t.Fatalf("task %d not found", id)
	}
	return tk.Status
}

// TestLeaderLivenessTimeout: a runner silent for exactly the timeout stays
// online; one more instant of silence marks it offline and its running task
// lost. Silence counts from the leadership start for a runner this leader
// never heard from.
func TestLeaderLivenessTimeout(t *testing.T) {
	x := newLeaderHarness(t)
	x.runningTask(t)
	ctx := context.Background()
	node := func() fsm.NodeStatus { n, _ := x.m.Node("n1"); return n.Status }

	x.clock.advance(3 * time.Second) // silent since the leadership start: exactly the timeout
	x.l.checkLiveness(ctx, x.clock.now())
	if node() != fsm.NodeOnline {
		t.Fatalf("node %s after exactly the timeout, want online", node())
	}
	n, _ := x.m.Node("n1")
	if _, err := x.l.heartbeat(ctx, n, api.HeartbeatRequest{RunningTasks: []int64{7}}, x.clock.now()); err != nil {
		t.Fatal(err)
	}
	x.clock.advance(3 * time.Second)
	x.l.checkLiveness(ctx, x.clock.now())
	if node() != fsm.NodeOnline {
		t.Fatalf("node %s at the timeout after a heartbeat, want online", node())
	}
	x.clock.advance(time.Millisecond)
	x.l.checkLiveness(ctx, x.clock.now())
	if node() != fsm.NodeOffline {
		t.Fatalf("node %s past the timeout, want offline", node())
	}
	if s := x.status(t, 7); s != fsm.StatusLost {
		t.Fatalf("task on the offline node is %s, want lost", s)
	}
}

// TestLeaderHeartbeatReconciles: a running task the runner omits from one
// full heartbeat is kept, from two in a row it is lost; a task the FSM does
// not place there is in the kill list; a heartbeat brings an offline node
// back online.
func TestLeaderHeartbeatReconciles(t *testing.T) {
	x := newLeaderHarness(t)
	x.runningTask(t)
	ctx := context.Background()
	beat := func(running ...int64) []int64 {
		t.Helper()
		n, _ := x.m.Node("n1")
		kill, err := x.l.heartbeat(ctx, n, api.HeartbeatRequest{RunningTasks: running}, x.clock.now())
		if err != nil {
			t.Fatal(err)
		}
		return kill
	}
	if kill := beat(7, 99); len(kill) != 1 || kill[0] != 99 {
		t.Fatalf("kill list %v, want [99] (unknown to the FSM)", kill)
	}
	beat()
	if s := x.status(t, 7); s != fsm.StatusRunning {
		t.Fatalf("after one omission task is %s, want running", s)
	}
	beat()
	if s := x.status(t, 7); s != fsm.StatusLost {
		t.Fatalf("after two omissions task is %s, want lost", s)
	}
	x.must(t, &fsm.SetNodeStatus{Hostname: "n1", Status: fsm.NodeOffline, At: x.clock.now()})
	beat()
	if n, _ := x.m.Node("n1"); n.Status != fsm.NodeOnline {
		t.Fatalf("node %s after a heartbeat, want online", n.Status)
	}
}

// TestLeaderTimeLimit: a running task past its time limit is killed in the
// log and on its runner.
func TestLeaderTimeLimit(t *testing.T) {
	x := newLeaderHarness(t)
	now := x.clock.now()
	x.must(t, &fsm.RegisterNode{Node: &fsm.Node{Hostname: "n1", URL: "http://n1", TotalCores: 4}, At: now})
	x.must(t, &fsm.SubmitTasks{Tasks: []*fsm.Task{{TaskID: 8, TaskType: fsm.TaskCommand, BatchID: 8, Command: "sleep",
		RequiredCores: 1, Status: fsm.StatusPending, ContainerName: "NULL", SubmittedAt: now, TimeLimitSeconds: 5}}})
	x.must(t, &fsm.AssignTask{TaskID: 8, Node: "n1", At: now})
	x.must(t, &fsm.UpdateTask{TaskID: 8, Status: fsm.StatusRunning, StartedAt: &now, At: now})
	n, _ := x.m.Node("n1")
	x.clock.advance(4 * time.Second)
	if _, err := x.l.heartbeat(context.Background(), n, api.HeartbeatRequest{RunningTasks: []int64{8}}, x.clock.now()); err != nil {
		t.Fatal(err)
	}
	x.l.checkLiveness(context.Background(), x.clock.now())
	if s := x.status(t, 8); s != fsm.StatusRunning {
		t.Fatalf("task within its limit is %s", s)
	}
	x.clock.advance(time.Second)
	x.l.checkLiveness(context.Background(), x.clock.now())
	x.l.stop() // waits for the background /kill
	if s := x.status(t, 8); s != fsm.StatusKilled {
		t.Fatalf("task past its limit is %s, want killed", s)
	}
	if k := x.runners.kills.Load(); k != 1 {
		t.Fatalf("runner got %d kill calls, want 1", k)
	}
}

// TestLeaderVoterProofRetry: a host that fails the token proof is not added
// and not challenged again before proofRetry; once it proves the token it
// is added. A bootstrapped host the configuration lacks is left alone.
func TestLeaderVoterProofRetry(t *testing.T) {
	x := newLeaderHarness(t)
	x.hosts = []gossip.Member{
		{Name: "h1", Meta: gossip.Meta{Raft: "127.0.0.1:1"}},
		{Name: "h2", Meta: gossip.Meta{Raft: "127.0.0.1:2"}},
		{Name: "h3", Meta: gossip.Meta{Raft: "127.0.0.1:3", Bootstrapped: true}},
	}
	x.voters.refuse = true
	failed := map[string]time.Time{}
	ctx := context.Background()
	x.l.reconcileVoters(ctx, failed)
	x.clock.advance(proofRetry - time.Millisecond)
	x.l.reconcileVoters(ctx, failed)
	if x.voters.proofs != 1 {
		t.Fatalf("%d proofs before proofRetry, want 1 (h2 once)", x.voters.proofs)
	}
	if _, ok := x.voters.known["h2"]; ok {
		t.Fatal("a host that failed the proof was added")
	}
	x.voters.refuse = false
	x.clock.advance(time.Millisecond)
	x.l.reconcileVoters(ctx, failed)
	if x.voters.known["h2"] != "127.0.0.1:2" || x.voters.proofs != 2 {
		t.Fatalf("voters %v after %d proofs, want h2 added on the second", x.voters.known, x.voters.proofs)
	}
	if _, ok := x.voters.known["h3"]; ok || len(failed) != 0 {
		t.Fatalf("voters %v, failed %v: want h3 (bootstrapped) left alone and no failure kept", x.voters.known, failed)
	}
}

// TestLeaderStopWaitsForDispatch: the started leader places a pending task
// and sends /run; stop returns only after that /run call has returned.
func TestLeaderStopWaitsForDispatch(t *testing.T) {
	x := newLeaderHarness(t)
	var returned atomic.Bool
	sent := make(chan struct{}, 1)
	x.runners.run = func(ctx context.Context) error {
		select {
		case sent <- struct{}{}:
		default:
		}
		<-ctx.Done() // a runner loading an image: answers only when cancelled
		returned.Store(true)
		return ctx.Err()
	}
	now := x.clock.now()
	x.must(t, &fsm.RegisterNode{Node: &fsm.Node{Hostname: "n1", URL: "http://n1", TotalCores: 4, MemoryTotalBytes: 8 << 30}, At: now})
	x.must(t, &fsm.SubmitTasks{Tasks: []*fsm.Task{{TaskID: 9, TaskType: fsm.TaskCommand, BatchID: 9, Command: "true",
		RequiredCores: 1, Status: fsm.StatusPending, ContainerName: "NULL", SubmittedAt: now}}})
	x.l.start(context.Background())
	x.l.kickScheduler()
	select {
	case <-sent:
	case <-time.After(20 * time.Second):
		x.l.stop()
		t.Fatal("no /run sent")
	}
	if s := x.status(t, 9); s != fsm.StatusAssigning {
		t.Fatalf("task is %s, want assigning", s)
	}
	x.l.stop()
	if !returned.Load() {
		t.Fatal("stop returned while a /run call was still in flight")
	}
}

// TestRaftTiming checks that raft_multiplier scales every Raft timeout and
// that the default keeps a leader through stalls of half a second.
func TestRaftTiming(t *testing.T) {
	for _, tc := range []struct {
		m                          int
		heartbeat, election, lease time.Duration
	}{
		{1, 500 * time.Millisecond, 500 * time.Millisecond, 250 * time.Millisecond},
		{DefaultConfig().RaftMultiplier, time.Second, time.Second, 500 * time.Millisecond},
		{5, 2500 * time.Millisecond, 2500 * time.Millisecond, 1250 * time.Millisecond},
	} {
		hb, el, lease := raftTiming(tc.m)
		if hb != tc.heartbeat || el != tc.election || lease != tc.lease {
			t.Errorf("raftTiming(%d) = %v, %v, %v; want %v, %v, %v", tc.m, hb, el, lease, tc.heartbeat, tc.election, tc.lease)
		}
	}
	c := DefaultConfig()
	c.NodeID, c.DataDir, c.InsecureNoToken = "n", "/tmp/x", true
	for m, ok := range map[int]bool{0: false, 1: true, 10: true, 11: false} {
		c.RaftMultiplier = m
		if err := c.Validate(); (err == nil) != ok {
			t.Errorf("Validate with raft_multiplier %d: %v", m, err)
		}
	}
}
