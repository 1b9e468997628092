package cluster

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/cluster/httpapi"
	"github.com/hakuriver/hakuriver-ha/fsm"
)

// Idle auto-stop ([vps] idle_stop). Where activity is known: every
// replica's SSH proxy counts the tunnels it relays to each VPS (both the
// line protocol of `hakuriver ssh` and the jump host), which is the only way
// in the cluster offers; a connection straight to the runner's published
// port bypasses the proxies and is not seen. The decision is the leader's:
// while it leads, it asks every voter for its proxy's counts
// (GET /api/cluster/vps-activity, cluster token) and stops a running VPS
// when no replica has a tunnel to it open and none has seen one open or
// close for idle_stop, counted from the latest of that, the VPS's last
// start, and each replica proxy's own start (a restarted replica forgot
// what it saw). A voter that does not answer makes the leader decide
// nothing that round: a session through it could be open. A stop is the
// same as `vps stop` (the container and disk are kept).

// vpsActivityTimeout bounds one replica's answer.
const vpsActivityTimeout = 5 * time.Second

// handleVPSActivity serves GET /api/cluster/vps-activity: this replica's
// SSH proxy tunnels per VPS (api.VPSActivity).
func (h *Host) handleVPSActivity(w http.ResponseWriter, r *http.Request) {
	out := api.VPSActivity{Tasks: map[int64]api.TunnelActivity{}}
	if p := h.sshProxy; p != nil {
		out.Since = p.since
		for id, a := range p.srv.Activity() {
			out.Tasks[id] = api.TunnelActivity{Open: a.Open, Last: a.Last.UTC()}
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// vpsIdleLoop runs until ctx ends when VPSIdleStop is set, checking the
// running VPS while this replica leads.
func (h *Host) vpsIdleLoop(ctx context.Context) {
	idle := h.cfg.VPSIdleStop
	if idle <= 0 {
		return
	}
	tick := time.NewTicker(min(max(idle/5, 200*time.Millisecond), time.Minute))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if h.IsLeader() {
			h.stopIdleVPS(ctx, idle)
		}
	}
}

// lastStart is when VPS t last started running: its newest "started"
// placement, else StartedAt.
func lastStart(t *fsm.Task) time.Time {
	for i := len(t.Placements) - 1; i >= 0; i-- {
		if t.Placements[i].Event == fsm.PlacementStarted {
			return t.Placements[i].At()
		}
	}
	if t.StartedAt != nil {
		return *t.StartedAt
	}
	return time.Time{}
}

// stopIdleVPS stops every running VPS idle for idle (see the top of file).
func (h *Host) stopIdleVPS(ctx context.Context, idle time.Duration) {
	now := time.Now()
	var cands []*fsm.Task
	for _, t := range h.machine.Active() {
		if t.TaskType == fsm.TaskVPS && t.Status == fsm.StatusRunning && now.Sub(lastStart(t)) >= idle {
			cands = append(cands, t)
		}
	}
	if len(cands) == 0 {
		return
	}
	acts, err := h.clusterVPSActivity(ctx)
	if err != nil {
		h.log.Debug("idle VPS check skipped: a replica's SSH proxy activity is unknown", "err", err)
		return
	}
	for _, t := range cands {
		last := lastStart(t)
		open := 0
		for _, a := range acts {
			last = latest(last, a.Since)
			if ta, ok := a.Tasks[t.TaskID]; ok {
				open += ta.Open
				last = latest(last, ta.Last)
			}
		}
		if open > 0 || now.Sub(last) < idle {
			continue
		}
		if err := h.stopIdle(ctx, t, now.Sub(last)); err != nil {
			if l := h.currentLeader(); l != nil {
				l.logLeaderErr(ctx, "stop an idle VPS", err, "task_id", t.TaskID)
			}
		}
	}
}

func latest(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// clusterVPSActivity asks every voter (this replica included) for its SSH
// proxy's activity; any voter that does not answer is an error.
func (h *Host) clusterVPSActivity(ctx context.Context) ([]api.VPSActivity, error) {
	servers, err := raftVoters{r: h.raft.r}.servers()
	if err != nil {
		return nil, err
	}
	var out []api.VPSActivity
	for id := range servers {
		base := h.replicaAPI(id)
		if base == "" {
			return nil, fmt.Errorf("replica %s: no API address known (not alive in gossip)", id)
		}
		cctx, cancel := context.WithTimeout(ctx, vpsActivityTimeout)
		a, err := h.replicas.VPSActivity(cctx, base)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("replica %s: %w", id, err)
		}
		out = append(out, a)
	}
	return out, nil
}

// stopIdle stops VPS t as `vps stop` does (httpapi.StopKept).
func (h *Host) stopIdle(ctx context.Context, t *fsm.Task, idleFor time.Duration) error {
	n, ok := h.machine.Node(t.AssignedNode)
	if !ok || n.Status != fsm.NodeOnline {
		return errors.New("its node is not online")
	}
	msg := fmt.Sprintf("Stopped: no SSH session for %s (vps.idle_stop).", idleFor.Round(time.Second))
	err := httpapi.StopKept(ctx, h.runners, h.log, n.URL, t.TaskID, func(ctx context.Context) error {
		actx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		_, err := h.apply(actx, &fsm.VPSStop{TaskID: t.TaskID, Message: msg, At: time.Now().UTC()})
		return err
	})
	if err != nil {
		return fmt.Errorf("stop on runner %s: %w", n.Hostname, err)
	}
	h.log.Info("idle VPS stopped", "task_id", t.TaskID, "node", n.Hostname, "idle", idleFor.Round(time.Second))
	h.kickScheduler()
	return nil
}
