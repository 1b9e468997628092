package native

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/hakuriver/hakuriver-ha/runner/executor"
)

// defaultPath is the PATH of a task whose Env does not set one.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// taskCommand is a task's process, ready to start.
type taskCommand struct {
	cmd *exec.Cmd
	// files are the output files, to close once the process started.
	files []*os.File
}

// close releases the shim's copies of the output files.
func (c *taskCommand) close() {
	for _, f := range c.files {
		_ = f.Close() // the child holds its own descriptors
	}
}

// buildCommand prepares s's process: its own process group, the user's
// credentials, a minimal environment (PATH, HOME, USER, LOGNAME and
// CUDA_VISIBLE_DEVICES for s.GPUs) under s.Env, the working directory ("/"
// when empty) and output files appended to (parent directories created).
func buildCommand(s executor.Spec) (*taskCommand, error) {
	env := map[string]string{"PATH": defaultPath, "HOME": "/"}
	var cred *syscall.Credential
	if s.User != "" {
		id, err := executor.LookupUser(s.User)
		if err != nil {
			return nil, err
		}
		cred = &syscall.Credential{Uid: id.UID, Gid: id.GID, Groups: id.Groups}
		env["HOME"], env["USER"], env["LOGNAME"] = id.Home, id.Name, id.Name
	} else if u, err := user.Current(); err == nil {
		env["HOME"], env["USER"], env["LOGNAME"] = u.HomeDir, u.Username, u.Username
	}
	if len(s.GPUs) > 0 {
		env["CUDA_VISIBLE_DEVICES"] = formatList(s.GPUs)
	}
	maps.Copy(env, s.Env)
	dir := s.WorkDir
	if dir == "" {
		dir = "/"
	}
	path, err := lookPath(s.Command, env["PATH"])
	if err != nil {
		return nil, err
	}
	tc := &taskCommand{cmd: &exec.Cmd{
		Path: path,
		Args: append([]string{s.Command}, s.Args...),
		Env:  envList(env),
		Dir:  dir,
		// Its own session (and so its own process group, led by it): no
		// process of the task can join the supervisor's process group,
		// which the kill path never signals.
		SysProcAttr: &syscall.SysProcAttr{
			Setsid:     true,
			Credential: cred,
		},
	}}
	for _, o := range []struct {
		path string
		dst  *io.Writer
	}{{s.Stdout, &tc.cmd.Stdout}, {s.Stderr, &tc.cmd.Stderr}} {
		if o.path == "" {
			continue // exec.Cmd connects a nil writer to /dev/null
		}
		f, err := openOutput(o.path, cred)
		if err != nil {
			tc.close()
			return nil, err
		}
		tc.files = append(tc.files, f)
		*o.dst = f
	}
	return tc, nil
}

// envList turns env into sorted KEY=VALUE pairs.
func envList(env map[string]string) []string {
	out := make([]string, 0, len(env))
	for _, k := range slices.Sorted(maps.Keys(env)) {
		out = append(out, k+"="+env[k])
	}
	return out
}

// lookPath resolves a command without a slash in the task's PATH (not the
// shim's); a command with a slash is used as is, relative to the working
// directory.
func lookPath(command, pathEnv string) (string, error) {
	if command == "" {
		return "", errors.New("look up command: empty command")
	}
	if strings.Contains(command, "/") {
		return command, nil
	}
	for _, d := range filepath.SplitList(pathEnv) {
		if d == "" {
			d = "."
		}
		p := filepath.Join(d, command)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("look up command %q: %w in PATH %q", command, fs.ErrNotExist, pathEnv)
}

// openOutput opens path for appending, creating it and its parent
// directories; a file it creates belongs to the task's user.
func openOutput(path string, cred *syscall.Credential) (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("create output directory: %w", err)
	}
	_, statErr := os.Stat(path)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open output: %w", err)
	}
	if cred != nil && errors.Is(statErr, fs.ErrNotExist) {
		if err := f.Chown(int(cred.Uid), int(cred.Gid)); err != nil {
			_ = f.Close() // the chown error is the one to report
			return nil, fmt.Errorf("chown output %s: %w", path, err)
		}
	}
	return f, nil
}
