// Package statedir is a runner's private state directory
// ([paths] runner_state_dir): the native executor's task records, the
// Docker executor's log positions, the tombstones of finished tasks and the
// runner's installation ID. No task can see it: it is never mounted into a
// task, never inside local_temp_dir or shared_dir, has mode 0700, and one
// runner at a time holds it under an exclusive flock.
package statedir

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Names inside the state directory.
const (
	// lockName is the lock file, holding the PID of the runner that holds it.
	lockName = "lock"
	// idName holds the runner installation's random ID.
	idName = "runner-id"
	// NativeTasks is the native executor's directory of task records.
	NativeTasks = "tasks"
	// DockerTasks is the Docker executor's directory of task state files.
	DockerTasks = "docker-tasks"
	// Finished holds one tombstone per task whose end was acknowledged.
	Finished = "finished"
	// Attempts holds, per tracked task, the attempt number it runs.
	Attempts = "attempts"
)

// Mode is the state directory's permission bits.
const Mode fs.FileMode = 0o700

// Area is a directory tasks can reach, named by its config key
// ("local_temp_dir", "shared_dir"): the state directory must be neither
// inside it nor contain it.
type Area struct {
	Key  string
	Path string
}

// Dir is an open runner state directory whose lock this process holds
// until Close. Its methods are safe for concurrent use.
type Dir struct {
	path string
	lock *os.File
}

// Open creates path (mode 0700) when missing, tightens its mode to 0700
// when wider, checks that this user owns it and that it is not inside any
// of areas nor contains one, and takes its lock (LOCK_EX|LOCK_NB). A
// directory another runner holds gives an error matching ErrLocked that
// names the directory and, when readable, the holder's PID.
func Open(path string, areas ...Area) (*Dir, error) {
	if path == "" {
		return nil, errors.New("runner_state_dir: must not be empty")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("runner_state_dir %q: %w", path, err)
	}
	if err := CheckPlacement(abs, areas...); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(abs, Mode); err != nil {
		return nil, fmt.Errorf("create runner_state_dir: %w", err)
	}
	if err := ensureOwnMode(abs); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(abs, lockName), os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open runner_state_dir lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		pid := readPID(f)
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, lockedError(abs, pid)
		}
		return nil, fmt.Errorf("lock runner_state_dir %s: %w", abs, err)
	}
	d := &Dir{path: abs, lock: f}
	if err := writePID(f, os.Getpid()); err != nil {
		d.Close() //nolint:errcheck // the write error is the one to report
		return nil, fmt.Errorf("record the lock holder in %s: %w", abs, err)
	}
	return d, nil
}

// lockedError describes a state directory someone else holds.
func lockedError(dir string, pid int) error {
	holder := "another runner"
	if pid > 0 {
		holder += " (pid " + strconv.Itoa(pid) + ")"
	}
	return fmt.Errorf("runner_state_dir %s is locked by %s: %w; give each runner its own --runner-state-dir", dir, holder, ErrLocked)
}

// ensureOwnMode checks that dir is a directory this user owns, not a
// symlink, and sets its mode to 0700 when it is wider.
func ensureOwnMode(dir string) error {
	info, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("runner_state_dir: %w", err)
	}
	if !info.IsDir() {
		return fmt.Errorf("runner_state_dir %s: not a directory", dir)
	}
	st, ok := info.Sys().(*syscall.Stat_t)
	if ok && int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("runner_state_dir %s: owned by uid %d, not by this runner's uid %d: chown it or pick another directory", dir, st.Uid, os.Geteuid())
	}
	if info.Mode().Perm() != Mode {
		if err := os.Chmod(dir, Mode); err != nil {
			return fmt.Errorf("runner_state_dir %s: set mode 0700: %w", dir, err)
		}
	}
	return nil
}

// CheckPlacement returns an error naming the keys when dir equals, is
// inside, or contains any of areas. Paths are compared both as given
// (made absolute) and with symlinks resolved as far as they exist.
func CheckPlacement(dir string, areas ...Area) error {
	var errs []error
	for _, a := range areas {
		if a.Path == "" {
			continue
		}
		if overlaps(dir, a.Path) {
			errs = append(errs, fmt.Errorf("runner_state_dir %s and %s %s overlap: the runner's state must be outside every directory a task can reach (neither equal to, inside, nor containing %s)", dir, a.Key, a.Path, a.Key))
		}
	}
	return errors.Join(errs...)
}

// overlaps reports whether a and b are the same directory or one is inside
// the other.
func overlaps(a, b string) bool {
	for _, x := range forms(a) {
		for _, y := range forms(b) {
			if within(x, y) || within(y, x) {
				return true
			}
		}
	}
	return false
}

// forms returns p absolute and clean, and with symlinks resolved.
func forms(p string) []string {
	abs, err := filepath.Abs(p)
	if err != nil {
		abs = filepath.Clean(p)
	}
	return []string{abs, resolve(abs)}
}

// resolve evaluates the symlinks of the longest existing prefix of p.
func resolve(p string) string {
	rest := ""
	cur := p
	for {
		if r, err := filepath.EvalSymlinks(cur); err == nil {
			return filepath.Join(r, rest)
		}
		up := filepath.Dir(cur)
		if up == cur {
			return p
		}
		rest = filepath.Join(filepath.Base(cur), rest)
		cur = up
	}
}

// within reports whether p is dir or inside it.
func within(p, dir string) bool {
	if p == dir {
		return true
	}
	return strings.HasPrefix(p, strings.TrimSuffix(dir, "/")+"/")
}

// Path returns the directory's absolute path.
func (d *Dir) Path() string { return d.path }

// Join returns a path inside the directory.
func (d *Dir) Join(elem ...string) string {
	return filepath.Join(append([]string{d.path}, elem...)...)
}

// Close releases the lock. The directory stays.
func (d *Dir) Close() error {
	if d.lock == nil {
		return nil
	}
	err := d.lock.Close() // closing the only descriptor releases the flock
	d.lock = nil
	if err != nil {
		return fmt.Errorf("release runner_state_dir lock: %w", err)
	}
	return nil
}

// InstanceID returns the random ID of this runner installation, creating
// it on first use; it survives restarts. It is read from the state
// directory only (never from local_temp_dir).
func (d *Dir) InstanceID() (string, error) {
	path := d.Join(idName)
	b, err := readSmall(path)
	if err == nil {
		if id := strings.TrimSpace(string(b)); validID(id) {
			return id, nil
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("read runner id: %w", err)
	}
	buf := make([]byte, 6)
	if _, err := rand.Read(buf); err != nil {
		return "", fmt.Errorf("runner id: %w", err)
	}
	id := hex.EncodeToString(buf)
	if err := os.WriteFile(path, []byte(id+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write runner id: %w", err)
	}
	return id, nil
}

// validID reports whether id looks like an ID InstanceID wrote.
func validID(id string) bool {
	if len(id) == 0 || len(id) > 64 {
		return false
	}
	_, err := hex.DecodeString(id)
	return err == nil
}

// readSmall reads a small regular file without following a symlink.
func readSmall(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b := make([]byte, 128)
	n, err := f.Read(b)
	if err != nil && n == 0 {
		return nil, err
	}
	return b[:n], nil
}

// readPID reads the PID recorded in a lock file, 0 when unreadable.
func readPID(f *os.File) int {
	b := make([]byte, 32)
	n, _ := f.ReadAt(b, 0) //nolint:errcheck // a short or failed read gives 0
	pid, err := strconv.Atoi(strings.TrimSpace(string(b[:n])))
	if err != nil || pid <= 0 {
		return 0
	}
	return pid
}

// writePID replaces the lock file's content with pid.
func writePID(f *os.File, pid int) error {
	if err := f.Truncate(0); err != nil {
		return err
	}
	_, err := f.WriteAt([]byte(strconv.Itoa(pid)+"\n"), 0)
	return err
}

// Holder reports whether some process holds the lock of the state
// directory at path, and the PID it recorded (0 when unknown). It never
// creates the directory or its lock file; a missing one is not held. A
// probe that gets the lock releases it at once.
func Holder(path string) (held bool, pid int, err error) {
	f, err := os.OpenFile(filepath.Join(path, lockName), os.O_RDWR|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return false, 0, nil
	}
	if err != nil {
		return false, 0, fmt.Errorf("open lock: %w", err)
	}
	defer f.Close()
	err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return true, readPID(f), nil
	}
	if err != nil {
		return false, 0, fmt.Errorf("probe lock: %w", err)
	}
	return false, 0, nil // closing f releases the probe's lock
}
