package docker

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/docker/docker/api/types/mount"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/ops/environment"
)

// mounts returns the task's bind mounts: /shared, /local_temp and the
// additional "host:container[:ro]" mounts.
func (e *Executor) mounts(extra []string) ([]mount.Mount, error) {
	out := []mount.Mount{
		{Type: mount.TypeBind, Source: filepath.Join(e.cfg.SharedDir, "shared_data"), Target: sharedMount},
		{Type: mount.TypeBind, Source: e.cfg.LocalTempDir, Target: localTempMount},
	}
	for _, m := range extra {
		pm, err := api.ParseMount(m) // the host's parser, so both accept the same mounts
		if err != nil {
			return nil, fmt.Errorf("%w: %w", environment.ErrInvalid, err)
		}
		src, err := e.mountSource(pm.Source)
		if err != nil {
			return nil, fmt.Errorf("%w: mount %q: %w", environment.ErrInvalid, m, err)
		}
		out = append(out, mount.Mount{Type: mount.TypeBind, Source: src, Target: pm.Target, ReadOnly: pm.ReadOnly})
	}
	return out, nil
}

// mountSource checks host path p of a task's bind mount and returns the
// path to mount: with tasks_privileged anything that exists, as given;
// otherwise p with its symlinks resolved (so that the checked path is the
// mounted one), and only when it lies under <SharedDir>/shared_data,
// LocalTempDir or a configured additional mount source. Whatever the
// allowlist says, an unprivileged task never mounts the shared-dir root or
// anything above it, nor anything else inside it (the environment tarballs
// in ContainerDir, other tasks' logs in task_outputs and task_errors): a
// task that could write there could replace the image every later task of
// an environment runs, or forge another task's output.
func (e *Executor) mountSource(p string) (string, error) {
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("host path: %w", err)
	}
	if e.cfg.AllowPrivileged {
		return p, nil
	}
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		return "", fmt.Errorf("host path: %w", err)
	}
	shared := resolved(e.cfg.SharedDir)
	switch {
	case within(real, filepath.Join(shared, "shared_data")):
		return real, nil
	case within(shared, real):
		return "", fmt.Errorf("host path %s would expose the whole shared_dir %s (environment tarballs, every task's logs); mount a directory under %s instead",
			real, shared, filepath.Join(shared, "shared_data"))
	case within(real, shared):
		return "", fmt.Errorf("host path %s is inside shared_dir %s but outside its shared_data (environment tarballs and task logs are not for tasks)", real, shared)
	}
	for _, base := range append([]string{e.cfg.LocalTempDir}, e.cfg.AllowedMountSources...) {
		if base != "" && within(real, resolved(base)) {
			return real, nil
		}
	}
	return "", fmt.Errorf("host path %s is outside %s, local_temp_dir and the configured additional_mounts (allowed only where tasks_privileged is on)",
		real, filepath.Join(shared, "shared_data"))
}

// resolved is p with its symlinks resolved, or p itself when that fails.
func resolved(p string) string {
	if r, err := filepath.EvalSymlinks(p); err == nil {
		return r
	}
	return filepath.Clean(p)
}

// within reports whether p is base or lies under it (both clean and
// absolute).
func within(p, base string) bool {
	return p == base || strings.HasPrefix(p, strings.TrimSuffix(base, "/")+"/")
}
