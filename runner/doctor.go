package runner

import (
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/gossip"
	"github.com/hakuriver/hakuriver-ha/ops/doctor"
	"github.com/hakuriver/hakuriver-ha/ops/systemd"
	"github.com/hakuriver/hakuriver-ha/runner/statedir"
)

// Where the runner looks for Docker, cgroups and an NVIDIA driver.
const (
	doctorDockerSocket = "/var/run/docker.sock"
	doctorCgroupRoot   = "/sys/fs/cgroup"
	doctorCgroupParent = "hakuriver"
	nvidiaDriverDir    = "/proc/driver/nvidia"
)

// handleDoctor serves GET and POST /doctor (behind the token middleware):
// this runner's local checks, the probes the caller asks for (opened from
// here, with this runner's token) and the shared-storage probe to write or
// read back. See doctor.Request.
func (a *Agent) handleDoctor(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead && r.Method != http.MethodPost {
		writeErr(w, http.StatusMethodNotAllowed, "method %s not allowed on %s", r.Method, r.URL.Path)
		return
	}
	req, err := doctor.ParseRequest(w, r)
	if err != nil {
		writeErr(w, http.StatusBadRequest, "%v", err)
		return
	}
	shared := a.cfg.SharedDir
	if abs, err := filepath.Abs(shared); err == nil {
		shared = abs
	}
	rep := doctor.Report{Node: a.cfg.Name, Role: string(gossip.RoleRunner), Version: a.cfg.Version, SharedDir: shared}
	if !req.Ping {
		rep.Endpoints = map[string]string{"api": a.url, "gossip": a.pool.Addr()}
		for _, m := range a.pool.Members() {
			rep.Peers = append(rep.Peers, doctor.Peer{
				Name: m.Name, Role: string(m.Meta.Role), ID: m.Meta.ID, Gossip: m.Addr,
				API: m.Meta.API, Raft: m.Meta.Raft, SSHProxy: m.Meta.SSHProxy, Version: m.Meta.Version,
			})
		}
		rep.Checks = append(rep.Checks, doctor.TokenCheck(a.cfg.Token, a.cfg.InsecureNoToken), a.registrationCheck(), statedir.Doctor(a.cfg.StateDir, true,
			statedir.Area{Key: "local_temp_dir", Path: a.cfg.LocalTempDir}, statedir.Area{Key: "shared_dir", Path: shared}))
	}
	api.WriteJSON(w, http.StatusOK, doctor.Run(r.Context(), a.doctorLocal(), req, rep))
}

// registrationCheck reports whether the cluster acknowledged this runner.
func (a *Agent) registrationCheck() doctor.Check {
	if a.registered.Load() {
		return doctor.Check{Name: "registration", Status: doctor.StatusOK, Measured: "registered with the cluster"}
	}
	return doctor.Check{Name: "registration", Status: doctor.StatusFail, Measured: "not registered yet",
		Cause: "the runner cannot reach any host replica's API (see the probes) or its cluster token is rejected"}
}

// doctorLocal describes what the local checks look at on a running runner.
func (a *Agent) doctorLocal() doctor.Local {
	gossipPort := 0
	if _, p, err := net.SplitHostPort(a.pool.Addr()); err == nil {
		gossipPort, _ = strconv.Atoi(p) //nolint:errcheck // 0 skips the check
	}
	apiPort := a.ln.Addr().(*net.TCPAddr).Port
	adv := a.cfg.AdvertiseAddr
	if adv == "" {
		adv = a.cfg.BindAddr
	}
	shared := a.cfg.SharedDir
	if abs, err := filepath.Abs(shared); err == nil {
		shared = abs
	}
	var hostnames []string
	for _, j := range a.cfg.Join {
		if host, _, err := net.SplitHostPort(j); err == nil && net.ParseIP(host) == nil {
			hostnames = append(hostnames, host)
		}
	}
	l := doctor.Local{
		Running:       true,
		BindAddr:      a.cfg.BindAddr,
		AdvertiseAddr: adv,
		Hostnames:     hostnames,
		Ports: []doctor.Port{
			{Name: "api", Proto: "tcp", Port: apiPort},
			{Name: "gossip", Proto: "tcp", Port: gossipPort},
			{Name: "gossip", Proto: "udp", Port: gossipPort},
		},
		Paths: []doctor.Path{
			{Name: "shared_dir", Path: shared, Dir: true, Write: true, Disk: true},
			{Name: "task_outputs", Path: filepath.Join(shared, "task_outputs"), Dir: true, Write: true},
			{Name: "task_errors", Path: filepath.Join(shared, "task_errors"), Dir: true, Write: true},
			{Name: "shared_data", Path: filepath.Join(shared, "shared_data"), Dir: true, Write: true},
			{Name: "local_temp_dir", Path: a.cfg.LocalTempDir, Dir: true, Write: true, Disk: true},
		},
		RunnerUser:      a.cfg.RunnerUser,
		CheckRunnerUser: true,
		CgroupRoot:      doctorCgroupRoot,
		CgroupParent:    doctorCgroupParent,
		CgroupsRequired: a.cfg.NativeLimited,
		Token:           a.cfg.Token,
		ServiceUnit:     systemd.UnitName(systemd.RoleRunner),
	}
	if a.cfg.TLS != nil {
		l.TLS, l.TLSVerify = a.cfg.TLS.Client(), a.cfg.TLS.Verify
	}
	if a.cfg.Docker != nil {
		l.DockerSocket, l.DockerRequired = doctorDockerSocket, true
		l.Executables = append(l.Executables, doctor.Executable{Name: "docker", Why: "debugging container tasks by hand"})
	}
	if _, err := os.Stat(nvidiaDriverDir); err == nil || len(a.static.GPUInfo) > 0 {
		l.Executables = append(l.Executables, doctor.Executable{Name: "nvidia-smi", Path: a.cfg.NvidiaSMI, Required: true, Why: "GPU detection and monitoring"})
	}
	return l
}
