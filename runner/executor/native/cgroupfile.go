package native

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"

	"github.com/hakuriver/hakuriver-ha/runner/executor/cgacct"
)

// Reading and writing cgroup control files. A write never follows a
// symlink and lands only on a cgroup filesystem.

// writeCgroupFile writes val to a cgroup control file. It never follows a
// symlink, neither as the file nor as its directory, and never creates or
// truncates anything: cgroup control files exist and take a write whole.
func writeCgroupFile(path, val string) error {
	if err := noSymlinkDir(filepath.Dir(path)); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := onCgroupFS(f); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	_, err = f.WriteString(val)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %q to %s: %w", val, path, err)
	}
	return nil
}

// Filesystem magic numbers of cgroup v1 and v2 (statfs f_type).
const (
	cgroupSuperMagic  = 0x27e0eb
	cgroup2SuperMagic = 0x63677270
)

// onCgroupFS returns an error unless f is on a cgroup filesystem: a
// control file is never a hard link to some other file.
func onCgroupFS(f *os.File) error {
	var st syscall.Statfs_t
	if err := syscall.Fstatfs(int(f.Fd()), &st); err != nil {
		return fmt.Errorf("statfs: %w", err)
	}
	if st.Type != cgroupSuperMagic && st.Type != cgroup2SuperMagic {
		return fmt.Errorf("not on a cgroup filesystem (type %#x): refusing to write it", st.Type)
	}
	return nil
}

// noSymlinkDir returns an error unless dir is a directory itself (Lstat),
// not a symlink to one.
func noSymlinkDir(dir string) error {
	info, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	if !info.IsDir() {
		return fmt.Errorf("%s is not a directory (mode %s): refusing to follow it", dir, info.Mode().Type())
	}
	return nil
}

// readTrim reads a small file without surrounding white space.
func readTrim(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	return string(bytes.TrimSpace(b)), nil
}

// readNoFollow reads a file whose last path element must not be a symlink.
func readNoFollow(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}

// readKeyed reads the value of key from a "key value" per line file
// (cgacct.ReadKeyed).
func readKeyed(path, key string) (uint64, bool) {
	n, ok := cgacct.ReadKeyed(path, key)
	return uint64(n), ok
}
