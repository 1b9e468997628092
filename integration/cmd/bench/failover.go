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
	"github.com/hakuriver/hakuriver-ha/integration/harness"
)

// failoverBudget bounds one trial's wait for a successful write.
const failoverBudget = 60 * time.Second

// trial is one failover measurement.
type trial struct {
	killed, via string
	toLeader    time.Duration // SIGKILL → a survivor reports itself leader
	toWrite     time.Duration // SIGKILL → first 202 through a survivor
	attempts    int
}

// failover kills the leader s.trials times on one cluster and measures the
// time to a new leader and to the first acknowledged write through a
// survivor; the killed replica is restarted and caught up between trials.
func failover(parent *scope, bin string, s settings) []trial {
	sc := parent.child("failover")
	defer sc.close()
	c := startBenchCluster(sc, bin)
	var out []trial
	for n := range s.trials {
		leader := c.WaitLeader(harness.LeaderTimeout)
		via := c.Followers()[n%2]
		other := 3 - leader - via // the third replica of 0, 1, 2
		c.SubmitOK(via, api.SubmitRequest{Command: "true", Arguments: []string{"before", fmt.Sprint(n)}})
		c.WaitSameApplied(30*time.Second, 0, 1, 2)

		tr := trial{killed: c.Replica(leader).ID, via: c.Replica(via).ID}
		stopWatch := make(chan struct{})
		var wg sync.WaitGroup
		var electedAt time.Time
		killedAt := time.Now()
		wg.Add(1)
		go func() {
			defer wg.Done()
			electedAt = watchElection(c, []int{via, other}, c.Replica(leader).ID, stopWatch)
		}()
		c.Kill(leader)
		var lastErr string
		for tr.attempts < 10000 && time.Since(killedAt) < failoverBudget {
			tr.attempts++
			ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
			a, _, err := c.Submit(ctx, via, api.SubmitRequest{Command: "true", Arguments: []string{"after", fmt.Sprint(n)}})
			cancel()
			if err == nil && a.Status == http.StatusAccepted {
				tr.toWrite = time.Since(killedAt)
				break
			}
			if err != nil {
				lastErr = err.Error()
			} else {
				lastErr = a.String()
			}
			time.Sleep(10 * time.Millisecond)
		}
		close(stopWatch)
		wg.Wait()
		if tr.toWrite == 0 {
			sc.Fatalf("failover trial %d: no write through %s within %s after killing %s: %s", n, tr.via, failoverBudget, tr.killed, lastErr)
		}
		if !electedAt.IsZero() {
			tr.toLeader = electedAt.Sub(killedAt)
		}
		out = append(out, tr)

		c.Restart(leader)
		c.WaitLeader(harness.LeaderTimeout)
		c.WaitSameApplied(30*time.Second, 0, 1, 2)
	}
	return out
}

// watchElection polls the survivors every 10 ms until one reports itself
// leader (and is not old), and returns when it saw that; zero when stop
// closed first or failoverBudget passed.
func watchElection(c *harness.Cluster, survivors []int, old string, stop <-chan struct{}) time.Time {
	deadline := time.Now().Add(failoverBudget)
	for time.Now().Before(deadline) {
		for _, i := range survivors {
			if st, err := c.Status(i); err == nil && st.NodeID != old && st.LeaderID == st.NodeID && strings.EqualFold(st.State, "leader") {
				return time.Now()
			}
		}
		select {
		case <-stop:
			return time.Time{}
		case <-time.After(10 * time.Millisecond):
		}
	}
	return time.Time{}
}

func printFailover(out io.Writer, s settings, trials []trial) {
	fmt.Fprintf(out, "Failover: SIGKILL of the leader, %d trials (killed replica restarted and caught up in between)\n", len(trials))
	tw := table(out)
	fmt.Fprintln(tw, "trial\tkilled\twrites via\tnew leader ms\tfirst 202 ms\tattempts\t")
	var lead, write []time.Duration
	for n, t := range trials {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%d\t\n", n+1, t.killed, t.via, ms(t.toLeader), ms(t.toWrite), t.attempts)
		lead = append(lead, t.toLeader)
		write = append(write, t.toWrite)
	}
	for _, row := range []struct {
		name string
		f    func([]time.Duration) time.Duration
	}{{"min", minD}, {"median", median}, {"max", maxD}} {
		fmt.Fprintf(tw, "%s\t\t\t%s\t%s\t\t\n", row.name, ms(row.f(lead)), ms(row.f(write)))
	}
	tw.Flush() //nolint:errcheck // stdout
}

func sorted(ds []time.Duration) []time.Duration {
	out := slices.Clone(ds)
	slices.Sort(out)
	return out
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := sorted(ds)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func minD(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	return slices.Min(ds)
}

func maxD(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	return slices.Max(ds)
}
