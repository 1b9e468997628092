//go:build integration

package chaos

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
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

// SkewClock steps the wall clocks of two replicas by 1–5 minutes (drawn
// by the seed) in opposite directions while they run, the leader's one way
// and a follower's the other, then hands leadership to that follower: the
// times the leader puts into commands jump back by twice the offset from
// one entry to the next, as with a replica whose clock was off when it
// took over. Histories must stay monotone (the FSM orders by log index,
// not by time) and no runner may be judged silent. Heal steps both clocks
// back. It needs a hakuriver_clockskew build (SkewBinary).
func SkewClock() Fault {
	var dirs []string
	return Fault{Name: "replica clocks off by minutes, leader change",
		Inject: func(e *Env) ([]string, []string, error) {
			l, lid := e.leaderID()
			f := e.others(l)[e.rng.IntN(2)]
			off := time.Duration(1+e.rng.IntN(5)) * time.Minute
			if e.rng.IntN(2) == 0 {
				off = -off
			}
			dirs = nil
			for _, s := range []struct {
				i   int
				off time.Duration
			}{{l, off}, {f, -off}} {
				r := e.C.Replica(s.i)
				dirs = append(dirs, r.DataDir())
				if err := writeOffset(r.DataDir(), s.off); err != nil {
					return nil, nil, err
				}
				// Every API call reads the clock (token expiry): the
				// replica logs the new offset at its next request.
				if err := waitLog(r.LogPath(), "offset="+s.off.String()+" ", 20*time.Second); err != nil {
					return nil, nil, fmt.Errorf("clock of %s: %w (not a hakuriver_clockskew build?)", r.ID, err)
				}
			}
			fid := e.C.Replica(f).ID
			e.TB.Logf("clock of leader %s off by %s, of %s by %s; leadership to %s", lid, off, fid, -off, fid)
			return nil, nil, e.transfer(f)
		},
		Heal: func(e *Env) error {
			var errs []error
			for _, dir := range dirs {
				if err := os.Remove(filepath.Join(dir, ClockOffsetFile)); err != nil {
					errs = append(errs, fmt.Errorf("unskew %s: %w", dir, err))
				}
			}
			return errors.Join(errs...)
		},
	}
}

// transfer hands leadership to replica to and waits until it leads.
func (e *Env) transfer(to int) error {
	id := e.C.Replica(to).ID
	return harness.Eventually(harness.LeaderTimeout, func() (bool, string) {
		if l := e.C.WaitLeader(harness.LeaderTimeout); l == to {
			return true, ""
		}
		ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
		defer cancel()
		a, err := e.C.Call(ctx, to, http.MethodPost, "/api/cluster/leadership-transfer", api.TransferRequest{ID: id})
		if err != nil {
			return false, err.Error()
		}
		return false, "transfer to " + id + ": " + a.String()
	})
}

// waitLog waits until the file at path holds substr.
func waitLog(path, substr string, timeout time.Duration) error {
	return harness.Eventually(timeout, func() (bool, string) {
		b, err := os.ReadFile(path)
		if err != nil {
			return false, err.Error()
		}
		if strings.Contains(string(b), substr) {
			return true, ""
		}
		return false, fmt.Sprintf("no %q in %s", substr, path)
	})
}

// SkewBinary returns $HAKURIVER_SKEW_BIN when set (make builds it as
// bin/hakuriver-clockskew), otherwise builds the hakuriver binary with the
// hakuriver_clockskew tag into dir: the product with a wall clock the
// chaos tests can shift (cluster/clock), for every replica of an Env.
func SkewBinary(dir string) (string, error) {
	if p := os.Getenv("HAKURIVER_SKEW_BIN"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("HAKURIVER_SKEW_BIN: %w", err)
		}
		return p, nil
	}
	return harness.BuildWithTags(dir, "hakuriver_clockskew")
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
