//go:build integration

package chaos

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/hakuriver/hakuriver-ha/integration/harness"
)

// port returns the port of a host:port address.
func port(addr string) (int, error) {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return 0, fmt.Errorf("address %q: %w", addr, err)
	}
	return strconv.Atoi(p)
}

// waitUp waits until replica i answers its API.
func waitUp(e *Env, i int) error {
	return harness.Eventually(harness.StartTimeout, func() (bool, string) {
		if _, err := e.C.Status(i); err != nil {
			return false, err.Error()
		}
		return true, ""
	})
}

// StopAny freezes one member drawn by the seed (one of the replicas, the
// leader among them, or the runner) with SIGSTOP and resumes it with
// SIGCONT on heal. A frozen replica answers nothing: it is out of service,
// not a minority (its clients time out). A frozen runner stops
// heartbeating while its tasks' supervisors keep running.
func StopAny() Fault {
	var member int
	return Fault{Name: "SIGSTOP of a random member",
		Inject: func(e *Env) ([]string, []string, error) {
			member = e.rng.IntN(e.C.N() + 1)
			if member == e.C.N() {
				e.TB.Logf("SIGSTOP of runner %s", RunnerName)
				e.C.StopRunner(RunnerName)
				return nil, nil, nil
			}
			id := e.C.Replica(member).ID
			e.TB.Logf("SIGSTOP of replica %s (leader: %v)", id, member == e.C.WaitLeader(harness.LeaderTimeout))
			e.C.Stop(member)
			return nil, []string{id}, nil
		},
		Heal: func(e *Env) error {
			if member == e.C.N() {
				e.C.ContRunner(RunnerName)
				return nil
			}
			e.C.Cont(member)
			return nil
		},
	}
}

// RestartAll SIGKILLs every replica at once and starts them all again on
// the same data dirs at once: everything acknowledged must survive
// (nothing is only in memory). Clients keep calling during the restart;
// the time until writes resume is the cluster's cold-start time.
func RestartAll() Fault {
	return Fault{Name: "SIGKILL+restart of all replicas",
		Inject: func(e *Env) ([]string, []string, error) {
			for i := range e.C.N() {
				e.C.Kill(i)
			}
			for i := range e.C.N() {
				e.C.StartReplica(i)
			}
			return nil, nil, nil
		},
		Heal: func(e *Env) error {
			var errs []error
			for i := range e.C.N() {
				errs = append(errs, waitUp(e, i))
			}
			return errors.Join(errs...)
		},
	}
}

// PacketLoss drops 5–30 % (drawn by the seed) of the packets on every
// link between members, both ways (iptables statistic match; see
// Bridge.Lossy for why not netem).
func PacketLoss() Fault {
	return Fault{Name: "packet loss on every member link",
		Inject: func(e *Env) ([]string, []string, error) {
			p := []float64{0.05, 0.1, 0.2, 0.3}[e.rng.IntN(4)]
			e.TB.Logf("packet loss %.0f%% on every link", 100*p)
			return nil, nil, e.Net.Lossy(p)
		},
		Heal: func(e *Env) error { return e.Net.Heal() },
	}
}

// CutRunner cuts the runner from every replica while its tasks keep
// running (clients still reach the replicas): the leader declares it
// offline after the heartbeat timeout and its unfinished tasks lost; when
// it comes back it registers again and its reports reconcile. No task may
// run twice; a lost one is a reported loss.
func CutRunner() Fault {
	return Fault{Name: "runner cut from the hosts",
		Inject: func(e *Env) ([]string, []string, error) {
			return nil, nil, e.Net.Partition([]int{runnerMember}, []int{0, 1, 2})
		},
		Heal: func(e *Env) error { return e.Net.Heal() },
	}
}

// cutLeaderPort cuts the leader from the other replicas on one port
// (gossip or Raft) only, both ways; the rest of their traffic flows.
func cutLeaderPort(e *Env, addr func(*harness.Replica) string) ([]string, []string, error) {
	l, id := e.leaderID()
	p, err := port(addr(e.C.Replica(l)))
	if err != nil {
		return nil, nil, err
	}
	var errs []error
	for _, j := range e.others(l) {
		errs = append(errs, e.Net.CutPort(l, j, p))
	}
	e.TB.Logf("cut %s from the other replicas on port %d", id, p)
	return nil, nil, errors.Join(errs...)
}

// CutLeaderGossip cuts the leader from the other replicas' gossip (TCP
// and UDP on the gossip port) while Raft and the API still flow: the
// others' gossip says the leader failed, Raft says it leads.
func CutLeaderGossip() Fault {
	return Fault{Name: "leader cut from gossip, not Raft",
		Inject: func(e *Env) ([]string, []string, error) {
			return cutLeaderPort(e, func(r *harness.Replica) string { return r.Gossip })
		},
		Heal: func(e *Env) error { return e.Net.Heal() },
	}
}

// CutLeaderRaft cuts the leader from the other replicas' Raft port while
// gossip and the API still flow: the others elect a new leader, the old
// one steps down and forwards to it. A write through the old leader may
// be acknowledged legitimately (forwarded), so it is no minority.
func CutLeaderRaft() Fault {
	return Fault{Name: "leader cut from Raft, not gossip",
		Inject: func(e *Env) ([]string, []string, error) {
			return cutLeaderPort(e, func(r *harness.Replica) string { return r.Raft })
		},
		Heal: func(e *Env) error { return e.Net.Heal() },
	}
}

// ClockOffsetFile is the file in a replica's data dir whose content (a Go
// duration) a binary built with the hakuriver_clockskew tag adds to its
// wall clock (cluster/clock); a production build has no such hook.
const ClockOffsetFile = "clock-offset"

// SkewClock steps the wall clock of one replica (the leader or a
// follower, drawn by the seed) by 1–5 minutes, forwards or backwards,
// while it runs, and steps it back on heal: like an NTP step, or a machine
// whose clock was off when it joined. Histories must stay monotone (the
// FSM orders by log index, not by time).
func SkewClock() Fault {
	var dir string
	return Fault{Name: "replica clock off by minutes",
		Inject: func(e *Env) ([]string, []string, error) {
			l, _ := e.leaderID()
			target := l
			if e.rng.IntN(2) == 0 {
				target = e.others(l)[e.rng.IntN(2)]
			}
			off := time.Duration(1+e.rng.IntN(5)) * time.Minute
			if e.rng.IntN(2) == 0 {
				off = -off
			}
			dir = e.C.Replica(target).DataDir()
			e.TB.Logf("clock of %s (leader: %v) off by %s", e.C.Replica(target).ID, target == l, off)
			return nil, nil, writeOffset(dir, off)
		},
		Heal: func(e *Env) error {
			if err := os.Remove(filepath.Join(dir, ClockOffsetFile)); err != nil {
				return fmt.Errorf("unskew %s: %w", dir, err)
			}
			return nil
		},
	}
}

// writeOffset writes off into dir's offset file atomically (a rename), so
// that the replica never reads half of it.
func writeOffset(dir string, off time.Duration) error {
	tmp := filepath.Join(dir, ClockOffsetFile+".tmp")
	if err := os.WriteFile(tmp, []byte(off.String()+"\n"), 0o600); err != nil {
		return fmt.Errorf("skew %s: %w", dir, err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, ClockOffsetFile)); err != nil {
		return fmt.Errorf("skew %s: %w", dir, err)
	}
	return nil
}
