//go:build integration

package chaos

import (
	"errors"
	"fmt"
	"time"

	"github.com/hakuriver/hakuriver-ha/integration/harness"
)

// runnerMember is the Bridge member index of the runner (after the three
// replicas).
const runnerMember = 3

// others returns the replica indexes other than i.
func (e *Env) others(i int) []int {
	var out []int
	for j := range e.C.N() {
		if j != i {
			out = append(out, j)
		}
	}
	return out
}

// PartitionLeaderWithRunner is a 2|1 partition: the leader and the runner
// on the minority side, the two other replicas on the majority side.
// Clients (root namespace) still reach every member.
func PartitionLeaderWithRunner() Fault {
	return Fault{Name: "partition 2|1, leader+runner in minority",
		Inject: func(e *Env) ([]string, []string, error) {
			l, id := e.leaderID()
			return []string{id}, nil, e.Net.Partition([]int{l, runnerMember}, e.others(l))
		},
		Heal: func(e *Env) error { return e.Net.Heal() },
	}
}

// LongPartition is PartitionLeaderWithRunner held for 40 s at least:
// longer than gossip's GossipToTheDeadTime (30 s), after which memberlist
// alone never merges the two sides again (gossip.Pool reconnects them).
func LongPartition() Fault {
	f := PartitionLeaderWithRunner()
	f.Name = "partition 2|1 for 40 s+"
	f.MinHold = 40 * time.Second
	return f
}

// IsolateLeader cuts the leader from every other member (replicas and
// runner) while clients still reach it.
func IsolateLeader() Fault {
	return Fault{Name: "leader isolated, clients attached",
		Inject: func(e *Env) ([]string, []string, error) {
			l, id := e.leaderID()
			return []string{id}, nil, e.Net.Isolate(l)
		},
		Heal: func(e *Env) error { return e.Net.Heal() },
	}
}

// OneWayFromLeader drops every packet from the leader at the other
// replicas: the leader still hears them (gossip over UDP arrives), they no
// longer hear it.
func OneWayFromLeader() Fault {
	return Fault{Name: "one-way: followers stop hearing the leader",
		Inject: func(e *Env) ([]string, []string, error) {
			l, id := e.leaderID()
			var errs []error
			for _, j := range e.others(l) {
				errs = append(errs, e.Net.CutOneWay(l, j))
			}
			return []string{id}, nil, errors.Join(errs...)
		},
		Heal: func(e *Env) error { return e.Net.Heal() },
	}
}

// SplitThree cuts every replica from every other (1|1|1; the runner
// keeps its links): no side has a majority, so no write may be
// acknowledged anywhere until healing.
func SplitThree() Fault {
	return Fault{Name: "partition 1|1|1, no majority",
		Inject: func(e *Env) ([]string, []string, error) {
			var ids []string
			for i := range e.C.N() {
				ids = append(ids, e.C.Replica(i).ID)
			}
			return ids, nil, e.Net.Partition([]int{0}, []int{1}, []int{2})
		},
		Heal: func(e *Env) error { return e.Net.Heal() },
	}
}

// KillLeader SIGKILLs the leader and restarts it on heal.
func KillLeader() Fault {
	var killed int
	return Fault{Name: "SIGKILL of the leader",
		Inject: func(e *Env) ([]string, []string, error) {
			l, id := e.leaderID()
			killed = l
			e.C.Kill(l)
			return nil, []string{id}, nil
		},
		Heal: func(e *Env) error {
			e.C.StartReplica(killed)
			return harness.Eventually(harness.StartTimeout, func() (bool, string) {
				_, err := e.C.Status(killed)
				if err != nil {
					return false, err.Error()
				}
				return true, ""
			})
		},
	}
}

// Faults returns every fault kind, by a short name.
func Faults() map[string]Fault {
	return map[string]Fault{
		"partition":     PartitionLeaderWithRunner(),
		"isolate":       IsolateLeader(),
		"oneway":        OneWayFromLeader(),
		"kill":          KillLeader(),
		"diskfull":      DiskFullLeader(),
		"split3":        SplitThree(),
		"sigstop":       StopAny(),
		"restartall":    RestartAll(),
		"loss":          PacketLoss(),
		"runnercut":     CutRunner(),
		"gossipcut":     CutLeaderGossip(),
		"raftcut":       CutLeaderRaft(),
		"clockskew":     SkewClock(),
		"slowfsync":     SlowFsync(),
		"longpartition": LongPartition(),
		"latency":       Latency(),
	}
}

// FaultNames lists Faults' names in a fixed order.
func FaultNames() []string {
	return []string{"partition", "isolate", "oneway", "split3", "kill", "diskfull",
		"sigstop", "restartall", "loss", "runnercut", "gossipcut", "raftcut", "clockskew", "slowfsync", "longpartition", "latency"}
}

// CIFaultNames are the fault kinds of the short run in CI (TestChaos):
// those the issue requires there, the skewed clocks among them.
func CIFaultNames() []string {
	return []string{"partition", "isolate", "oneway", "split3", "kill", "diskfull", "clockskew", "latency"}
}

// FormatReports renders reports as a table: writes invoked during the
// fault, the share not acknowledged (all, and those sent to the majority
// side), the time until the majority acknowledged a write, and the time
// from healing until every replica did.
func FormatReports(reps []Report) string {
	s := fmt.Sprintf("%-45s %7s %7s %9s %9s %10s\n", "fault", "writes", "errors", "majority", "resume", "recovery")
	for _, r := range reps {
		resume := "-"
		if r.Resume >= 0 {
			resume = r.Resume.Round(10 * time.Millisecond).String()
		}
		majority := "-"
		if r.MajorityWrites > 0 {
			majority = fmt.Sprintf("%.0f%%", 100*r.MajorityErrorRate())
		}
		s += fmt.Sprintf("%-45s %7d %6.0f%% %9s %9s %10s\n", r.Fault, r.Writes, 100*r.ErrorRate(), majority, resume, r.Recovery.Round(10*time.Millisecond))
	}
	return s
}

// FormatByKind aggregates reports by fault: how many, the mean and worst
// time until the majority took writes, the mean error rates, and the mean
// and worst recovery after healing.
func FormatByKind(reps []Report) string {
	type agg struct {
		n, resumed          int
		resume, maxResume   time.Duration
		rec, maxRec         time.Duration
		errRate, majErrRate float64
	}
	var order []string
	by := map[string]*agg{}
	for _, r := range reps {
		a := by[r.Fault]
		if a == nil {
			a = &agg{}
			by[r.Fault] = a
			order = append(order, r.Fault)
		}
		a.n++
		if r.Resume >= 0 {
			a.resumed++
			a.resume += r.Resume
			a.maxResume = max(a.maxResume, r.Resume)
		}
		a.rec += r.Recovery
		a.maxRec = max(a.maxRec, r.Recovery)
		a.errRate += r.ErrorRate()
		a.majErrRate += r.MajorityErrorRate()
	}
	round := func(d time.Duration) string { return d.Round(10 * time.Millisecond).String() }
	s := fmt.Sprintf("%-45s %3s %9s %9s %7s %9s %9s %9s\n", "fault", "n", "resume", "worst", "errors", "majority", "recovery", "worst")
	for _, f := range order {
		a := by[f]
		resume, worst := "-", "-"
		if a.resumed > 0 {
			resume, worst = round(a.resume/time.Duration(a.resumed)), round(a.maxResume)
		}
		s += fmt.Sprintf("%-45s %3d %9s %9s %6.0f%% %8.0f%% %9s %9s\n", f, a.n, resume, worst,
			100*a.errRate/float64(a.n), 100*a.majErrRate/float64(a.n), round(a.rec/time.Duration(a.n)), round(a.maxRec))
	}
	return s
}
