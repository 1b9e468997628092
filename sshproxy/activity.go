package sshproxy

import (
	"sync"
	"time"
)

// Activity is what a Server saw of one VPS's tunnels: how many are open and
// when the last one opened or closed.
type Activity struct {
	Open int       `json:"open"`
	Last time.Time `json:"last"`
}

// activity tracks tunnels per VPS task, for idle auto-stop (the leader asks
// every replica; see cluster/vpsidle.go).
type activity struct {
	mu sync.Mutex
	m  map[int64]Activity
}

func newActivity() *activity { return &activity{m: map[int64]Activity{}} }

// begin counts a tunnel to VPS id opened now.
func (a *activity) begin(id int64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	v := a.m[id]
	v.Open++
	v.Last = time.Now()
	a.m[id] = v
}

// end counts a tunnel to VPS id closed now.
func (a *activity) end(id int64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	v := a.m[id]
	v.Open = max(v.Open-1, 0)
	v.Last = time.Now()
	a.m[id] = v
}

// Activity returns, per VPS task ID, the tunnels this Server has open to
// it and when one last opened or closed (since New).
func (s *Server) Activity() map[int64]Activity {
	s.act.mu.Lock()
	defer s.act.mu.Unlock()
	out := make(map[int64]Activity, len(s.act.m))
	for id, v := range s.act.m {
		out[id] = v
	}
	return out
}
