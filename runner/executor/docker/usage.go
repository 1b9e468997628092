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
	"sync"
	"time"

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
var unsafeCgroupChars = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`[^A-Za-z0-9_.-]+`) })

// cgroupParentOf is task id's cgroup parent, "" when the engine's cgroup
// driver is not cgroupfs (systemd wants slices: no figures there).
func (e *Executor) cgroupParentOf(ctx context.Context, id int64) string {
	if !e.cgroupfsDriver(ctx) {
		return ""
	}
	return taskParentDir + "/" + unsafeCgroupChars().ReplaceAllString(e.cfg.RunnerName, "_") + "-" + strconv.FormatInt(id, 10)
}

// cgroupfsDriver reports whether the engine's cgroup driver is cgroupfs,
// asking it once.
func (e *Executor) cgroupfsDriver(ctx context.Context) bool {
	e.driverOnce.Do(func() {
		info, err := e.cli.Info(ctx)
		if err != nil {
			e.log.Debug("read the engine's cgroup driver; task containers are not measured", keyErr, err)
			return
		}
		e.cgroupfs = info.CgroupDriver == "cgroupfs"
	})
	return e.cgroupfs
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

// sweepEvery is how often List looks for cgroup parents left behind.
const sweepEvery = time.Minute

// maybeSweepParents runs sweepParents at most every sweepEvery, with the
// task IDs that have a container (live).
func (e *Executor) maybeSweepParents(ctx context.Context, live map[int64]bool) {
	e.mu.Lock()
	due := time.Since(e.lastSweep) >= sweepEvery
	if due {
		e.lastSweep = time.Now()
		for id := range e.starting {
			live[id] = true
		}
	}
	e.mu.Unlock()
	if due && e.cgroupfsDriver(ctx) {
		e.sweepParents(live)
	}
}

// sweepParents removes the cgroup parents of this runner's tasks that no
// longer have a container (removed by hand, or after a runner died before
// it forgot them). They are empty: a parent still in use is not removed
// (rmdir fails on a cgroup with children).
func (e *Executor) sweepParents(live map[int64]bool) {
	dir := filepath.Join(cgroupRoot, "cpuacct", taskParentDir)
	if _, err := os.Stat(filepath.Join(cgroupRoot, "cgroup.controllers")); err == nil {
		dir = filepath.Join(cgroupRoot, taskParentDir)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return // none made yet
	}
	prefix := unsafeCgroupChars().ReplaceAllString(e.cfg.RunnerName, "_") + "-"
	for _, ent := range entries {
		rest, ok := strings.CutPrefix(ent.Name(), prefix)
		id, err := strconv.ParseInt(rest, 10, 64)
		if !ok || err != nil || !ent.IsDir() || live[id] {
			continue
		}
		if err := removeParent(taskParentDir + "/" + ent.Name()); err != nil {
			e.log.Debug("remove a task's cgroup parent left behind", keyTaskID, id, keyErr, err)
		}
	}
}
