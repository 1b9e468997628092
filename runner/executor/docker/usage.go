package docker

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/hakuriver/hakuriver-ha/runner/executor"
	"github.com/hakuriver/hakuriver-ha/runner/executor/cgacct"
)

// Accounting of command task containers. A container's own cgroup is
// removed by the runtime as soon as it stops, so each task container is
// started under a cgroup parent of its own, /hakuriver-tasks/<runner>-<id>
// (Docker's cgroupfs driver only): the parent's counters are hierarchical
// and outlive the container, so the runner reads the CPU time and the
// peak memory there once the container ended, and removes the parent when
// it forgets the task.

// cgroupRoot is where the runner host mounts its cgroups.
const cgroupRoot = "/sys/fs/cgroup"

// taskParentDir is the directory of every task's cgroup parent.
const taskParentDir = "/hakuriver-tasks"

// unsafeCgroupChars are replaced in a runner name used in a cgroup name.
var unsafeCgroupChars = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

// cgroupParentOf is task id's cgroup parent, "" when the engine's cgroup
// driver is not cgroupfs (systemd wants slices: no figures there).
func (e *Executor) cgroupParentOf(ctx context.Context, id int64) string {
	e.driverOnce.Do(func() {
		info, err := e.cli.Info(ctx)
		if err != nil {
			e.log.Debug("read the engine's cgroup driver; task containers are not measured", keyErr, err)
			return
		}
		e.cgroupfs = info.CgroupDriver == "cgroupfs"
	})
	if !e.cgroupfs {
		return ""
	}
	return taskParentDir + "/" + unsafeCgroupChars.ReplaceAllString(e.cfg.RunnerName, "_") + "-" + strconv.FormatInt(id, 10)
}

// ownParent reports whether parent is a task cgroup parent this package
// makes (the only ones it reads or removes).
func ownParent(parent string) bool {
	rest, ok := strings.CutPrefix(parent, taskParentDir+"/")
	return ok && rest != "" && !strings.ContainsAny(rest, "/") && rest != "." && rest != ".."
}

// parentUsage reads what the containers under cgroup parent consumed,
// nil when it cannot (not one of ours, no such cgroup).
func parentUsage(parent string) (*executor.Usage, error) {
	if !ownParent(parent) {
		return nil, nil
	}
	var f cgacct.Figures
	var err error
	if _, serr := os.Stat(filepath.Join(cgroupRoot, "cgroup.controllers")); serr == nil {
		f, err = cgacct.ReadV2(filepath.Join(cgroupRoot, parent))
	} else {
		f, err = cgacct.ReadV1(filepath.Join(cgroupRoot, "cpuacct", parent), filepath.Join(cgroupRoot, "memory", parent))
	}
	if err != nil {
		return nil, err
	}
	return &executor.Usage{UserNs: f.UserNs, SystemNs: f.SystemNs, PeakBytes: f.PeakBytes, Source: "cgroup"}, nil
}

// removeParent removes cgroup parent in every hierarchy (it is empty once
// its container is removed); what is missing is fine.
func removeParent(parent string) error {
	if !ownParent(parent) {
		return nil
	}
	dirs := []string{filepath.Join(cgroupRoot, parent)}
	if entries, err := os.ReadDir(cgroupRoot); err == nil {
		for _, ent := range entries {
			if ent.IsDir() { // v1 hierarchies; symlinked co-mounts are skipped
				dirs = append(dirs, filepath.Join(cgroupRoot, ent.Name(), parent))
			}
		}
	}
	var errs []error
	for _, d := range dirs {
		if err := os.Remove(d); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
