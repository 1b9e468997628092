package filecopy

import (
	"fmt"
	"io"
	"os"
)

// HelperCommand is the hidden subcommand of the hakuriver binary that a
// runner starts to copy files into or out of a native task as the task's
// user: "runner-files put|get PATH [--as UID:GID[:G1,G2...]]".
const HelperCommand = "runner-files"

// Put writes the tar stream r at p: into p when it is an existing
// directory, else as p (the stream's top-level entry renamed).
func Put(p string, r io.Reader, lim Limits) error {
	fi, err := os.Stat(p)
	dir, rename := Destination(p, err == nil && fi.IsDir())
	if _, err := Extract(dir, r, lim, rename); err != nil {
		return err
	}
	return nil
}

// Get writes p (a file, a directory tree or a symbolic link) to w as a
// tar stream whose top-level entry is p's base name.
func Get(p string, w io.Writer) error {
	if _, err := os.Lstat(p); err != nil {
		return fmt.Errorf("copy from %s: %w", p, err)
	}
	return Archive(w, p, "")
}
