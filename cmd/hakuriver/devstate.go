package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// devStateFile is the dev cluster's state in its data dir: the members,
// their ports (chosen once, reused by every later `dev` on the same data
// dir) and, while `dev` runs, its PID, its control socket and each
// member's PID.
const devStateFile = "dev.json"

// Member kinds.
const (
	kindHost   = "host"
	kindRunner = "runner"
)

// Member states as dev reports them.
const (
	stateRunning = "running"
	statePaused  = "paused"
	stateKilled  = "killed"
	stateExited  = "exited"
	stateStopped = "stopped"
)

// devState is the content of <data-dir>/dev.json.
type devState struct {
	// PID is the running dev process, 0 once it stopped.
	PID int `json:"pid,omitempty"`
	// Control is the running dev's control socket.
	Control string `json:"control,omitempty"`
	// DataDir is the data directory (absolute).
	DataDir string `json:"data_dir"`
	// TLS is set when the members serve TLS (fixed by the first run).
	TLS bool `json:"tls"`
	// Members are the replicas (host-N) and then the runners (runner-N).
	Members []*devMember `json:"members"`
}

// devMember is one replica or runner of the dev cluster.
type devMember struct {
	// Name is the member's dev name: host-N or runner-N.
	Name string `json:"name"`
	// NodeID is its node ID (dev-N) or runner name (dev-runner-N).
	NodeID string `json:"node_id"`
	Kind   string `json:"kind"`
	// APIPort serves a replica's API or a runner's agent API.
	APIPort      int `json:"api_port"`
	SSHProxyPort int `json:"ssh_proxy_port,omitempty"`
	RaftPort     int `json:"raft_port,omitempty"`
	GossipPort   int `json:"gossip_port"`
	// Config is the generated config file the member runs with.
	Config string `json:"config"`
	// Log receives the member's output.
	Log string `json:"log"`
	// PID is the member's process while dev runs it.
	PID int `json:"pid,omitempty"`
	// State is running, paused, killed, exited or stopped.
	State string `json:"state,omitempty"`
	// Exit describes how the process ended (killed or exited).
	Exit string `json:"exit,omitempty"`
}

// url returns the member's API base URL.
func (m *devMember) url(tls bool) string {
	scheme := "http"
	if tls {
		scheme = "https"
	}
	return fmt.Sprintf("%s://127.0.0.1:%d", scheme, m.APIPort)
}

// addr returns 127.0.0.1:port.
func addr(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

// loadDevState reads dir's dev.json; a missing file returns nil, nil.
func loadDevState(dir string) (*devState, error) {
	b, err := os.ReadFile(filepath.Join(dir, devStateFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read dev state: %w", err)
	}
	var s devState
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("read dev state %s: %w", filepath.Join(dir, devStateFile), err)
	}
	return &s, nil
}

// save writes the state atomically (temp file + rename), mode 0600.
func (s *devState) save() error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("encode dev state: %w", err)
	}
	path := filepath.Join(s.DataDir, devStateFile)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("write dev state: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write dev state: %w", err)
	}
	return nil
}

// member returns the member named name (host-N, runner-N, or its node ID).
func (s *devState) member(name string) *devMember {
	for _, m := range s.Members {
		if m.Name == name || m.NodeID == name {
			return m
		}
	}
	return nil
}

// replicas returns the host members.
func (s *devState) replicas() []*devMember {
	var out []*devMember
	for _, m := range s.Members {
		if m.Kind == kindHost {
			out = append(out, m)
		}
	}
	return out
}

// names lists the member names, for error messages.
func (s *devState) names() string {
	var n []string
	for _, m := range s.Members {
		n = append(n, m.Name)
	}
	return strings.Join(append(n, "leader"), ", ")
}

// planDev returns the state for a dev cluster of the given size in dir:
// the members of old (a previous run's state, nil for a new data dir) keep
// every port; new members get API ports from apiBase (replica i: apiBase+i,
// its SSH proxy apiBase+100+i) and free loopback ports for the rest. With
// apiChanged the replicas' API and SSH proxy ports follow apiBase even when
// old had others (they are not part of the Raft configuration).
func planDev(dir string, old *devState, replicas, runners, apiBase int, apiChanged, tls bool) (*devState, error) {
	s := &devState{DataDir: dir, TLS: tls}
	if old != nil {
		if n := len(old.replicas()); n != replicas {
			return nil, fmt.Errorf("--replicas %d: %s holds a cluster of %d replicas; start it with --replicas %d, or use a new --data-dir", replicas, dir, n, n)
		}
		s.TLS = old.TLS || tls
	}
	used := map[int]bool{}
	var reuse []*devMember
	if old != nil {
		reuse = old.Members
	}
	for _, m := range reuse {
		for _, p := range []int{m.APIPort, m.SSHProxyPort, m.RaftPort, m.GossipPort} {
			used[p] = true
		}
	}
	for i := 0; i < replicas; i++ {
		used[apiBase+i], used[apiBase+100+i] = true, true
	}
	pick, release, err := freePorts(used)
	if err != nil {
		return nil, err
	}
	defer release()
	oldMember := func(name string) *devMember {
		if old == nil {
			return nil
		}
		return old.member(name)
	}
	for i := 0; i < replicas; i++ {
		m := &devMember{Name: fmt.Sprintf("host-%d", i+1), NodeID: fmt.Sprintf("dev-%d", i+1), Kind: kindHost}
		if o := oldMember(m.Name); o != nil && o.Kind == kindHost {
			m.APIPort, m.SSHProxyPort, m.RaftPort, m.GossipPort = o.APIPort, o.SSHProxyPort, o.RaftPort, o.GossipPort
		} else {
			m.APIPort, m.SSHProxyPort = apiBase+i, apiBase+100+i
			if m.RaftPort, err = pick(); err == nil {
				m.GossipPort, err = pick()
			}
			if err != nil {
				return nil, err
			}
		}
		if apiChanged {
			m.APIPort, m.SSHProxyPort = apiBase+i, apiBase+100+i
		}
		s.Members = append(s.Members, m)
	}
	for i := 0; i < runners; i++ {
		m := &devMember{Name: fmt.Sprintf("runner-%d", i+1), NodeID: fmt.Sprintf("dev-runner-%d", i+1), Kind: kindRunner}
		if o := oldMember(m.Name); o != nil && o.Kind == kindRunner {
			m.APIPort, m.GossipPort = o.APIPort, o.GossipPort
		} else {
			if m.APIPort, err = pick(); err == nil {
				m.GossipPort, err = pick()
			}
			if err != nil {
				return nil, err
			}
		}
		s.Members = append(s.Members, m)
	}
	for _, m := range s.Members {
		m.Config = filepath.Join(dir, "config", m.Name+".toml")
		m.Log = filepath.Join(dir, "logs", m.Name+".log")
		m.State = stateStopped
	}
	return s, nil
}

// freePorts returns a picker of free loopback TCP ports outside used (each
// held open until release, so two picks never return the same port). The
// ports are drawn below the kernel's ephemeral range when there is room
// (net.ipv4.ip_local_port_range): a port from that range, free when
// picked, can become the local port of any process's outgoing connection
// before the member binds it ("address already in use").
func freePorts(used map[int]bool) (pick func() (int, error), release func(), err error) {
	var held []net.Listener
	release = func() {
		for _, l := range held {
			l.Close() //nolint:errcheck // only reserving
		}
	}
	low, high := stablePortRange()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(os.Getpid())))
	pick = func() (int, error) {
		for range 200 {
			addr := "127.0.0.1:0"
			if high > low {
				addr = fmt.Sprintf("127.0.0.1:%d", low+rng.IntN(high-low))
			}
			l, err := net.Listen("tcp", addr)
			if err != nil {
				continue // taken: draw another
			}
			held = append(held, l)
			if p := l.Addr().(*net.TCPAddr).Port; !used[p] {
				used[p] = true
				return p, nil
			}
		}
		return 0, errors.New("pick a free port: none found")
	}
	return pick, release, nil
}

// stablePortRange is the range freePorts draws from: from 20000 up to the
// start of the kernel's ephemeral range, or an empty range (any free
// port) when the ephemeral range starts lower.
func stablePortRange() (low, high int) {
	low, high = 20000, 32768 // Linux's default ephemeral range starts at 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		var start, end int
		if _, err := fmt.Sscan(string(b), &start, &end); err == nil {
			high = start
		}
	}
	if high-low < 1000 {
		return 0, 0
	}
	return low, high
}
