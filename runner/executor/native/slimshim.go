package native

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// ShimProtocol is the version of the contract between an Executor and the
// supervisors it starts: their arguments, environment variables, pipes and
// task records. Raise it with any change a supervisor of the previous
// value would not follow; a slim supervisor binary (SlimShimName) of
// another value is not used.
const ShimProtocol = 1

// SlimShimName is the supervisor-only binary (cmd/hakuriver-shim) that an
// Executor without a configured ShimCommand uses when it sits beside its
// own executable.
const SlimShimName = "hakuriver-shim"

// slimShimTimeout bounds the slim supervisor's answer to --protocol.
const slimShimTimeout = 10 * time.Second

// slimShimBinary is the slim supervisor binary an Executor found beside its
// executable, held open for the process's life: supervisors are started
// from this very file (/proc/self/fd/N, with argv[0] its path), so a
// file swapped in under that name later, by an upgrade or anyone else,
// is never run unchecked.
type slimShimBinary struct {
	f    *os.File
	path string
}

// exec is the path supervisors are started from.
func (b *slimShimBinary) exec() string { return "/proc/self/fd/" + strconv.Itoa(int(b.f.Fd())) }

// slimShim opens the slim supervisor binary beside exe, or says why it is
// not used: it is missing or a symbolic link, not a regular executable
// file, it or its directory is writable by others than the owner or owned
// by neither root nor this process's user, or it speaks another
// ShimProtocol.
func slimShim(exe string) (*slimShimBinary, error) {
	dir := filepath.Dir(exe)
	if err := trustedOwnerOnly(dir); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, SlimShimName)
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, err // a symbolic link: ELOOP
	}
	b := &slimShimBinary{f: f, path: path}
	if err := b.check(); err != nil {
		f.Close()
		return nil, err
	}
	return b, nil
}

// check checks the open file (O_NOFOLLOW refused a link) and asks it
// for its protocol.
func (b *slimShimBinary) check() error {
	fi, err := b.f.Stat()
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("%s: not an executable file", b.path)
	}
	if err := ownerOnly(b.path, fi); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), slimShimTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, b.exec(), "--protocol")
	cmd.Args[0] = b.path
	cmd.WaitDelay = time.Second
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("%s --protocol: %w", b.path, err)
	}
	if got := string(bytes.TrimSpace(out)); got != strconv.Itoa(ShimProtocol) {
		return fmt.Errorf("%s speaks supervisor protocol %.20q, this runner %d", b.path, got, ShimProtocol)
	}
	return nil
}

// trustedOwnerOnly checks that path (not followed if a link: Lstat) is
// no link and ownerOnly.
func trustedOwnerOnly(path string) error {
	fi, err := os.Lstat(path)
	if err != nil {
		return err
	}
	if fi.Mode()&os.ModeSymlink != 0 {
		return fmt.Errorf("%s: a symbolic link", path)
	}
	return ownerOnly(path, fi)
}

// ownerOnly checks that fi (of path) is owned by root or this process's
// user and writable by no one else.
func ownerOnly(path string, fi os.FileInfo) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	switch {
	case fi.Mode().Perm()&0o022 != 0:
		return fmt.Errorf("%s: writable by group or others (%v)", path, fi.Mode().Perm())
	case !ok || st.Uid != 0 && int(st.Uid) != os.Geteuid():
		return fmt.Errorf("%s: owned by neither root nor this user", path)
	}
	return nil
}
