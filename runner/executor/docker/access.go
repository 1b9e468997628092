package docker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strconv"
	"strings"

	"github.com/docker/docker/api/types/container"

	"github.com/hakuriver/hakuriver-ha/ops/environment"
	"github.com/hakuriver/hakuriver-ha/runner/executor"
	"github.com/hakuriver/hakuriver-ha/runner/filecopy"
)

// Reaching into a running task for `hakuriver forward` and `hakuriver
// cp`: no port is published and no docker CLI is used; ports are dialled
// at the container's own address, files go through the Engine's archive
// API.

// running returns task id's container, which must be running.
func (e *Executor) running(ctx context.Context, id int64) (container.InspectResponse, error) {
	ins, err := e.inspectTask(ctx, id)
	if err != nil {
		return ins, err
	}
	if ins.State == nil || !ins.State.Running {
		return ins, fmt.Errorf("task %d: %w: its container is not running", id, executor.ErrNotRunning)
	}
	return ins, nil
}

// TaskAddress returns the IP address at which task id's ports are
// reached from this runner: loopback for a container on the host's
// network, else its address on its (first) network.
func (e *Executor) TaskAddress(ctx context.Context, id int64) (string, error) {
	ins, err := e.running(ctx, id)
	if err != nil {
		return "", err
	}
	if ins.HostConfig != nil && ins.HostConfig.NetworkMode.IsHost() {
		return "127.0.0.1", nil
	}
	if ins.NetworkSettings != nil {
		for _, n := range ins.NetworkSettings.Networks {
			if n != nil && n.IPAddress != "" {
				return n.IPAddress, nil
			}
		}
	}
	return "", fmt.Errorf("task %d: its container has no IP address (network mode %q)", id, ins.HostConfig.NetworkMode)
}

// containerPath makes p absolute: a relative path is taken from the
// container's working directory.
func containerPath(ins container.InspectResponse, p string) string {
	if path.IsAbs(p) {
		return path.Clean(p)
	}
	wd := "/"
	if ins.Config != nil && ins.Config.WorkingDir != "" {
		wd = ins.Config.WorkingDir
	}
	return path.Join(wd, p)
}

// CopyTo writes the tar stream r into task id's container at p (into p
// when it is a directory, else as p), checked by filecopy's rules within
// lim; the files belong to the container's user when it runs as a
// numeric UID:GID, else to root.
func (e *Executor) CopyTo(ctx context.Context, id int64, p string, r io.Reader, lim filecopy.Limits) error {
	ins, err := e.running(ctx, id)
	if err != nil {
		return err
	}
	p = containerPath(ins, p)
	st, err := e.cli.ContainerStatPath(ctx, ins.ID, p)
	isDir := err == nil && st.Mode.IsDir()
	if err != nil && !isNotFound(err) {
		return fmt.Errorf("stat %s in task %d: %w", p, id, err)
	}
	dir, rename := filecopy.Destination(p, isDir)
	owner := &filecopy.Owner{}
	if ins.Config != nil {
		owner = containerOwner(ins.Config.User)
	}
	pr, pw := io.Pipe()
	rewritten := make(chan error, 1)
	go func() {
		err := filecopy.Rewrite(pw, r, lim, rename, owner)
		pw.CloseWithError(err)
		rewritten <- err
	}()
	err = e.cli.CopyToContainer(ctx, ins.ID, dir, pr, container.CopyToContainerOptions{})
	pr.CloseWithError(errors.New("copy ended"))
	if rerr := <-rewritten; rerr != nil && errors.Is(rerr, filecopy.ErrRefused) {
		// The rewrite's own refusal says more than the engine's error.
		return fmt.Errorf("copy into %s in task %d: %w", p, id, rerr)
	}
	if isNotFound(err) {
		return fmt.Errorf("copy into %s in task %d: %w: %s", p, id, executor.ErrNoSuchPath, dir)
	}
	if err != nil {
		return fmt.Errorf("copy into %s in task %d: %w", p, id, err)
	}
	return nil
}

// isNotFound reports whether a path lookup found nothing.
func isNotFound(err error) bool {
	return errors.Is(translate(err), environment.ErrNotFound)
}

// containerOwner reads a container's "UID:GID" user; anything else
// (empty, a name) gives root.
func containerOwner(u string) *filecopy.Owner {
	uid, gid, ok := strings.Cut(u, ":")
	if !ok {
		gid = uid
	}
	o := &filecopy.Owner{}
	if n, err := strconv.Atoi(uid); err == nil && n >= 0 {
		o.UID = n
		if g, err := strconv.Atoi(gid); err == nil && g >= 0 {
			o.GID = g
		}
	}
	return o
}

// CopyFrom returns a tar stream of p in task id's container (a file or a
// directory tree) whose top-level entry is p's base name.
func (e *Executor) CopyFrom(ctx context.Context, id int64, p string) (io.ReadCloser, error) {
	ins, err := e.running(ctx, id)
	if err != nil {
		return nil, err
	}
	p = containerPath(ins, p)
	rc, _, err := e.cli.CopyFromContainer(ctx, ins.ID, p)
	if err != nil {
		if isNotFound(err) {
			return nil, fmt.Errorf("%s in task %d: %w", p, id, executor.ErrNoSuchPath)
		}
		return nil, fmt.Errorf("copy %s from task %d: %w", p, id, err)
	}
	return rc, nil
}

// TaskRoot tells how to reach task id's files as its own user: the
// container's init process (its /proc/PID/root is the container's file
// system with its mounts), the user it runs as ("UID:GID", "" for the
// image's user), its supplementary groups and its working directory.
// A runner copies into and out of a container that runs as someone other
// than root through that root as that user, never through the Engine
// (which would read and write as root, bind mounts included).
func (e *Executor) TaskRoot(ctx context.Context, id int64) (executor.TaskRoot, error) {
	ins, err := e.running(ctx, id)
	if err != nil {
		return executor.TaskRoot{}, err
	}
	tr := executor.TaskRoot{WorkDir: containerPath(ins, ".")}
	if ins.State != nil {
		tr.PID = ins.State.Pid
	}
	if ins.Config != nil {
		tr.User = ins.Config.User
	}
	if ins.HostConfig != nil {
		tr.Groups = append(tr.Groups, ins.HostConfig.GroupAdd...)
	}
	return tr, nil
}
