// Package filecopy moves files and directories as tar streams for
// `hakuriver cp`: Archive writes one file or directory tree, Extract and
// Rewrite read one. A stream is always treated as hostile, whoever sent
// it: entry names must be relative and stay below the destination (no
// "..", no absolute names), symbolic links may not point outside the
// copied tree, only regular files, directories and symbolic links are
// accepted, and the total size and entry count are capped. Extract also
// works through an os.Root, so that even a link planted by someone else
// between two entries cannot lead a write out of the destination.
package filecopy

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// ErrRefused is returned (wrapped) for a stream that breaks the rules:
// an entry escaping the destination, a forbidden entry type, or a stream
// over its limits.
var ErrRefused = errors.New("archive refused")

// Default limits of one copy.
const (
	DefaultMaxBytes   = 8 << 30
	DefaultMaxEntries = 100_000
)

// Limits bound one stream. Zero fields take the defaults.
type Limits struct {
	// MaxBytes caps the sum of the regular files' sizes.
	MaxBytes int64
	// MaxEntries caps the number of entries.
	MaxEntries int
}

func (l Limits) withDefaults() Limits {
	if l.MaxBytes <= 0 {
		l.MaxBytes = DefaultMaxBytes
	}
	if l.MaxEntries <= 0 {
		l.MaxEntries = DefaultMaxEntries
	}
	return l
}

// checker validates a stream's entries one by one.
type checker struct {
	lim     Limits
	bytes   int64
	entries int
	top     string // the first entry's top-level name
}

// check validates h and returns its cleaned relative name.
func (c *checker) check(h *tar.Header) (string, error) {
	c.entries++
	if c.entries > c.lim.MaxEntries {
		return "", fmt.Errorf("%w: more than %d entries", ErrRefused, c.lim.MaxEntries)
	}
	name, err := cleanName(h.Name)
	if err != nil {
		return "", err
	}
	top, _, _ := strings.Cut(name, "/")
	if c.top == "" {
		c.top = top
	} else if top != c.top {
		return "", fmt.Errorf("%w: entry %q: every entry must be below %q", ErrRefused, h.Name, c.top)
	}
	switch h.Typeflag {
	case tar.TypeReg, tar.TypeDir:
	case tar.TypeSymlink:
		if err := checkLink(name, h.Linkname); err != nil {
			return "", err
		}
	default:
		return "", fmt.Errorf("%w: entry %q: type %q is not a file, directory or symbolic link", ErrRefused, h.Name, string(h.Typeflag))
	}
	if h.Size < 0 {
		return "", fmt.Errorf("%w: entry %q: negative size", ErrRefused, h.Name)
	}
	c.bytes += h.Size
	if c.bytes > c.lim.MaxBytes {
		return "", fmt.Errorf("%w: more than %d bytes", ErrRefused, c.lim.MaxBytes)
	}
	return name, nil
}

// cleanName returns a tar entry name as a clean relative slash path, or
// an error when it is absolute, empty or climbs with "..".
func cleanName(name string) (string, error) {
	if name == "" || strings.ContainsRune(name, 0) {
		return "", fmt.Errorf("%w: empty entry name", ErrRefused)
	}
	if strings.HasPrefix(name, "/") || filepath.IsAbs(name) {
		return "", fmt.Errorf("%w: entry %q: absolute name", ErrRefused, name)
	}
	for _, part := range strings.Split(name, "/") {
		if part == ".." {
			return "", fmt.Errorf("%w: entry %q: name climbs with \"..\"", ErrRefused, name)
		}
	}
	clean := path.Clean(name)
	if clean == "." {
		return "", fmt.Errorf("%w: entry %q: no name", ErrRefused, name)
	}
	return clean, nil
}

// checkLink refuses a symbolic link at name whose target is absolute or
// leads above the copied tree.
func checkLink(name, target string) error {
	if target == "" || strings.HasPrefix(target, "/") {
		return fmt.Errorf("%w: symbolic link %q: target %q is absolute", ErrRefused, name, target)
	}
	if !fs.ValidPath(path.Join(path.Dir(name), target)) || strings.HasPrefix(path.Join(path.Dir(name), target), "../") {
		return fmt.Errorf("%w: symbolic link %q: target %q leads out of the copied tree", ErrRefused, name, target)
	}
	return nil
}

// renameTop replaces the first component of name (from) with to.
func renameTop(name, from, to string) string {
	if to == "" || from == to {
		return name
	}
	if name == from {
		return to
	}
	return to + strings.TrimPrefix(name, from)
}

// Rewrite copies the tar stream src to dst, checking every entry (the
// rules of the package), renaming its top-level entry to rename (when
// set) and, when owner is not nil, giving every entry that owner.
func Rewrite(dst io.Writer, src io.Reader, lim Limits, rename string, owner *Owner) error {
	tr := tar.NewReader(src)
	tw := tar.NewWriter(dst)
	c := &checker{lim: lim.withDefaults()}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("read the archive: %w", err)
		}
		name, err := c.check(h)
		if err != nil {
			return err
		}
		out := &tar.Header{
			Typeflag: h.Typeflag, Name: renameTop(name, c.top, rename), Linkname: h.Linkname,
			Mode: h.Mode & 0o7777, Size: h.Size, ModTime: h.ModTime, Format: tar.FormatPAX,
		}
		if h.Typeflag == tar.TypeDir {
			out.Name += "/"
		}
		if owner != nil {
			out.Uid, out.Gid = owner.UID, owner.GID
		}
		if err := tw.WriteHeader(out); err != nil {
			return fmt.Errorf("write entry %q: %w", out.Name, err)
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := io.CopyN(tw, tr, h.Size); err != nil {
				return fmt.Errorf("copy entry %q: %w", out.Name, err)
			}
		}
	}
	if c.entries == 0 {
		return fmt.Errorf("%w: empty archive", ErrRefused)
	}
	return tw.Close()
}

// Owner is a numeric owner given to rewritten entries.
type Owner struct{ UID, GID int }

// Extract writes the tar stream src below dir, renaming its top-level
// entry to rename (when set). Modes are kept exactly (no umask); files
// belong to the calling process. dir must exist. A directory's mode is
// set once its contents are written, so a read-only directory can be
// copied. It returns the top-level name written.
func Extract(dir string, src io.Reader, lim Limits, rename string) (string, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return "", fmt.Errorf("open destination %s: %w", dir, err)
	}
	defer root.Close()
	tr := tar.NewReader(src)
	c := &checker{lim: lim.withDefaults()}
	type dirMode struct {
		name string
		mode fs.FileMode
	}
	var dirs []dirMode
	top := ""
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return "", fmt.Errorf("read the archive: %w", err)
		}
		name, err := c.check(h)
		if err != nil {
			return "", err
		}
		name = renameTop(name, c.top, rename)
		if top == "" {
			top, _, _ = strings.Cut(name, "/")
		}
		mode := fs.FileMode(h.Mode & 0o777)
		switch h.Typeflag {
		case tar.TypeDir:
			if err := root.Mkdir(name, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
				return "", fmt.Errorf("create directory %s: %w", name, err)
			}
			if fi, err := root.Lstat(name); err != nil || !fi.IsDir() {
				return "", fmt.Errorf("%w: %s exists and is not a directory", ErrRefused, name)
			}
			// Writable by us until its contents are in.
			if err := root.Chmod(name, 0o700); err != nil {
				return "", fmt.Errorf("chmod %s: %w", name, err)
			}
			dirs = append(dirs, dirMode{name, mode})
		case tar.TypeReg:
			if err := writeFile(root, name, mode, tr, h.Size); err != nil {
				return "", err
			}
		case tar.TypeSymlink:
			if err := root.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return "", fmt.Errorf("replace %s: %w", name, err)
			}
			if err := root.Symlink(h.Linkname, name); err != nil {
				return "", fmt.Errorf("create symbolic link %s: %w", name, err)
			}
		}
	}
	if c.entries == 0 {
		return "", fmt.Errorf("%w: empty archive", ErrRefused)
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := root.Chmod(dirs[i].name, dirs[i].mode); err != nil {
			return "", fmt.Errorf("chmod %s: %w", dirs[i].name, err)
		}
	}
	return top, nil
}

// writeFile writes one regular file through root, replacing a file (not
// a directory) of that name, with exactly mode.
func writeFile(root *os.Root, name string, mode fs.FileMode, r io.Reader, size int64) error {
	if fi, err := root.Lstat(name); err == nil && !fi.Mode().IsRegular() {
		if fi.IsDir() {
			return fmt.Errorf("%w: %s exists and is a directory", ErrRefused, name)
		}
		if err := root.Remove(name); err != nil {
			return fmt.Errorf("replace %s: %w", name, err)
		}
	}
	f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("create %s: %w", name, err)
	}
	if _, err := io.CopyN(f, r, size); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return fmt.Errorf("chmod %s: %w", name, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}

// Archive writes src (a file, a directory tree or a symbolic link, not
// followed) to w as a tar stream whose top-level entry is named name
// (filepath.Base(src) when empty). Entries other than files, directories
// and symbolic links (sockets, devices) are skipped.
func Archive(w io.Writer, src, name string) error {
	if name == "" {
		name = filepath.Base(src)
	}
	tw := tar.NewWriter(w)
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		entry := name
		if rel != "." {
			entry = name + "/" + filepath.ToSlash(rel)
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		return addEntry(tw, p, entry, fi)
	})
	if err != nil {
		return fmt.Errorf("archive %s: %w", src, err)
	}
	return tw.Close()
}

// addEntry writes one entry for the file at p.
func addEntry(tw *tar.Writer, p, entry string, fi fs.FileInfo) error {
	h := &tar.Header{Name: entry, Mode: int64(fi.Mode().Perm()), ModTime: fi.ModTime(), Format: tar.FormatPAX}
	switch {
	case fi.Mode().IsRegular():
		h.Typeflag, h.Size = tar.TypeReg, fi.Size()
	case fi.IsDir():
		h.Typeflag, h.Name = tar.TypeDir, entry+"/"
	case fi.Mode()&fs.ModeSymlink != 0:
		target, err := os.Readlink(p)
		if err != nil {
			return err
		}
		h.Typeflag, h.Linkname = tar.TypeSymlink, target
	default:
		return nil
	}
	if err := tw.WriteHeader(h); err != nil {
		return err
	}
	if h.Typeflag != tar.TypeReg {
		return nil
	}
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := io.CopyN(tw, f, h.Size); err != nil {
		return fmt.Errorf("read %s: %w", p, err)
	}
	return nil
}

// Destination resolves where a copy to path lands, as `cp` and `docker
// cp` do: into path when it is an existing directory (keeping the copied
// entry's own name), else as path itself (the entry renamed to its base
// name). isDir reports whether path is an existing directory.
func Destination(path string, isDir bool) (dir, rename string) {
	if isDir {
		return path, ""
	}
	return filepath.Dir(path), filepath.Base(path)
}
