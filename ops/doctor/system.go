package doctor

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// dockerTimeout bounds connecting to the Docker socket and its /_ping.
const dockerTimeout = 2 * time.Second

// checkRunnerUser checks that runner_user exists and that this process can
// start tasks as that user (it is root, or it is that user).
func checkRunnerUser(name string) Check {
	const check = "runner_user"
	self := currentUser()
	if name == "" {
		return okCheck(check, "not set: tasks run as the runner's own user "+self)
	}
	u, err := user.Lookup(name)
	if err != nil {
		if _, nerr := strconv.Atoi(name); nerr == nil {
			u, err = user.LookupId(name)
		}
	}
	if err != nil {
		return failCheck(check, fmt.Sprintf("%s: %v", name, err),
			"no such user on this node: create it (useradd, or the same LDAP/NSS setup as the other nodes) or fix environment.runner_user")
	}
	uid, _ := strconv.Atoi(u.Uid) //nolint:errcheck // os/user returns numeric IDs on Linux
	euid := os.Geteuid()
	switch {
	case euid == 0:
		return okCheck(check, fmt.Sprintf("%s (uid %s) exists; the runner is root and can switch to it", u.Username, u.Uid))
	case euid == uid:
		return okCheck(check, fmt.Sprintf("%s (uid %s) is the runner's own user", u.Username, u.Uid))
	}
	return failCheck(check, fmt.Sprintf("%s (uid %s) exists, but the runner runs as %s", u.Username, u.Uid, self),
		"the runner cannot switch users: run it as root (the systemd unit's User=) or set runner_user to the runner's own user")
}

// checkExecutable looks e up.
func checkExecutable(e Executable) Check {
	name := "executable " + e.Name
	p := e.Path
	if p == "" {
		p = e.Name
	}
	found, err := exec.LookPath(p)
	if err == nil {
		return okCheck(name, found)
	}
	cause := fmt.Sprintf("not found (PATH=%s): install %s or configure its full path", os.Getenv("PATH"), e.Name)
	if e.Why != "" {
		cause = fmt.Sprintf("%s is needed for %s: install it or configure its full path", e.Name, e.Why)
	}
	if e.Required {
		return failCheck(name, fmt.Sprintf("%s: %v", p, err), cause)
	}
	return warnCheck(name, fmt.Sprintf("%s: %v", p, err), cause)
}

// checkDocker checks the Docker Engine socket: it exists, this user may
// read and write it (and which permission grants that), and the daemon
// answers /_ping.
func (l Local) checkDocker(ctx context.Context) Check {
	const name = "docker socket"
	bad := warnCheck
	if l.DockerRequired {
		bad = failCheck
	}
	path := l.DockerSocket
	info, err := os.Stat(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return bad(name, path+": does not exist", "Docker Engine is not installed or not running here: install it or start it (systemctl start docker)")
		}
		return bad(name, fmt.Sprintf("%s: %v", path, err), permCause(err, path))
	}
	if info.Mode()&fs.ModeSocket == 0 {
		return bad(name, fmt.Sprintf("%s is a %s", path, kind(info)), "not a socket: the Docker daemon did not create it; restart docker")
	}
	desc := fmt.Sprintf("%s %s %s:%s", path, info.Mode(), ownerName(info), groupOf(info))
	grant := socketGrant(info)
	ctx, cancel := context.WithTimeout(ctx, dockerTimeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		switch {
		case errors.Is(err, fs.ErrPermission):
			return bad(name, fmt.Sprintf("%s: permission denied", desc), dockerPermCause(info))
		case errors.Is(err, syscall.ECONNREFUSED):
			return bad(name, desc+": nobody accepts on it", "the socket is stale: the Docker daemon is not running (systemctl restart docker)")
		}
		return bad(name, fmt.Sprintf("%s: %v", desc, err), "cannot connect to the Docker daemon: see the measured error")
	}
	conn.Close()
	start := time.Now()
	status, err := dockerPing(ctx, path)
	if err != nil {
		return bad(name, fmt.Sprintf("%s, %s; /_ping: %v", desc, grant, err), "the daemon accepts but does not answer: it is hung or starting; check journalctl -u docker")
	}
	if status != http.StatusOK {
		return bad(name, fmt.Sprintf("%s, %s; /_ping HTTP %d", desc, grant, status), "the daemon answers with an error: check journalctl -u docker")
	}
	return okCheck(name, fmt.Sprintf("%s, %s; daemon answers /_ping in %s", desc, grant, fmtDur(time.Since(start))))
}

// dockerPing sends GET /_ping over the socket.
func dockerPing(ctx context.Context, path string) (int, error) {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
		DisableKeepAlives: true,
	}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://docker/_ping", nil)
	if err != nil {
		return 0, fmt.Errorf("build ping: %w", err)
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return 0, fmt.Errorf("ping docker: %w", err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 4096)) //nolint:errcheck // only the status matters
	return resp.StatusCode, nil
}

// socketGrant says which permission lets this process use the socket.
func socketGrant(info fs.FileInfo) string {
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok {
		return "access granted"
	}
	mode := info.Mode().Perm()
	switch {
	case os.Geteuid() == 0:
		return "access as root"
	case int(st.Uid) == os.Geteuid() && mode&0o600 == 0o600:
		return "access as its owner"
	case inGroup(st.Gid) && mode&0o060 == 0o060:
		return "access through group " + groupName(st.Gid)
	}
	return "access through its mode for others"
}

// dockerPermCause explains how to get access to the socket.
func dockerPermCause(info fs.FileInfo) string {
	group := "docker"
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		group = groupName(st.Gid)
	}
	return fmt.Sprintf("%s is not in group %s that owns the socket: usermod -aG %s <user> and restart the service, or run it as root",
		currentUser(), group, group)
}

// inGroup reports whether this process has gid as its group or a
// supplementary group.
func inGroup(gid uint32) bool {
	if uint32(os.Getegid()) == gid {
		return true
	}
	groups, err := os.Getgroups()
	return err == nil && slices.Contains(groups, int(gid))
}

// checkCgroups probes that task cgroups can be created: under the v2 root
// (or the configured parent) or under the v1 cpu and memory hierarchies, it
// creates a group and removes it again.
func (l Local) checkCgroups() Check {
	const name = "cgroups"
	bad := warnCheck
	if l.CgroupsRequired {
		bad = failCheck
	}
	root := l.CgroupRoot
	var dirs []string
	version := "v1"
	if _, err := os.Stat(filepath.Join(root, "cgroup.controllers")); err == nil {
		version = "v2"
		dirs = []string{cgroupBase(root, l.CgroupParent)}
	} else {
		for _, c := range []string{"cpu", "memory"} {
			base := filepath.Join(root, c)
			if _, err := os.Stat(filepath.Join(base, "cgroup.procs")); err != nil {
				return bad(name, fmt.Sprintf("%s: no cgroup v2 and no v1 %s hierarchy", root, c),
					"cgroups are not mounted: native tasks run without cpu/memory limits; mount cgroup2 at "+root)
			}
			dirs = append(dirs, cgroupBase(base, l.CgroupParent))
		}
	}
	for _, d := range dirs {
		if err := probeCgroup(d); err != nil {
			return bad(name, fmt.Sprintf("cgroup %s under %s: %v", version, d, err), cgroupCause(err))
		}
	}
	return okCheck(name, fmt.Sprintf("cgroup %s: created and removed a group under %s", version, strings.Join(dirs, ", ")))
}

// cgroupBase is the parent group when it exists, else the hierarchy root.
func cgroupBase(root, parent string) string {
	if parent != "" {
		if info, err := os.Stat(filepath.Join(root, parent)); err == nil && info.IsDir() {
			return filepath.Join(root, parent)
		}
	}
	return root
}

// probeCgroup creates and removes a cgroup under dir.
func probeCgroup(dir string) error {
	b := make([]byte, 6)
	rand.Read(b) //nolint:errcheck // crypto/rand.Read never fails
	p := filepath.Join(dir, "hakuriver-doctor-"+hex.EncodeToString(b))
	if err := os.Mkdir(p, 0o755); err != nil {
		return fmt.Errorf("create group: %w", err)
	}
	if err := os.Remove(p); err != nil {
		return fmt.Errorf("remove group %s: %w", p, err)
	}
	return nil
}

func cgroupCause(err error) string {
	switch {
	case errors.Is(err, syscall.EROFS):
		return "the cgroup filesystem is read-only (a container without cgroup access?): native tasks run without limits"
	case errors.Is(err, fs.ErrPermission):
		return "only root (or a delegated cgroup) can create groups: run the runner as root, or native tasks run without limits"
	}
	return "cannot create cgroups: native tasks run without cpu/memory limits"
}
