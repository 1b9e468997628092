package docker

// Stopping and starting a VPS (issue 18). The leader first has the runner
// mark the VPS stopped (<StateDir>/<id>.stopped, in the runner's private
// state directory, never a place a task can write), commits the stop, then
// has it stop the container with `docker stop`: the restart policy
// (unless-stopped) keeps it stopped across Docker and machine restarts, and
// its writable layer (the VPS's disk) stays. A marked container is never
// removed: Kill stops it gracefully instead (the leader's reconciliation
// kills a task it believes stopped that the runner still reports running),
// and once it no longer runs List skips it, so the runner neither reports
// it nor forgets it. Start with Spec.Restart starts the marked container
// again, waits for its sshd like a first start, and drops the mark.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/docker/docker/api/types/container"

	"github.com/hakuriver/hakuriver-ha/ops/environment"
	"github.com/hakuriver/hakuriver-ha/runner/executor"
)

var _ executor.VPSKeeper = (*Executor)(nil)

// vpsStopTimeout is how long `docker stop` lets sshd and the VPS's
// processes end on SIGTERM before SIGKILL.
const vpsStopTimeout = 10

// stoppedPath is the mark of a stopped VPS.
func (e *Executor) stoppedPath(id int64) string {
	return filepath.Join(e.cfg.StateDir, strconv.FormatInt(id, 10)+".stopped")
}

// isStopped reports whether VPS id carries the stopped mark.
func (e *Executor) isStopped(id int64) bool {
	_, err := os.Lstat(e.stoppedPath(id))
	return err == nil
}

// inspectVPS returns VPS id's container; executor.ErrVPSGone when there is
// none, an error when the container is not this runner's VPS.
func (e *Executor) inspectVPS(ctx context.Context, id int64) (container.InspectResponse, error) {
	ins, err := e.cli.ContainerInspect(ctx, VPSContainerName(id))
	if err != nil {
		if err = translate(err); errors.Is(err, environment.ErrNotFound) {
			return ins, fmt.Errorf("VPS %d: %w", id, executor.ErrVPSGone)
		}
		return ins, fmt.Errorf("inspect VPS %d: %w", id, err)
	}
	if ins.Config == nil || ins.State == nil || ins.Config.Labels[LabelRunner] != e.cfg.RunnerName ||
		ins.Config.Labels[LabelTaskType] != executor.TaskVPS {
		return ins, fmt.Errorf("%w: container %s is not a VPS of runner %s", environment.ErrConflict, VPSContainerName(id), e.cfg.RunnerName)
	}
	return ins, nil
}

// MarkVPSStopped writes VPS id's stopped mark (see executor.VPSKeeper).
func (e *Executor) MarkVPSStopped(ctx context.Context, id int64) error {
	if _, err := e.inspectVPS(ctx, id); err != nil {
		return err
	}
	return e.mark(id)
}

func (e *Executor) mark(id int64) error {
	if err := os.WriteFile(e.stoppedPath(id), []byte(time.Now().UTC().Format(time.RFC3339Nano)+"\n"), 0o600); err != nil {
		return fmt.Errorf("mark VPS %d stopped: %w", id, err)
	}
	return nil
}

// UnmarkVPSStopped removes VPS id's stopped mark while its container still
// runs (a stop that was not committed); a VPS whose container no longer
// runs keeps it.
func (e *Executor) UnmarkVPSStopped(ctx context.Context, id int64) error {
	ins, err := e.inspectVPS(ctx, id)
	if err != nil {
		return err
	}
	if !ins.State.Running {
		return fmt.Errorf("%w: VPS %d is stopped already", environment.ErrConflict, id)
	}
	if err := os.Remove(e.stoppedPath(id)); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("unmark VPS %d: %w", id, err)
	}
	return nil
}

// StopVPS marks VPS id stopped and stops its container (a paused one is
// thawed first). Stopping a stopped VPS is a no-op.
func (e *Executor) StopVPS(ctx context.Context, id int64) error {
	ins, err := e.inspectVPS(ctx, id)
	if err != nil {
		return err
	}
	if err := e.mark(id); err != nil {
		return err
	}
	if !ins.State.Running {
		e.untrack(id)
		return nil
	}
	if ins.State.Paused {
		if err := e.cli.ContainerUnpause(ctx, ins.ID); err != nil {
			e.log.Debug("unpause VPS before stop", keyTaskID, id, keyErr, err)
		}
	}
	timeout := vpsStopTimeout
	if err := e.cli.ContainerStop(ctx, ins.ID, container.StopOptions{Timeout: &timeout}); err != nil {
		return fmt.Errorf("stop VPS %d: %w", id, translate(err))
	}
	e.untrack(id)
	e.log.Info("VPS container stopped and kept", keyTaskID, id, keyContainer, VPSContainerName(id))
	return nil
}

// untrack drops a stopped VPS from the tracked tasks and its log state, so
// that a later start tracks it afresh.
func (e *Executor) untrack(id int64) {
	e.mu.Lock()
	delete(e.tasks, id)
	e.mu.Unlock()
	if err := os.Remove(e.statePath(id)); err != nil && !os.IsNotExist(err) {
		e.log.Warn("remove the state of a stopped VPS", keyTaskID, id, keyErr, err)
	}
}

// VPSState says what this runner holds of VPS id's container.
func (e *Executor) VPSState(ctx context.Context, id int64) (executor.VPSState, error) {
	ins, err := e.inspectVPS(ctx, id)
	switch {
	case errors.Is(err, executor.ErrVPSGone):
		return executor.VPSAbsent, nil
	case err != nil:
		return "", err
	case e.isStopped(id) && !ins.State.Running:
		return executor.VPSStopped, nil
	}
	return executor.VPSActive, nil
}

// RemoveStoppedVPS removes a stopped VPS's container and its mark.
func (e *Executor) RemoveStoppedVPS(ctx context.Context, id int64) error {
	ins, err := e.inspectVPS(ctx, id)
	if err != nil && !errors.Is(err, executor.ErrVPSGone) {
		return err
	}
	if err == nil {
		if !e.isStopped(id) {
			return fmt.Errorf("%w: VPS %d is not stopped", environment.ErrConflict, id)
		}
		if err := e.cli.ContainerRemove(ctx, ins.ID, container.RemoveOptions{Force: true}); err != nil && !errors.Is(translate(err), environment.ErrNotFound) {
			return fmt.Errorf("remove VPS %d: %w", id, translate(err))
		}
	}
	if err := os.Remove(e.stoppedPath(id)); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("remove the stopped mark of VPS %d: %w", id, err)
	}
	e.untrack(id)
	e.log.Info("stopped VPS removed", keyTaskID, id)
	return nil
}

// restartVPS starts a stopped VPS's container again and waits for its
// sshd; it never creates a container. On failure the container is stopped
// again and keeps its mark.
func (e *Executor) restartVPS(ctx context.Context, s executor.Spec) error {
	ins, err := e.inspectVPS(ctx, s.TaskID)
	if err != nil {
		return err
	}
	name := VPSContainerName(s.TaskID)
	if !ins.State.Running {
		if err := e.cli.ContainerStart(ctx, ins.ID, container.StartOptions{}); err != nil {
			return fmt.Errorf("start VPS container %s: %w", name, translate(err))
		}
	}
	port, err := e.awaitSSHD(ctx, ins.ID, name)
	if err != nil {
		timeout := vpsStopTimeout
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if serr := e.cli.ContainerStop(sctx, ins.ID, container.StopOptions{Timeout: &timeout}); serr != nil {
			err = errors.Join(err, fmt.Errorf("stop it again: %w", translate(serr)))
		}
		return err
	}
	if err := os.Remove(e.stoppedPath(s.TaskID)); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("unmark VPS %d: %w", s.TaskID, err)
	}
	e.track(s.TaskID, ins.Config.Labels, time.Now())
	e.log.Info("VPS container started again", keyTaskID, s.TaskID, keyContainer, name, "ssh_port", port)
	return nil
}

// SnapshotVPS commits VPS id's container (running, paused or stopped; a
// running one is paused during the commit) into environment env's image and
// saves it as a new tarball version in the shared tarball directory, like
// create-tar does for an environment, then keeps the newest keep versions
// of env (at least 1). cluster labels the image, so that this engine's
// runners use it without a load; version is newer than after and than the
// tarballs already there.
func (e *Executor) SnapshotVPS(ctx context.Context, id int64, env, cluster string, after int64, keep int) (environment.Tarball, error) {
	if err := environment.CheckName(env); err != nil {
		return environment.Tarball{}, err
	}
	ins, err := e.inspectVPS(ctx, id)
	if err != nil {
		return environment.Tarball{}, err
	}
	m := &Manager{cfg: e.cfg, cli: e.cli, log: e.log, cluster: cluster}
	start := time.Now()
	tb, pruned, err := m.commitTarball(ctx, ins, env, after, keep, func(environment.Progress) {})
	if err != nil {
		return environment.Tarball{}, err
	}
	e.log.Info("VPS snapshot saved", keyTaskID, id, keyEnv, env, keyTarball, tb.Path, keyBytes, tb.Size, keyVersion, tb.Version,
		"pruned", pruned, keyTook, time.Since(start).Round(time.Millisecond))
	return tb, nil
}
