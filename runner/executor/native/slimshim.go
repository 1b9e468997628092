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

// slimShim returns the command of the slim supervisor binary beside exe,
// or why it is not used: it is missing, not a regular executable file,
// writable by others than its owner, owned by neither root nor this
// process's user, or it speaks another ShimProtocol.
func slimShim(exe string) (cmd []string, why error) {
	path := filepath.Join(filepath.Dir(exe), SlimShimName)
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	switch {
	case !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0:
		return nil, fmt.Errorf("%s: not an executable file", path)
	case fi.Mode().Perm()&0o022 != 0:
		return nil, fmt.Errorf("%s: writable by group or others (%v)", path, fi.Mode().Perm())
	case !ok || st.Uid != 0 && int(st.Uid) != os.Geteuid():
		return nil, fmt.Errorf("%s: owned by neither root nor this user", path)
	}
	ctx, cancel := context.WithTimeout(context.Background(), slimShimTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "--protocol").Output()
	if err != nil {
		return nil, fmt.Errorf("%s --protocol: %w", path, err)
	}
	if got := string(bytes.TrimSpace(out)); got != strconv.Itoa(ShimProtocol) {
		return nil, fmt.Errorf("%s speaks supervisor protocol %.20q, this runner %d", path, got, ShimProtocol)
	}
	return []string{path}, nil
}
