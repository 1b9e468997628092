package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/fsm"
)

// healthOptions holds the flags of "cluster wait-healthy".
type healthOptions struct {
	timeout      time.Duration
	pollInterval time.Duration
	maxLag       uint64
	runners      []string
}

// healthReport is what "cluster wait-healthy" prints: the last look at the
// replicas and the runners asked for.
type healthReport struct {
	Healthy bool `json:"healthy"`
	// Reason says what is not healthy yet ("" when healthy).
	Reason   string              `json:"reason,omitempty"`
	Waited   float64             `json:"waited_seconds"`
	Leader   string              `json:"leader,omitempty"`
	Term     uint64              `json:"term,omitempty"`
	Replicas []api.ReplicaStatus `json:"replicas"`
	Runners  []runnerHealth      `json:"runners,omitempty"`
}

// runnerHealth is one runner of healthReport.
type runnerHealth struct {
	Name   string `json:"name"`
	Status string `json:"status"`
	// LastHeartbeat is the leader's last heartbeat from it.
	LastHeartbeat string `json:"last_heartbeat,omitempty"`
	// Fresh says a heartbeat arrived while the command waited.
	Fresh bool `json:"fresh"`
}

func newClusterWaitHealthyCmd(g *clientFlags) *cobra.Command {
	o := &healthOptions{}
	cmd := &cobra.Command{
		Use:   "wait-healthy [--runner NAME]...",
		Short: "Wait until every replica is up and caught up (a rolling upgrade's check)",
		Long: `Wait until the replica group is healthy, as a rolling upgrade needs it to be
before the next replica or runner is restarted:

  - one leader, and every replica of the Raft configuration answers, in the
    leader's term;
  - every replica's applied index is within --max-lag entries of the highest
    commit index, and has reached the highest commit index seen at the first
    look (a restarted replica has caught up, even on a quiet cluster);
  - with --runner NAME (repeatable): that runner is online and the leader got
    a heartbeat from it while this command waited (a restarted runner is back,
    not merely not yet timed out).

It checks every --poll-interval, says on stderr what it waits for when that
changes, and prints the replicas (and runners) once healthy. It fails when
--timeout passes first, naming what is not healthy. --timeout bounds the
whole wait here (each API call keeps the default limit of ` + defaultTimeout.String() + `).`,
		Example: `  hakuriver cluster wait-healthy
  hakuriver cluster wait-healthy --timeout 5m --max-lag 0
  hakuriver cluster wait-healthy --runner gpu1 -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runWaitHealthy(cmd, g, o)
		},
	}
	f := cmd.Flags()
	f.DurationVar(&o.timeout, "timeout", 2*time.Minute, "give up after this long")
	f.DurationVar(&o.pollInterval, "poll-interval", 500*time.Millisecond, "time between two looks")
	f.Uint64Var(&o.maxLag, "max-lag", 50, "most Raft entries a replica's applied index may trail the commit index")
	f.StringArrayVar(&o.runners, "runner", nil, "runner that must be online with a fresh heartbeat (repeatable)")
	return cmd
}

func runWaitHealthy(cmd *cobra.Command, g *clientFlags, o *healthOptions) error {
	format, err := g.format()
	if err != nil {
		return err
	}
	if o.timeout <= 0 {
		return fmt.Errorf("invalid --timeout %s: must be positive", o.timeout)
	}
	if o.pollInterval <= 0 {
		return fmt.Errorf("invalid --poll-interval %s: must be positive", o.pollInterval)
	}
	for _, r := range o.runners {
		if strings.TrimSpace(r) == "" {
			return errors.New("invalid --runner: empty name")
		}
	}
	c, err := g.client()
	if err != nil {
		return err
	}
	defer c.Close()
	start := time.Now()
	ctx, cancel := context.WithTimeout(cmd.Context(), o.timeout)
	defer cancel()
	// The heartbeat each runner had at the first look: a later one proves
	// the runner process that sends it runs now.
	var first map[string]string
	var floor uint64 // the highest commit index at the first look
	lastReason := ""
	for {
		rep, err := lookHealth(ctx, c, g.timeout, o, first, &floor)
		if err == nil && first == nil {
			first = heartbeats(rep.Runners)
		}
		rep.Waited = time.Since(start).Seconds()
		if err == nil && rep.Healthy {
			if format == outputJSON {
				return printJSON(cmd.OutOrStdout(), rep)
			}
			return printClusterHealth(cmd.OutOrStdout(), rep)
		}
		reason := rep.Reason
		if err != nil {
			reason = err.Error()
		}
		if reason != lastReason {
			fmt.Fprintf(cmd.ErrOrStderr(), "waiting (%s): %s\n", time.Since(start).Round(100*time.Millisecond), reason)
			lastReason = reason
		}
		t := time.NewTimer(o.pollInterval)
		select {
		case <-ctx.Done():
			t.Stop()
			if cmd.Context().Err() != nil {
				return cmd.Context().Err()
			}
			if format == outputJSON && err == nil {
				_ = printJSON(cmd.OutOrStdout(), rep) //nolint:errcheck // the error below matters more
			}
			return fmt.Errorf("cluster not healthy after %s: %s", o.timeout, reason)
		case <-t.C:
		}
	}
}

// heartbeats maps each runner to the heartbeat seen.
func heartbeats(rs []runnerHealth) map[string]string {
	out := make(map[string]string, len(rs))
	for _, r := range rs {
		out[r.Name] = r.LastHeartbeat
	}
	return out
}

// lookHealth asks the cluster once and judges the answer. first holds the
// runners' heartbeats at the first look (nil during it), which sets floor
// to the highest commit index then.
func lookHealth(ctx context.Context, c *api.Client, callTimeout time.Duration, o *healthOptions, first map[string]string, floor *uint64) (healthReport, error) {
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	reps, err := c.Replicas(cctx)
	if err != nil {
		return healthReport{}, err
	}
	if first == nil {
		for _, r := range reps {
			*floor = max(*floor, r.CommitIndex)
		}
	}
	var nodes []api.NodeView
	if len(o.runners) > 0 {
		if nodes, err = c.Nodes(cctx); err != nil {
			return healthReport{}, err
		}
	}
	return judgeHealth(reps, nodes, o.runners, o.maxLag, *floor, first), nil
}

// judgeHealth decides whether the replicas and the runners named are
// healthy (see the command's help) and says what is not; floor is the
// least applied index every replica must have reached.
func judgeHealth(reps []api.ReplicaStatus, nodes []api.NodeView, runners []string, maxLag, floor uint64, first map[string]string) healthReport {
	rep := healthReport{Replicas: reps}
	var problems []string
	for _, r := range reps {
		if r.State == "leader" {
			if rep.Leader != "" {
				problems = append(problems, fmt.Sprintf("two leaders (%s, %s)", rep.Leader, r.ID))
			}
			rep.Leader, rep.Term = r.ID, r.Term
		}
	}
	if rep.Leader == "" {
		problems = append(problems, "no leader")
	}
	if len(reps) == 0 {
		problems = append(problems, "no replica in the raft configuration")
	}
	for _, r := range reps {
		switch {
		case r.Error != "" || r.State == "unreachable":
			problems = append(problems, fmt.Sprintf("replica %s unreachable (%s)", r.ID, orDash(r.Error)))
		case rep.Leader != "" && r.Term != rep.Term:
			problems = append(problems, fmt.Sprintf("replica %s in term %d, leader %s in term %d", r.ID, r.Term, rep.Leader, rep.Term))
		case r.Lag > maxLag:
			problems = append(problems, fmt.Sprintf("replica %s %d entries behind (at most %d)", r.ID, r.Lag, maxLag))
		case r.AppliedIndex < floor:
			problems = append(problems, fmt.Sprintf("replica %s applied up to %d, short of %d (the commit index when this wait began)", r.ID, r.AppliedIndex, floor))
		}
	}
	for _, name := range runners {
		i := slices.IndexFunc(nodes, func(n api.NodeView) bool { return n.Hostname == name })
		if i < 0 {
			rep.Runners = append(rep.Runners, runnerHealth{Name: name, Status: "unknown"})
			problems = append(problems, fmt.Sprintf("runner %s not registered", name))
			continue
		}
		n := nodes[i]
		rh := runnerHealth{Name: name, Status: string(n.Status)}
		if n.LastHeartbeat != nil {
			rh.LastHeartbeat = *n.LastHeartbeat
		}
		seen, looked := first[name]
		rh.Fresh = looked && rh.LastHeartbeat != "" && rh.LastHeartbeat != seen
		rep.Runners = append(rep.Runners, rh)
		switch {
		case n.Status != fsm.NodeOnline:
			problems = append(problems, fmt.Sprintf("runner %s %s", name, n.Status))
		case !rh.Fresh:
			problems = append(problems, fmt.Sprintf("runner %s: no new heartbeat yet", name))
		}
	}
	rep.Healthy = len(problems) == 0
	rep.Reason = strings.Join(problems, "; ")
	return rep
}

// printClusterHealth writes the healthy verdict and the replicas (and runners).
func printClusterHealth(w io.Writer, rep healthReport) error {
	if _, err := fmt.Fprintf(w, "Healthy after %.1fs: leader %s, term %d, %d replicas caught up\n\n",
		rep.Waited, rep.Leader, rep.Term, len(rep.Replicas)); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	tw := newTable(w)
	row(tw, "ID", "STATE", "TERM", "APPLIED", "COMMIT", "LAG")
	for _, r := range rep.Replicas {
		row(tw, r.ID, r.State, strconv.FormatUint(r.Term, 10), strconv.FormatUint(r.AppliedIndex, 10),
			strconv.FormatUint(r.CommitIndex, 10), strconv.FormatUint(r.Lag, 10))
	}
	if err := flushTable(tw); err != nil {
		return err
	}
	if len(rep.Runners) == 0 {
		return nil
	}
	if _, err := fmt.Fprintln(w); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	tw = newTable(w)
	row(tw, "RUNNER", "STATUS", "LAST HEARTBEAT")
	for _, r := range rep.Runners {
		row(tw, r.Name, r.Status, orDash(r.LastHeartbeat))
	}
	return flushTable(tw)
}
