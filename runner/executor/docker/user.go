package docker

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"

	"github.com/docker/docker/api/types/container"

	"github.com/hakuriver/hakuriver-ha/runner/executor"
)

// taskUser sets the user a command task's container runs as from s.User:
// "" keeps the image's own user (only when root is allowed for the task:
// see executor.TaskUser); anyone else runs as "UID:GID" (root as
// "0:0"), resolved on this runner, since the image's /etc/passwd knows
// nothing of the cluster's accounts, with their supplementary groups
// added. It returns the resolved identity (nil for the image's user).
//
// VPS containers never get here: they run as root, because their sshd
// needs it (vpsConfig); their owner logs in as root inside the container,
// whatever their run_as_root policy: that root is confined to the
// container, which is privileged or gets extra mounts only with the
// matching policies (checked at submit).
func taskUser(s executor.Spec, cfg *container.Config, hc *container.HostConfig) (*executor.Identity, error) {
	if s.User == "" {
		return nil, nil
	}
	id, err := executor.LookupUser(s.User)
	if err != nil {
		return nil, fmt.Errorf("task %d runs as %q: %w", s.TaskID, s.User, err)
	}
	cfg.User = strconv.FormatUint(uint64(id.UID), 10) + ":" + strconv.FormatUint(uint64(id.GID), 10)
	for _, g := range id.Groups {
		if g != id.GID {
			hc.GroupAdd = append(hc.GroupAdd, strconv.FormatUint(uint64(g), 10))
		}
	}
	return &id, nil
}

// prepareOutput checks that an output file can be opened for appending,
// creating it (and its directory); a file it creates belongs to id when
// id is set.
func prepareOutput(path string, id *executor.Identity) error {
	_, statErr := os.Stat(path)
	f, err := openOutput(path)
	if err != nil {
		return err
	}
	defer f.Close() //nolint:errcheck // only checking it can be opened
	if path == "" || id == nil || id.Root() || !errors.Is(statErr, fs.ErrNotExist) {
		return nil
	}
	if err := os.Chown(path, int(id.UID), int(id.GID)); err != nil {
		return fmt.Errorf("chown output %s: %w", path, err)
	}
	return nil
}
