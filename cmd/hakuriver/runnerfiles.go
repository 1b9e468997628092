package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/hakuriver/hakuriver-ha/runner/filecopy"
)

// newRunnerFilesCmd builds the hidden "hakuriver runner-files put|get
// PATH": the helper a runner starts to copy files into or out of a
// native task. With --as it first becomes that user (all threads), so
// that the task user's own permissions decide what it may read or
// write; with --root it first enters that directory (a container's
// root), so that paths resolve as inside the container; the tar stream comes on stdin (put) or goes to stdout (get).
func newRunnerFilesCmd() *cobra.Command {
	var as, root string
	var lim filecopy.Limits
	cmd := &cobra.Command{
		Use:    filecopy.HelperCommand + " put|get PATH",
		Short:  "Copy files into or out of a native task (started by the runner)",
		Hidden: true,
		Args:   cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if root != "" {
				// A container's root (/proc/PID/root): absolute links and
				// mounts resolve as inside the container.
				if err := syscall.Chroot(root); err != nil {
					return fmt.Errorf("enter %s: %w", root, err)
				}
				if err := os.Chdir("/"); err != nil {
					return fmt.Errorf("enter %s: %w", root, err)
				}
			}
			if as != "" {
				if err := becomeUser(as); err != nil {
					return err
				}
			}
			switch args[0] {
			case "put":
				return filecopy.Put(args[1], bufio.NewReaderSize(os.Stdin, 1<<20), lim)
			case "get":
				w := bufio.NewWriterSize(os.Stdout, 1<<20)
				if err := filecopy.Get(args[1], w); err != nil {
					return err
				}
				return w.Flush()
			}
			return fmt.Errorf("want put or get, got %q", args[0])
		},
	}
	cmd.Flags().StringVar(&as, "as", "", "act as UID:GID[:G1,G2...] (needs root)")
	cmd.Flags().StringVar(&root, "root", "", "chroot into DIR first (a container's /proc/PID/root; needs root)")
	cmd.Flags().Int64Var(&lim.MaxBytes, "max-bytes", 0, "cap on the files' total size (0: the default)")
	cmd.Flags().IntVar(&lim.MaxEntries, "max-entries", 0, "cap on the number of entries (0: the default)")
	return cmd
}

// becomeUser switches every thread of the process to UID:GID with the
// supplementary groups given, for good (the saved IDs too).
func becomeUser(spec string) error {
	parts := strings.SplitN(spec, ":", 3)
	if len(parts) < 2 {
		return fmt.Errorf("--as %q: want UID:GID[:G1,G2...]", spec)
	}
	uid, err1 := strconv.Atoi(parts[0])
	gid, err2 := strconv.Atoi(parts[1])
	if err := errors.Join(err1, err2); err != nil || uid < 0 || gid < 0 {
		return fmt.Errorf("--as %q: want numeric UID:GID", spec)
	}
	groups := []int{}
	if len(parts) == 3 && parts[2] != "" {
		for _, g := range strings.Split(parts[2], ",") {
			n, err := strconv.Atoi(g)
			if err != nil || n < 0 {
				return fmt.Errorf("--as %q: group %q is not a number", spec, g)
			}
			groups = append(groups, n)
		}
	}
	if err := syscall.Setgroups(groups); err != nil {
		return fmt.Errorf("set groups: %w", err)
	}
	if err := syscall.Setresgid(gid, gid, gid); err != nil {
		return fmt.Errorf("set gid %d: %w", gid, err)
	}
	if err := syscall.Setresuid(uid, uid, uid); err != nil {
		return fmt.Errorf("set uid %d: %w", uid, err)
	}
	return nil
}
