//go:build integration

package chaos

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/hakuriver/hakuriver-ha/integration/harness"
)

// DataDirMiB is the size of each replica's data dir filesystem (a tmpfs).
const DataDirMiB = 64

// fillName is the file that fills a data dir.
const fillName = "chaos-fill"

// mountTmpfs mounts a tmpfs of sizeMiB on dir and detaches it at cleanup
// (lazily: the replica may still hold files there until it is killed).
func mountTmpfs(tb harness.TB, dir string, sizeMiB int) error {
	if out, err := run("mount", "-t", "tmpfs", "-o", "size="+strconv.Itoa(sizeMiB)+"m,mode=0750", "tmpfs", dir); err != nil {
		return fmt.Errorf("mount tmpfs on %s: %v: %s", dir, err, out)
	}
	tb.Cleanup(func() {
		if out, err := run("umount", "-l", dir); err != nil {
			tb.Logf("cleanup: umount %s: %v: %s", dir, err, out)
		}
	})
	return nil
}

// fill writes a file into dir until its filesystem has no space left.
func fill(dir string) error {
	f, err := os.OpenFile(filepath.Join(dir, fillName), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("fill %s: %w", dir, err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for range 1 << 16 {
		if _, err := f.Write(buf); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				return nil
			}
			return fmt.Errorf("fill %s: %w", dir, err)
		}
	}
	return fmt.Errorf("fill %s: still not full", dir)
}

// DiskFullLeader fills the leader's data dir filesystem to the last byte
// and frees it on heal.
func DiskFullLeader() Fault {
	var dir string
	return Fault{Name: "leader's disk full",
		Inject: func(e *Env) ([]string, []string, error) {
			l, id := e.leaderID()
			dir = e.C.Replica(l).DataDir()
			return nil, []string{id}, fill(dir)
		},
		Heal: func(e *Env) error {
			if err := os.Remove(filepath.Join(dir, fillName)); err != nil {
				return fmt.Errorf("free %s: %w", dir, err)
			}
			return nil
		},
	}
}

// run runs a command bounded in time and returns its combined output.
func run(name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return string(bytes.TrimSpace(out.Bytes())), err
}
