package doctor

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"os/user"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Port is a port the process listens on, or will listen on.
type Port struct {
	// Name is the port's role: "api", "raft", "gossip", "ssh proxy".
	Name string
	// Proto is "tcp" or "udp".
	Proto string
	// Port 0 means "picked at start" and is not checked.
	Port int
}

// Path is a file or directory the process needs.
type Path struct {
	// Name is the config key or role: "data_dir", "task_outputs".
	Name string
	Path string
	Dir  bool
	// Write says the process writes here (else it only reads).
	Write bool
	// Created says the process creates the directory when it is missing
	// (at start or on first use): a missing one with a writable parent is
	// fine.
	Created bool
	// Disk reports the free space of the filesystem holding it.
	Disk bool
}

// Executable is a program the node needs.
type Executable struct {
	// Name is the program ("numactl"); Path is its configured path or a
	// name looked up in PATH.
	Name string
	Path string
	// Required makes a missing program a failure (else a warning).
	Required bool
	// Why says what needs it, for the cause ("GPU detection").
	Why string
}

// Local describes this machine's part of the cluster: what the local checks
// look at. Zero fields skip their checks. The function fields replace what
// the checks read from the machine (tests); nil means the real thing.
type Local struct {
	// Running says the process is up and holds its ports (the endpoint).
	// False (--local, before start) means its ports must be free.
	Running bool
	// BindAddr is where the process listens; AdvertiseAddr is the address
	// other members use to reach it.
	BindAddr      string
	AdvertiseAddr string
	// Hostnames are names that must resolve on this machine (its own
	// hostname, configured peers).
	Hostnames []string
	Ports     []Port
	Paths     []Path
	// RunnerUser is environment.runner_user ("" = the process's own user);
	// checked when CheckRunnerUser is set (runners).
	RunnerUser      string
	CheckRunnerUser bool
	Executables     []Executable
	// DockerSocket is the Docker Engine socket ("" = not checked);
	// DockerRequired makes its problems failures instead of warnings.
	DockerSocket   string
	DockerRequired bool
	// CgroupRoot is where cgroups are mounted ("" = not checked);
	// CgroupParent is the group tasks are created under; CgroupsRequired
	// makes a non-writable hierarchy a failure instead of a warning.
	CgroupRoot      string
	CgroupParent    string
	CgroupsRequired bool
	// ServiceUnit is this node's systemd unit ("hakuriver-host.service");
	// when a unit file of that name is installed (UnitDirs), doctor checks
	// that systemd runs it. "" skips the check.
	ServiceUnit string
	// Token is the cluster token sent on http probes; never reported.
	Token string
	// TLS verifies https probes against the cluster CA (nil: the system
	// roots); never reported.
	TLS *tls.Config
	// TLSVerify, when set (TLS configured), checks this node's certificate
	// for the advertise address at a time and returns when it expires.
	TLSVerify func(name string, now time.Time) (time.Time, error)

	// InterfaceAddrs lists this machine's addresses (net.InterfaceAddrs).
	InterfaceAddrs func() ([]net.Addr, error)
	// LookupHost resolves a name (a net.Resolver).
	LookupHost func(ctx context.Context, host string) ([]string, error)
	// Statfs returns the size and the space available to unprivileged
	// users of the filesystem holding path, in bytes (syscall.Statfs).
	Statfs func(path string) (total, avail uint64, err error)
	// Now reads the clock (time.Now).
	Now func() time.Time
	// ProcRoot is where /proc is mounted, to find who holds a port.
	ProcRoot string
	// UnitDirs are where unit files are looked for (nil: /etc/systemd/system,
	// /lib/systemd/system, /usr/lib/systemd/system).
	UnitDirs []string
	// SystemdBooted reports whether systemd runs the machine (nil:
	// /run/systemd/system exists).
	SystemdBooted func() bool
	// IsActive answers `systemctl is-active unit` (nil: runs systemctl).
	IsActive func(ctx context.Context, unit string) (string, error)
}

// lookupTimeout bounds one name lookup of the local checks.
const lookupTimeout = 2 * time.Second

func (l Local) interfaceAddrs() ([]net.Addr, error) {
	if l.InterfaceAddrs != nil {
		return l.InterfaceAddrs()
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, fmt.Errorf("list interface addresses: %w", err)
	}
	return addrs, nil
}

func (l Local) lookupHost(ctx context.Context, host string) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, lookupTimeout)
	defer cancel()
	if l.LookupHost != nil {
		return l.LookupHost(ctx, host)
	}
	var r net.Resolver
	return r.LookupHost(ctx, host)
}

func (l Local) statfs(path string) (total, avail uint64, err error) {
	if l.Statfs != nil {
		return l.Statfs(path)
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return 0, 0, fmt.Errorf("statfs %s: %w", path, err)
	}
	return st.Blocks * uint64(st.Bsize), st.Bavail * uint64(st.Bsize), nil
}

func (l Local) now() time.Time {
	if l.Now != nil {
		return l.Now()
	}
	return time.Now()
}

func (l Local) procRoot() string {
	if l.ProcRoot != "" {
		return l.ProcRoot
	}
	return "/proc"
}

// RunLocal runs every local check of l, in a fixed order: process user,
// clock, addresses, name resolution, ports, paths, free disk, runner user,
// executables, Docker socket, cgroups, TLS, the service unit. It reads the
// machine only (the port, path and cgroup checks create and remove probe
// files and groups) and is bounded by ctx for name lookups and systemctl.
func RunLocal(ctx context.Context, l Local) []Check {
	var out []Check
	out = append(out, processUser(), l.checkClock())
	out = append(out, l.checkAdvertise(ctx))
	if c, ok := l.checkBind(); ok {
		out = append(out, c)
	}
	out = append(out, l.checkHostnames(ctx)...)
	out = append(out, l.checkPorts()...)
	for _, p := range l.Paths {
		if p.Path == "" {
			continue
		}
		out = append(out, l.checkPath(p))
	}
	for _, p := range l.Paths {
		if p.Path != "" && p.Disk {
			out = append(out, l.checkDisk(p))
		}
	}
	if l.CheckRunnerUser {
		out = append(out, checkRunnerUser(l.RunnerUser))
	}
	for _, e := range l.Executables {
		out = append(out, checkExecutable(e))
	}
	if l.DockerSocket != "" {
		out = append(out, l.checkDocker(ctx))
	}
	if l.CgroupRoot != "" {
		out = append(out, l.checkCgroups())
	}
	if l.TLSVerify != nil {
		out = append(out, l.checkTLS())
	}
	if l.ServiceUnit != "" {
		if c, ok := l.checkService(ctx); ok {
			out = append(out, c)
		}
	}
	return out
}

// tlsRenewWarning is how long before expiry the certificate check warns.
const tlsRenewWarning = 30 * 24 * time.Hour

// checkTLS reports whether this node's certificate is signed by the CA,
// names the advertise address and is valid now, warning a month ahead of
// its expiry.
func (l Local) checkTLS() Check {
	const name = "tls certificate"
	now := l.now()
	notAfter, err := l.TLSVerify(l.AdvertiseAddr, now)
	reissue := fmt.Sprintf("reissue it signed by the cluster CA and naming %s: hakuriver tls init --dir DIR --node NAME --ip|--dns %s", l.AdvertiseAddr, l.AdvertiseAddr)
	switch {
	case err != nil:
		return failCheck(name, fmt.Sprintf("not valid for %s: %v", l.AdvertiseAddr, err), "peers refuse this node's certificate: "+reissue)
	case notAfter.Sub(now) < tlsRenewWarning:
		return warnCheck(name, fmt.Sprintf("expires %s (in %s)", notAfter.UTC().Format(time.RFC3339), notAfter.Sub(now).Round(time.Hour)), "renew it before it expires: "+reissue)
	}
	return okCheck(name, fmt.Sprintf("signed by the cluster CA, names %s, valid until %s", l.AdvertiseAddr, notAfter.UTC().Format(time.RFC3339)))
}

// processUser reports who this process runs as: every permission check below
// is from this user's point of view.
func processUser() Check {
	uid, gid := os.Geteuid(), os.Getegid()
	name := strconv.Itoa(uid)
	if u, err := user.LookupId(name); err == nil {
		name = u.Username
	}
	groups, _ := os.Getgroups() //nolint:errcheck // an empty list only shortens the report
	gs := make([]string, 0, len(groups))
	for _, g := range groups {
		gs = append(gs, groupName(uint32(g)))
	}
	return okCheck("process user", fmt.Sprintf("%s (uid %d, gid %d), groups %s", name, uid, gid, orNone(strings.Join(gs, ","))))
}

// checkClock reports the local time, which the CLI compares across nodes.
func (l Local) checkClock() Check {
	return okCheck("clock", l.now().Format(time.RFC3339Nano))
}

// groupName returns a group's name, or its number when unknown.
func groupName(gid uint32) string {
	id := strconv.FormatUint(uint64(gid), 10)
	if g, err := user.LookupGroupId(id); err == nil {
		return g.Name
	}
	return id
}

// userName returns a user's name, or its number when unknown.
func userName(uid uint32) string {
	id := strconv.FormatUint(uint64(uid), 10)
	if u, err := user.LookupId(id); err == nil {
		return u.Username
	}
	return id
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
