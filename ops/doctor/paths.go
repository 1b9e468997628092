package doctor

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// Free-disk thresholds, as fractions of the filesystem's size.
const (
	diskWarnFraction = 0.10
	diskFailFraction = 0.02
	// diskWarnBytes warns on a small filesystem whose share free is fine.
	diskWarnBytes = 1 << 30
)

// checkPath checks that p exists with the right type and that this process's
// user can read it, or write it when p.Write: a directory by creating and
// removing a probe file in it, a file by opening it for appending (never
// creating it).
func (l Local) checkPath(p Path) Check {
	name := "path " + p.Name
	info, err := os.Stat(p.Path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return l.missingPath(name, p)
	case err != nil:
		return failCheck(name, fmt.Sprintf("%s: %v", p.Path, err), permCause(err, p.Path))
	case p.Dir && !info.IsDir():
		return failCheck(name, fmt.Sprintf("%s is a %s, not a directory", p.Path, kind(info)),
			"something else sits where the directory should be: move it away and create the directory")
	case !p.Dir && info.IsDir():
		return failCheck(name, p.Path+" is a directory, not a file", "point the setting at a file")
	}
	desc := fmt.Sprintf("%s %s %s:%s", p.Path, info.Mode(), ownerName(info), groupOf(info))
	if p.Dir {
		err = probeDir(p.Path, p.Write)
	} else {
		err = probeFile(p.Path, p.Write)
	}
	if err != nil {
		return failCheck(name, fmt.Sprintf("%s: %v", desc, err), permCause(err, p.Path))
	}
	if p.Write {
		return okCheck(name, desc+", writable")
	}
	return okCheck(name, desc+", readable")
}

// missingPath judges a path that does not exist.
func (l Local) missingPath(name string, p Path) Check {
	parent := nearestExisting(filepath.Dir(p.Path))
	if !p.Created {
		if !p.Dir && p.Write && probeDir(parent, true) == nil {
			return okCheck(name, p.Path+" does not exist yet; "+parent+" is writable, so it can be created")
		}
		return failCheck(name, p.Path+": does not exist", "create it (with the right owner) or fix the configured path")
	}
	if err := probeDir(parent, true); err != nil {
		return failCheck(name, fmt.Sprintf("%s does not exist and %s is not writable: %v", p.Path, parent, err), permCause(err, parent))
	}
	return okCheck(name, p.Path+" does not exist yet; created when first needed ("+parent+" is writable)")
}

// nearestExisting returns dir or its closest existing ancestor.
func nearestExisting(dir string) string {
	for {
		if _, err := os.Stat(dir); err == nil {
			return dir
		}
		up := filepath.Dir(dir)
		if up == dir {
			return dir
		}
		dir = up
	}
}

// probeDir lists dir and, when write, creates and removes a file in it.
func probeDir(dir string, write bool) error {
	f, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open: %w", err)
	}
	_, err = f.Readdirnames(1)
	f.Close()
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("list: %w", err)
	}
	if !write {
		return nil
	}
	tmp, err := os.CreateTemp(dir, ".hakuriver-doctor-w-*")
	if err != nil {
		return fmt.Errorf("create a file: %w", err)
	}
	_, werr := tmp.WriteString("hakuriver doctor\n")
	cerr := tmp.Close()
	rerr := os.Remove(tmp.Name())
	if err := errors.Join(werr, cerr); err != nil {
		return fmt.Errorf("write a file: %w", err)
	}
	if rerr != nil {
		return fmt.Errorf("remove a file: %w", rerr)
	}
	return nil
}

// probeFile opens path for reading, or for appending when write.
func probeFile(path string, write bool) error {
	flag := os.O_RDONLY
	if write {
		flag = os.O_WRONLY | os.O_APPEND
	}
	f, err := os.OpenFile(path, flag, 0)
	if err != nil {
		return fmt.Errorf("open: %w", err)
	}
	return f.Close()
}

// permCause explains a file-system error in one line.
func permCause(err error, path string) string {
	switch {
	case errors.Is(err, syscall.EROFS):
		return "read-only filesystem: remount it read-write (check /etc/fstab, the export options or a read-only bind mount)"
	case errors.Is(err, fs.ErrPermission):
		return fmt.Sprintf("permission denied for %s: chown/chmod %s (and x on its parents), or run the process as its owner", currentUser(), path)
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return "no space (or quota) left on the filesystem: free some space"
	case errors.Is(err, syscall.ENOTDIR):
		return "a parent of the path is a file, not a directory: fix the path or move the file away"
	case errors.Is(err, syscall.ESTALE), errors.Is(err, syscall.EIO):
		return "I/O error or stale handle: the network filesystem or disk is unhealthy; remount it"
	}
	return "unexpected file-system error: see the measured error"
}

// currentUser names the effective user ("alice (uid 1000)").
func currentUser() string {
	uid := os.Geteuid()
	return fmt.Sprintf("%s (uid %d)", userName(uint32(uid)), uid)
}

func kind(info fs.FileInfo) string {
	switch m := info.Mode(); {
	case m.IsRegular():
		return "regular file"
	case m&fs.ModeSymlink != 0:
		return "symlink"
	case m&fs.ModeSocket != 0:
		return "socket"
	}
	return "special file"
}

func ownerName(info fs.FileInfo) string {
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		return userName(st.Uid)
	}
	return "?"
}

func groupOf(info fs.FileInfo) string {
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		return groupName(st.Gid)
	}
	return "?"
}

// checkDisk reports the free space of the filesystem holding p.
func (l Local) checkDisk(p Path) Check {
	name := "disk " + p.Name
	path := nearestExisting(p.Path)
	total, avail, err := l.statfs(path)
	if err != nil {
		return warnCheck(name, err.Error(), "cannot read the filesystem's size: check the mount (df "+path+")")
	}
	if total == 0 {
		return okCheck(name, path+": size unknown (virtual filesystem)")
	}
	frac := float64(avail) / float64(total)
	m := fmt.Sprintf("%s: %s free of %s (%.1f%%)", path, fmtBytes(avail), fmtBytes(total), frac*100)
	switch {
	case frac < diskFailFraction:
		return failCheck(name, m, "almost no space left: writes (Raft log, task output) will fail; free space or grow the filesystem")
	case frac < diskWarnFraction:
		return warnCheck(name, m, "less than 10% free: free space or grow the filesystem before it fills up")
	case avail < diskWarnBytes:
		return warnCheck(name, m, "less than 1GiB free: free space or grow the filesystem before it fills up")
	}
	return okCheck(name, m)
}

// fmtBytes renders a byte count with binary units ("12.3GiB").
func fmtBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%dB", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f%ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
