// Package doctor diagnoses a HakuRiver node the way an administrator would by
// hand (troubleshooting guide: addresses, ports, firewalls, shared storage,
// permissions, Docker, cgroups, users, executables, disk, clock), from the
// node's own point of view.
//
// It has two halves. Local checks (RunLocal) look at this machine only and
// need no cluster, so they also run on a node that will not start. Probes
// (Probe, ProbeAll) open one connection to another member exactly as the real
// traffic would and classify what went wrong. Run combines both into the
// Report a host replica serves at GET /api/doctor and a runner at GET /doctor.
// For a whole cluster, a caller (the CLI) lists the Members, has Plan say what
// each one probes, gathers their Reports, and Aggregate compares them (leader
// agreement, versions, clock skew, Raft lag, heartbeats) before Summarise.
//
// The package uses the standard library only and keeps no package-level
// mutable state: everything it touches on the machine can be replaced through
// function fields of Local (tests).
package doctor

import (
	"fmt"
	"time"
)

// Status is the outcome of one check.
type Status string

// Check outcomes, from best to worst.
const (
	StatusOK   Status = "ok"
	StatusWarn Status = "warn"
	StatusFail Status = "fail"
)

// rank orders statuses from best (0) to worst.
func (s Status) rank() int {
	switch s {
	case StatusOK:
		return 0
	case StatusWarn:
		return 1
	}
	return 2
}

// Worse returns the worse of s and o.
func (s Status) Worse(o Status) Status {
	if o.rank() > s.rank() {
		return o
	}
	return s
}

// Check is the result of one check: what was looked at, what was measured and,
// for a warning or a failure, the likely cause and its fix in one line.
type Check struct {
	// Name identifies the check ("advertise address", "probe runner api r1").
	Name   string `json:"name"`
	Status Status `json:"status"`
	// Measured is what was observed, with numbers and units.
	Measured string `json:"measured"`
	// Cause is the likely cause and fix; empty when Status is ok.
	Cause string `json:"cause,omitempty"`
	// Node is the member that ran the check (filled in by Run and the CLI).
	Node string `json:"node,omitempty"`
}

// okCheck, warnCheck and failCheck build checks.
func okCheck(name, measured string) Check {
	return Check{Name: name, Status: StatusOK, Measured: measured}
}

func warnCheck(name, measured, cause string) Check {
	return Check{Name: name, Status: StatusWarn, Measured: measured, Cause: cause}
}

func failCheck(name, measured, cause string) Check {
	return Check{Name: name, Status: StatusFail, Measured: measured, Cause: cause}
}

// Peer is one gossip member as a node sees it, so that the CLI learns gossip
// and SSH proxy addresses that the REST API does not list.
type Peer struct {
	Name     string `json:"name"`
	Role     string `json:"role"`
	ID       string `json:"id"`
	Gossip   string `json:"gossip"`
	API      string `json:"api,omitempty"`
	Raft     string `json:"raft,omitempty"`
	SSHProxy string `json:"ssh_proxy,omitempty"`
	Version  string `json:"version,omitempty"`
}

// Report is one member's answer: who it is, its effective configuration that
// other members are compared on, and its checks.
type Report struct {
	Node    string `json:"node"`
	Role    string `json:"role"`
	Version string `json:"version"`
	// Time is the member's clock when it finished the report, for skew
	// estimates; ElapsedMS is how long it worked on the request, so that
	// the caller can subtract it from the round trip.
	Time      time.Time `json:"time"`
	ElapsedMS float64   `json:"elapsed_ms"`
	// SharedDir is the member's configured shared_dir.
	SharedDir string `json:"shared_dir,omitempty"`
	// Endpoints are the member's own advertised addresses by kind ("api",
	// "raft", "gossip", "ssh_proxy").
	Endpoints map[string]string `json:"endpoints,omitempty"`
	// Peers is the member's gossip view.
	Peers []Peer `json:"peers,omitempty"`
	// Resolved maps each host name this member resolved to its addresses,
	// so that names resolving differently on different nodes stand out.
	Resolved map[string][]string `json:"resolved,omitempty"`
	// Probe is the shared-storage probe file this member wrote on request.
	Probe  *ProbeFile `json:"probe,omitempty"`
	Checks []Check    `json:"checks"`
}

// Summary counts checks by status.
type Summary struct {
	OK   int `json:"ok"`
	Warn int `json:"warn"`
	Fail int `json:"fail"`
}

// Add counts checks into s.
func (s *Summary) Add(checks ...Check) {
	for _, c := range checks {
		switch c.Status {
		case StatusOK:
			s.OK++
		case StatusWarn:
			s.Warn++
		default:
			s.Fail++
		}
	}
}

// String renders s as "12 ok, 1 warn, 0 fail".
func (s Summary) String() string {
	return fmt.Sprintf("%d ok, %d warn, %d fail", s.OK, s.Warn, s.Fail)
}

// Worst returns the worst status among checks (ok for none).
func Worst(checks []Check) Status {
	st := StatusOK
	for _, c := range checks {
		st = st.Worse(c.Status)
	}
	return st
}
