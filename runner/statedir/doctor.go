package statedir

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/hakuriver/hakuriver-ha/ops/doctor"
)

// CheckName is the name of the doctor check of the state directory.
const CheckName = "runner state dir"

// Doctor checks the state directory at path as `hakuriver doctor` reports
// it: it exists (or, before start, can be created), is a directory with
// mode 0700 owned by this process's user, is outside every area, and its
// lock is held by this process when running is set (by nobody otherwise).
// It only reads; its lock probe releases what it takes at once.
func Doctor(path string, running bool, areas ...Area) doctor.Check {
	fail := func(measured, cause string) doctor.Check {
		return doctor.Check{Name: CheckName, Status: doctor.StatusFail, Measured: measured, Cause: cause}
	}
	abs, err := filepath.Abs(path)
	if err != nil || path == "" {
		return fail(fmt.Sprintf("runner_state_dir %q: not a usable path", path), "set [paths] runner_state_dir (--runner-state-dir) to an absolute path")
	}
	if err := CheckPlacement(abs, areas...); err != nil {
		return fail(err.Error(), "move runner_state_dir out of every directory tasks can reach (local_temp_dir, shared_dir)")
	}
	info, err := os.Lstat(abs)
	if errors.Is(err, fs.ErrNotExist) {
		if running {
			return fail(abs+": does not exist", "the running runner's state directory was removed: restart the runner")
		}
		return doctor.Check{Name: CheckName, Status: doctor.StatusOK, Measured: abs + " does not exist yet; the runner creates it (mode 0700) at start"}
	}
	if err != nil {
		return fail(fmt.Sprintf("%s: %v", abs, err), "make it readable by the runner's user")
	}
	var problems []string
	if !info.IsDir() {
		problems = append(problems, "not a directory")
	}
	if perm := info.Mode().Perm(); perm != Mode {
		problems = append(problems, fmt.Sprintf("mode %04o, want 0700", perm))
	}
	if st, ok := info.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() {
		problems = append(problems, fmt.Sprintf("owned by uid %d, not by the runner's uid %d", st.Uid, os.Geteuid()))
	}
	held, pid, err := Holder(abs)
	switch {
	case err != nil:
		problems = append(problems, "lock: "+err.Error())
	case running && !held:
		problems = append(problems, "its lock is not held: another process may use it")
	case running && pid != os.Getpid():
		problems = append(problems, fmt.Sprintf("its lock is held by pid %d, not by this runner (pid %d)", pid, os.Getpid()))
	case !running && held:
		problems = append(problems, fmt.Sprintf("its lock is held by a running runner (pid %d)", pid))
	}
	if len(problems) > 0 {
		return fail(abs+": "+strings.Join(problems, "; "),
			"give each runner its own runner_state_dir, owned by the runner's user with mode 0700 (the runner sets 0700 at start)")
	}
	measured := abs + " drwx------, outside local_temp_dir and shared_dir"
	if running {
		measured += ", locked by this runner"
	}
	return doctor.Check{Name: CheckName, Status: doctor.StatusOK, Measured: measured}
}
