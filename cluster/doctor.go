package cluster

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster/auth"
	"github.com/hakuriver/hakuriver-ha/fsm"
	"github.com/hakuriver/hakuriver-ha/gossip"
	"github.com/hakuriver/hakuriver-ha/ops/doctor"
	"github.com/hakuriver/hakuriver-ha/ops/systemd"
)

// Raft health thresholds of the doctor's raft check.
const (
	doctorLagWarn     = 1000            // entries committed but not applied here
	doctorContactWarn = 5 * time.Second // a follower's silence from its leader
)

// handleDoctor serves GET and POST /api/doctor (cluster token required): this
// replica's local checks, its Raft and gossip view, the probes the caller
// asks for (opened from here, with this replica's token) and the
// shared-storage probe to write or read back. See doctor.Request.
func (h *Host) handleDoctor(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead && r.Method != http.MethodPost {
		writeError(w, &httpError{status: http.StatusMethodNotAllowed, msg: "method " + r.Method + " not allowed on " + r.URL.Path})
		return
	}
	req, err := doctor.ParseRequest(w, r)
	if err != nil {
		writeError(w, badRequest("%v", err))
		return
	}
	// Probes are opened from here with this replica's cluster token, and
	// the shared-storage probe writes a file: only the cluster token or an
	// admin may ask for them; a viewer gets the local report.
	if p, _ := auth.FromContext(r.Context()); (len(req.Targets) > 0 || req.WriteProbe || req.ReadProbe != nil) && p.Kind != auth.Cluster && !p.Can(fsm.RoleAdmin) {
		writeError(w, &httpError{status: http.StatusForbidden, msg: "forbidden: doctor probes (target, write_probe, read_probe) need role admin or the cluster token"})
		return
	}
	rep := doctor.Report{Node: h.cfg.NodeID, Role: string(gossip.RoleHost), Version: h.cfg.Version, SharedDir: absPath(h.cfg.SharedDir)}
	if !req.Ping {
		rep.Endpoints = h.doctorEndpoints()
		rep.Peers = doctorPeers(h.pool.Members())
		rep.Checks = []doctor.Check{doctor.TokenCheck(h.cfg.ClusterToken, h.cfg.InsecureNoToken), h.raftCheck(), storeCheck(h.cfg.DataDir, freeBytes(h.raft.logs.Stats()), h.disk), h.gossipCheck()}
	}
	writeJSON(w, http.StatusOK, doctor.Run(r.Context(), h.doctorLocal(), req, rep))
}

// doctorLocal describes what the local checks look at on a running replica.
func (h *Host) doctorLocal() doctor.Local {
	gossipPort := 0
	if _, p, err := net.SplitHostPort(h.pool.Addr()); err == nil {
		gossipPort, _ = strconv.Atoi(p) //nolint:errcheck // 0 skips the check
	}
	shared := absPath(h.cfg.SharedDir)
	l := doctor.Local{
		Running:       true,
		TLS:           h.clientTLS(),
		TLSVerify:     h.tlsVerify(),
		BindAddr:      h.cfg.BindAddr,
		AdvertiseAddr: h.cfg.advertise(),
		Hostnames:     joinHostnames(h.cfg.Join),
		Ports: []doctor.Port{
			{Name: "api", Proto: "tcp", Port: h.cfg.APIPort},
			{Name: "raft", Proto: "tcp", Port: h.cfg.RaftPort},
			{Name: "gossip", Proto: "tcp", Port: gossipPort},
			{Name: "gossip", Proto: "udp", Port: gossipPort},
			{Name: "ssh proxy", Proto: "tcp", Port: h.cfg.SSHProxyPort},
		},
		Paths: []doctor.Path{
			{Name: "data_dir", Path: absPath(h.cfg.DataDir), Dir: true, Write: true, Disk: true},
			{Name: "shared_dir", Path: shared, Dir: true, Write: true, Disk: true},
			{Name: "task_outputs", Path: filepath.Join(shared, "task_outputs"), Dir: true, Created: true},
			{Name: "task_errors", Path: filepath.Join(shared, "task_errors"), Dir: true, Created: true},
		},
		Token:       h.cfg.ClusterToken,
		ServiceUnit: systemd.UnitName(systemd.RoleHost),
	}
	if h.cfg.Docker != nil {
		// The replica manages Docker environments: it writes their
		// tarballs for the runners and talks to its Docker Engine.
		l.Paths = append(l.Paths, doctor.Path{Name: "container_dir", Path: filepath.Join(shared, h.cfg.ContainerDir),
			Dir: true, Write: true, Created: true})
		l.DockerSocket, l.DockerRequired = doctorDockerSocket, true
	}
	return l
}

// doctorDockerSocket is where the doctor looks for the Docker Engine.
const doctorDockerSocket = "/var/run/docker.sock"

// absPath returns p made absolute, or p when that fails.
func absPath(p string) string {
	if p == "" {
		return p
	}
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

// joinHostnames returns the host names (not IPs) of gossip join addresses.
func joinHostnames(join []string) []string {
	var out []string
	for _, j := range join {
		host, _, err := net.SplitHostPort(j)
		if err != nil {
			host = j
		}
		if host != "" && net.ParseIP(host) == nil {
			out = append(out, host)
		}
	}
	return out
}

// doctorEndpoints lists this replica's advertised addresses.
func (h *Host) doctorEndpoints() map[string]string {
	ep := map[string]string{"api": h.apiURL, "raft": h.raft.addr, "gossip": h.pool.Addr()}
	if h.cfg.SSHProxyPort > 0 {
		ep["ssh_proxy"] = h.SSHProxyAddr()
	}
	return ep
}

// doctorPeers maps gossip members onto the doctor's wire form.
func doctorPeers(members []gossip.Member) []doctor.Peer {
	out := make([]doctor.Peer, 0, len(members))
	for _, m := range members {
		out = append(out, doctor.Peer{
			Name: m.Name, Role: string(m.Meta.Role), ID: m.Meta.ID, Gossip: m.Addr,
			API: m.Meta.API, Raft: m.Meta.Raft, SSHProxy: m.Meta.SSHProxy, Version: m.Meta.Version,
		})
	}
	return out
}

// raftCheck reports this replica's Raft state: leader known, last contact
// with it, and how far applying trails the commit index.
func (h *Host) raftCheck() doctor.Check {
	const name = "raft"
	st := h.raft.r.Stats()
	u := func(k string) uint64 { v, _ := strconv.ParseUint(st[k], 10, 64); return v } //nolint:errcheck // 0 when absent
	leaderID, _ := h.leaderInfo()
	applied, commit := h.machine.AppliedIndex(), u("commit_index")
	state := stateName(h.raft.r.State())
	m := fmt.Sprintf("%s, leader %s, term %s, applied %d of commit %d, last contact %s",
		state, orUnknown(leaderID), st["term"], applied, commit, st["last_contact"])
	c := doctor.Check{Name: name, Status: doctor.StatusOK, Measured: m}
	switch {
	case leaderID == "":
		c.Status, c.Cause = doctor.StatusFail,
			"no Raft leader known: fewer than a majority of replicas reach each other; start the stopped replicas or open their Raft ports"
	case state == "follower" && lastContactOver(st["last_contact"], doctorContactWarn):
		c.Status, c.Cause = doctor.StatusWarn,
			"this follower has not heard from the leader for a while: check the Raft port between them (a DROP rule?)"
	case commit > applied && commit-applied > doctorLagWarn:
		c.Status, c.Cause = doctor.StatusWarn,
			"this replica applies far behind the commit index: it is overloaded or its disk is slow"
	}
	return c
}

// lastContactOver reports whether raft's last_contact stat ("never", "0",
// or a duration) exceeds d.
func lastContactOver(s string, d time.Duration) bool {
	if s == "never" {
		return true
	}
	v, err := time.ParseDuration(s)
	return err == nil && v > d
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// gossipCheck compares gossip's view with Raft's configuration and the
// registered runners: a member Raft or the FSM knows that gossip does not
// see is down or has its gossip port blocked.
func (h *Host) gossipCheck() doctor.Check {
	members := h.pool.Members()
	alive := map[string]bool{}
	hosts, runners := 0, 0
	for _, m := range members {
		switch m.Meta.Role {
		case gossip.RoleHost:
			hosts++
			alive["host:"+m.Name] = true
		case gossip.RoleRunner:
			runners++
			alive["runner:"+m.Meta.ID] = true
		}
	}
	var missing []string
	if cf := h.raft.r.GetConfiguration(); cf.Error() == nil {
		for _, s := range cf.Configuration().Servers {
			if !alive["host:"+string(s.ID)] {
				missing = append(missing, "replica "+string(s.ID))
			}
		}
	}
	registered := map[string]bool{}
	for _, n := range h.machine.Nodes() {
		registered[n.Hostname] = true
		if n.Status == fsm.NodeOnline && !alive["runner:"+n.Hostname] {
			missing = append(missing, "runner "+n.Hostname)
		}
	}
	var unregistered []string
	for _, m := range members {
		if m.Meta.Role == gossip.RoleRunner && !registered[m.Meta.ID] {
			unregistered = append(unregistered, m.Meta.ID)
		}
	}
	sort.Strings(missing)
	m := fmt.Sprintf("sees %d hosts and %d runners alive", hosts, runners)
	switch {
	case len(missing) > 0:
		return doctor.Check{Name: "gossip", Status: doctor.StatusWarn, Measured: m + "; not in gossip: " + strings.Join(missing, ", "),
			Cause: "those members are down, or their gossip port (TCP and UDP) is blocked or uses another gossip_key"}
	case len(unregistered) > 0:
		return doctor.Check{Name: "gossip", Status: doctor.StatusWarn, Measured: m + "; in gossip but not registered: " + strings.Join(unregistered, ", "),
			Cause: "those runners cannot register: their cluster token is rejected or they cannot reach any host API"}
	}
	return doctor.Check{Name: "gossip", Status: doctor.StatusOK, Measured: m}
}

// clientTLS is the TLS config of this replica's own calls (nil without TLS).
func (h *Host) clientTLS() *tls.Config {
	if h.cfg.TLS == nil {
		return nil
	}
	return h.cfg.TLS.Client()
}

// tlsVerify checks this replica's certificate for the doctor (nil without
// TLS).
func (h *Host) tlsVerify() func(string, time.Time) (time.Time, error) {
	if h.cfg.TLS == nil {
		return nil
	}
	return h.cfg.TLS.Verify
}
