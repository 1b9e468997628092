// Package systemd writes the systemd service units of a host replica
// (hakuriver-host.service) and a runner (hakuriver-runner.service): who the
// process runs as, the sandbox around it with exactly the directories it
// writes, its restart policy and its config file. It uses the standard
// library only and never talks to systemd; doctor's unit check lives in
// ops/doctor.
package systemd

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
)

// Role is what the unit runs.
type Role string

// The two kinds of service.
const (
	RoleHost   Role = "host"
	RoleRunner Role = "runner"
)

// UnitName returns the unit's file name, as the troubleshooting guide names
// it: hakuriver-host.service or hakuriver-runner.service.
func UnitName(r Role) string { return "hakuriver-" + string(r) + ".service" }

// Path is a file or directory the service uses, named by its config key or
// flag so that a refusal names the field.
type Path struct {
	Field string
	Path  string
}

// Unit describes one service.
type Unit struct {
	Role Role
	// Binary is the absolute path of the hakuriver executable.
	Binary string
	// Config is the absolute path of the config file (--config).
	Config string
	// User and Group run the process: a system user for a host, root for
	// a runner (see the unit's comments).
	User  string
	Group string
	// SupplementaryGroups are extra groups ("docker" for the Docker Engine).
	SupplementaryGroups []string
	// Write are the directories the process writes: the only writable
	// places under ProtectSystem=strict.
	Write []Path
	// Read are files and directories it only reads (config, token, TLS
	// files, the binary): checked like Write, and they decide whether
	// ProtectHome can hide /home and PrivateTmp can hide /tmp.
	Read []Path
	// Mounts are directories that must be mounted before start
	// (RequiresMountsFor=): the shared storage.
	Mounts []Path
	// LimitNOFILE is the open-file limit (0: DefaultLimitNOFILE).
	LimitNOFILE int
	// LowPorts says a configured port is below 1024: a host that is not
	// root then keeps CAP_NET_BIND_SERVICE.
	LowPorts bool
}

// DefaultLimitNOFILE covers a replica's client connections and SSE streams
// and a runner's task logs and tunnels.
const DefaultLimitNOFILE = 65536

// ErrInvalid marks a field that cannot go into a unit file.
var ErrInvalid = errors.New("cannot be used in a unit file")

// safePathChar reports whether c may appear in a path written into a unit:
// no space (ReadWritePaths= and ExecStart= split on it), no quote,
// backslash, '%' (specifiers), '$' (variables), ';' or control characters.
func safePathChar(c rune) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.ContainsRune("/._-+@,:", c)
}

// CheckPath returns why path cannot be written into a unit as field, or
// nil: it must be absolute, clean and made of safe characters only.
func CheckPath(field, path string) error {
	switch {
	case path == "":
		return fmt.Errorf("%s is empty: %w", field, ErrInvalid)
	case !filepath.IsAbs(path):
		return fmt.Errorf("%s %q is relative: a service starts in /, give an absolute path: %w", field, path, ErrInvalid)
	case filepath.Clean(path) != path:
		return fmt.Errorf("%s %q is not clean (want %q): %w", field, path, filepath.Clean(path), ErrInvalid)
	}
	for _, c := range path {
		if !safePathChar(c) {
			return fmt.Errorf("%s %q holds %q: only letters, digits and /._-+@,: may appear in a unit file's paths: %w", field, path, c, ErrInvalid)
		}
	}
	return nil
}

// CheckName returns why name cannot be a User= or Group= value (a POSIX
// user or group name, or a number), or nil.
func CheckName(field, name string) error {
	if name == "" || len(name) > 32 {
		return fmt.Errorf("%s %q: want 1-32 characters: %w", field, name, ErrInvalid)
	}
	for i, c := range name {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || i > 0 && (c >= '0' && c <= '9' || c == '-')
		if !ok && !allDigits(name) {
			return fmt.Errorf("%s %q holds %q: want a user or group name (letters, digits, _ and -, not starting with a digit or -) or a number: %w", field, name, c, ErrInvalid)
		}
	}
	return nil
}

func allDigits(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return s != ""
}

// check validates every field of u.
func (u Unit) check() error {
	if u.Role != RoleHost && u.Role != RoleRunner {
		return fmt.Errorf("role %q: want host or runner: %w", u.Role, ErrInvalid)
	}
	errs := []error{CheckPath("--binary", u.Binary), CheckPath("--config", u.Config),
		CheckName("--user", u.User), CheckName("--group", u.Group)}
	for _, g := range u.SupplementaryGroups {
		errs = append(errs, CheckName("supplementary group", g))
	}
	for _, ps := range [][]Path{u.Write, u.Read, u.Mounts} {
		for _, p := range ps {
			errs = append(errs, CheckPath(p.Field, p.Path))
		}
	}
	return errors.Join(errs...)
}

// under reports whether path is dir or inside it.
func under(path, dir string) bool {
	return path == dir || strings.HasPrefix(path, dir+"/")
}

// anyUnder returns the first path of ps inside one of dirs.
func anyUnder(ps []Path, dirs ...string) (Path, bool) {
	for _, p := range ps {
		for _, d := range dirs {
			if under(p.Path, d) {
				return p, true
			}
		}
	}
	return Path{}, false
}

// homeDirs are what ProtectHome= hides.
func homeDirs() []string { return []string{"/home", "/root", "/run/user"} }

// tmpDirs are what PrivateTmp= replaces.
func tmpDirs() []string { return []string{"/tmp", "/var/tmp"} }

// writeDirs returns the distinct directories of u.Write, sorted, with
// nested ones dropped (their parent already makes them writable).
func (u Unit) writeDirs() []string {
	var out []string
	for _, p := range u.Write {
		out = append(out, p.Path)
	}
	slices.Sort(out)
	out = slices.Compact(out)
	var kept []string
	for _, d := range out {
		if len(kept) == 0 || !under(d, kept[len(kept)-1]) {
			kept = append(kept, d)
		}
	}
	return kept
}

// Render returns the unit file of u, or an error naming every field that
// cannot go into it.
func Render(u Unit) ([]byte, error) {
	if err := u.check(); err != nil {
		return nil, err
	}
	if u.LimitNOFILE <= 0 {
		u.LimitNOFILE = DefaultLimitNOFILE
	}
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w("# %s: written by `hakuriver init service %s`. Regenerate it after changing", UnitName(u.Role), u.Role)
	w("# the directories in %s: ReadWritePaths= lists exactly those.", u.Config)
	w("[Unit]")
	if u.Role == RoleHost {
		w("Description=HakuRiver host replica (Raft member, REST API, SSH proxy)")
	} else {
		w("Description=HakuRiver runner (executes tasks on this node)")
	}
	w("Wants=network-online.target")
	w("After=network-online.target docker.service")
	for _, m := range u.Mounts {
		w("# %s must be mounted before start.", m.Field)
		w("RequiresMountsFor=%s", m.Path)
	}
	w("")
	w("[Service]")
	w("Type=simple")
	if u.Role == RoleRunner {
		w("# The runner runs as root: it creates and writes cgroups (CPU, memory, cpuset,")
		w("# freezer) for native tasks, starts each native task as its owner's Unix user")
		w("# (setuid/setgid), chowns their output files, and drives the Docker Engine.")
		w("# It never runs a task as root unless the owner's policy allows it.")
	} else {
		w("# A replica needs no root: it listens on unprivileged ports and writes only")
		w("# the directories below. Make the user first, e.g.:")
		w("#   useradd --system --home-dir /nonexistent --shell /usr/sbin/nologin %s", u.User)
	}
	w("User=%s", u.User)
	w("Group=%s", u.Group)
	if len(u.SupplementaryGroups) > 0 {
		w("# The Docker Engine's socket (environment containers and tarballs). Its group")
		w("# is root-equivalent on this machine: drop the line to keep Docker away.")
		w("SupplementaryGroups=%s", strings.Join(u.SupplementaryGroups, " "))
	}
	w("ExecStart=%s %s --config %s", u.Binary, u.Role, u.Config)
	w("# No ExecReload=: SIGHUP only reopens a configured log file (logrotate sends it,")
	w("# see the README); without one it is logged and ignored. Use systemctl restart,")
	w("# which a replica and a runner both survive without losing work.")
	w("Restart=on-failure")
	w("RestartSec=5s")
	w("TimeoutStopSec=30s")
	if u.Role == RoleRunner {
		w("# Stop only the runner itself: native tasks and their supervisors keep running")
		w("# and the restarted runner finds them again (upgrades lose nothing).")
		w("KillMode=process")
		w("Delegate=yes")
	}
	w("LimitNOFILE=%d", u.LimitNOFILE)
	w("")
	u.hardening(w)
	w("")
	w("[Install]")
	w("WantedBy=multi-user.target")
	return []byte(b.String()), nil
}

// hardening writes the sandbox: read-only system, the write directories
// excepted, hidden homes and a private /tmp where nothing needed lives there.
func (u Unit) hardening(w func(string, ...any)) {
	if u.Role == RoleRunner {
		w("# Sandbox, kept light: native tasks are the runner's children and share it.")
		w("# /usr, /boot and /etc are read-only (ProtectSystem=full); homes and /tmp are")
		w("# as on the machine, so a job writes its results where its owner expects.")
		w("# Tasks cannot gain privileges through setuid programs (sudo, su).")
		w("NoNewPrivileges=yes")
		w("ProtectSystem=full")
		if dirs := u.writeDirs(); len(dirs) > 0 {
			w("ReadWritePaths=%s", strings.Join(dirs, " "))
		}
		w("LockPersonality=yes")
		w("RestrictRealtime=yes")
		// The runner writes cgroups (/sys/fs/cgroup stays writable), and
		// its native tasks need the GPUs' device nodes: no
		// ProtectControlGroups=, PrivateDevices= or device policy
		// (ProtectClock= would set one).
		return
	}
	w("# Sandbox. Everything is read-only but the directories in ReadWritePaths=.")
	w("NoNewPrivileges=yes")
	w("ProtectSystem=strict")
	if dirs := u.writeDirs(); len(dirs) > 0 {
		w("ReadWritePaths=%s", strings.Join(dirs, " "))
	}
	all := append(append([]Path{}, u.Write...), u.Read...)
	switch p, rw := anyUnder(u.Write, homeDirs()...); {
	case rw:
		w("# No ProtectHome=: %s (%s) is in a home directory.", p.Field, p.Path)
	default:
		if p, ro := anyUnder(all, homeDirs()...); ro {
			w("# Homes read-only, not hidden: %s (%s) is in one.", p.Field, p.Path)
			w("ProtectHome=read-only")
		} else {
			w("ProtectHome=yes")
		}
	}
	if p, ok := anyUnder(all, tmpDirs()...); ok {
		w("# No PrivateTmp=: %s (%s) is under a temporary directory other processes share.", p.Field, p.Path)
	} else {
		w("PrivateTmp=yes")
	}
	w("LockPersonality=yes")
	w("RestrictRealtime=yes")
	w("ProtectKernelModules=yes")
	w("ProtectKernelLogs=yes")
	w("ProtectKernelTunables=yes")
	w("ProtectControlGroups=yes")
	w("ProtectClock=yes")
	w("PrivateDevices=yes")
	w("RestrictSUIDSGID=yes")
	w("RestrictNamespaces=yes")
	w("RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK")
	switch {
	case u.User == "root" || u.User == "0":
	case u.LowPorts:
		w("# A configured port is below 1024: binding it needs this one capability.")
		w("AmbientCapabilities=CAP_NET_BIND_SERVICE")
		w("CapabilityBoundingSet=CAP_NET_BIND_SERVICE")
	default:
		w("CapabilityBoundingSet=")
	}
}
