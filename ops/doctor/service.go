package doctor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// defaultUnitDirs are where an installed unit file is looked for: the
// administrator's units, then the packages' (Debian's /lib and /usr/lib).
func defaultUnitDirs() []string {
	return []string{"/etc/systemd/system", "/lib/systemd/system", "/usr/lib/systemd/system"}
}

// systemctlTimeout bounds one `systemctl is-active`.
const systemctlTimeout = 5 * time.Second

func (l Local) unitDirs() []string {
	if l.UnitDirs != nil {
		return l.UnitDirs
	}
	return defaultUnitDirs()
}

// systemdBooted reports whether systemd runs this machine, as
// sd_booted(3) decides: /run/systemd/system exists.
func (l Local) systemdBooted() bool {
	if l.SystemdBooted != nil {
		return l.SystemdBooted()
	}
	fi, err := os.Stat("/run/systemd/system")
	return err == nil && fi.IsDir()
}

// unitState returns `systemctl is-active UNIT`'s answer ("active",
// "inactive", "failed", ...); systemctl exits non-zero for every state but
// active, so only an empty answer is an error.
func (l Local) unitState(ctx context.Context, unit string) (string, error) {
	if l.IsActive != nil {
		return l.IsActive(ctx, unit)
	}
	ctx, cancel := context.WithTimeout(ctx, systemctlTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, "systemctl", "is-active", unit).Output()
	state := strings.TrimSpace(string(out))
	if state == "" {
		if err == nil {
			err = errors.New("no answer")
		}
		return "", fmt.Errorf("systemctl is-active %s: %w", unit, err)
	}
	return state, nil
}

// checkService reports the state of this node's service unit, when one is
// installed; it returns false when there is none (a node started by hand
// or by other means has nothing to check).
func (l Local) checkService(ctx context.Context) (Check, bool) {
	var path string
	for _, d := range l.unitDirs() {
		p := filepath.Join(d, l.ServiceUnit)
		if _, err := os.Stat(p); err == nil {
			path = p
			break
		}
	}
	if path == "" {
		return Check{}, false
	}
	name := "service " + l.ServiceUnit
	if !l.systemdBooted() {
		return okCheck(name, path+" installed; systemd does not run this machine (no /run/systemd/system): not checked"), true
	}
	state, err := l.unitState(ctx, l.ServiceUnit)
	if err != nil {
		return warnCheck(name, err.Error(), "cannot ask systemd: run systemctl status "+l.ServiceUnit+" by hand"), true
	}
	m := fmt.Sprintf("%s: %s", path, state)
	switch state {
	case "active":
		return okCheck(name, m), true
	case "failed":
		return failCheck(name, m, "the service stopped with an error: journalctl -u "+l.ServiceUnit+" -n 50 says why; then systemctl restart "+l.ServiceUnit), true
	case "inactive":
		if l.Running {
			return warnCheck(name, m, "this process runs outside its installed service, so nothing restarts it after a crash or a reboot: stop it and systemctl enable --now "+l.ServiceUnit), true
		}
		return warnCheck(name, m, "the service is installed but not running: systemctl enable --now "+l.ServiceUnit), true
	}
	return warnCheck(name, m, "the service is changing state (starting, stopping or restarting): look again, or journalctl -u "+l.ServiceUnit), true
}
