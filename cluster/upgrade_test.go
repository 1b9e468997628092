package cluster

import (
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/fsm"
)

// TestUnknownEntryHaltsEveryReplica forces, past the leader's guard, an
// entry of a command type no replica knows into the log: every replica
// stops at it (OnHalt with the entry's index), applies nothing more, takes
// no snapshot, and writes answer 503 instead of pretending to succeed.
func TestUnknownEntryHaltsEveryReplica(t *testing.T) {
	var mu sync.Mutex
	halts := map[string]error{}
	hosts := startClusterWith(t, 3, func(i int, cfg *Config) {
		id := cfg.NodeID
		cfg.OnHalt = func(err error) {
			mu.Lock()
			halts[id] = err
			mu.Unlock()
		}
	})
	leader := leaderOf(t, hosts)
	submitVia(t, leader, `{"command":"true"}`, "")
	waitTaskCount(t, hosts, 1)

	unknown := fsm.MaxKnownCommand + 1
	if err := leader.commandKnown(unknown); !errors.Is(err, ErrUpgradePending) {
		t.Fatalf("the guard lets command %d through: %v", unknown, err)
	}
	f := leader.raft.r.Apply([]byte{byte(unknown), '{', '}'}, 5*time.Second)
	if err := f.Error(); err != nil {
		t.Fatalf("force the entry: %v", err)
	}
	index := f.Index()
	waitFor(t, 10*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(halts) == len(hosts)
	})
	for _, h := range hosts {
		var ee *fsm.EntryError
		if err := halts[h.NodeID()]; !errors.As(err, &ee) || ee.Index != index || ee.Type != unknown {
			t.Errorf("%s halted with %v, want the entry at %d", h.NodeID(), err, index)
		}
		if got := h.Machine().AppliedIndex(); got >= index {
			t.Errorf("%s applied index %d, past the halting entry %d", h.NodeID(), got, index)
		}
		if err := h.raft.r.Snapshot().Error(); err == nil {
			t.Errorf("%s took a snapshot of its halted state", h.NodeID())
		}
	}
	resp, body := do(t, "POST", leader.APIURL()+"/api/submit", `{"command":"true"}`)
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("submit after the halt: %d %s", resp.StatusCode, body)
	}
	if n := leader.Machine().Len(); n != 1 {
		t.Fatalf("%d tasks after the halt, want 1", n)
	}
}
