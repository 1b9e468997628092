//go:build integration

package chaos

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/hakuriver/hakuriver-ha/integration/harness"
)

// Slow fsync. This kernel has no device-mapper (no dm-delay, no
// /dev/mapper/control) and no sch_netem; it has loop devices and the
// cgroup v1 blkio controller with throttling. So a replica's data dir is
// an ext4 filesystem on a loop device (its backing file on /dev/shm), and
// the fault moves the replica process into a blkio cgroup that caps its
// writes to that device at a few IOPS: every fdatasync of the Raft log
// (boltdb) then waits for its turn, as on a dying disk or an overloaded
// SAN. Reads and other processes are not slowed.

// blkioRoot is the cgroup v1 blkio hierarchy.
const blkioRoot = "/sys/fs/cgroup/blkio"

// mountLoopExt4 makes an ext4 filesystem of sizeMiB (no blocks reserved
// for root, so that fill fills it) in a file on /dev/shm, mounts it on dir
// through a loop device and returns the device's major:minor. Everything
// is undone at cleanup.
func mountLoopExt4(tb harness.TB, dir string, sizeMiB int) (string, error) {
	b := make([]byte, 4)
	rand.Read(b) //nolint:errcheck // crypto/rand never fails
	img := filepath.Join("/dev/shm", "hakuriver-chaos-"+hex.EncodeToString(b)+".img")
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		return "", fmt.Errorf("loop disk: %w", err)
	}
	tb.Cleanup(func() { os.Remove(img) })
	if err := os.Truncate(img, int64(sizeMiB)<<20); err != nil {
		return "", fmt.Errorf("loop disk: %w", err)
	}
	if out, err := run("mkfs.ext4", "-q", "-F", "-m", "0", img); err != nil {
		return "", fmt.Errorf("mkfs.ext4 %s: %v: %s", img, err, out)
	}
	dev, err := run("losetup", "-f", "--show", img)
	if err != nil {
		return "", fmt.Errorf("losetup %s: %v: %s", img, err, dev)
	}
	tb.Cleanup(func() {
		if out, err := run("losetup", "-d", dev); err != nil {
			tb.Logf("cleanup: losetup -d %s: %v: %s", dev, err, out)
		}
	})
	if out, err := run("mount", dev, dir); err != nil {
		return "", fmt.Errorf("mount %s on %s: %v: %s", dev, dir, err, out)
	}
	tb.Cleanup(func() {
		if out, err := run("umount", "-l", dir); err != nil {
			tb.Logf("cleanup: umount %s: %v: %s", dir, err, out)
		}
	})
	if err := os.Chmod(dir, 0o750); err != nil {
		return "", fmt.Errorf("loop disk: %w", err)
	}
	mm, err := os.ReadFile(filepath.Join("/sys/block", filepath.Base(dev), "dev"))
	if err != nil {
		return "", fmt.Errorf("loop disk %s: %w", dev, err)
	}
	return strings.TrimSpace(string(mm)), nil
}

// blkioCgroup returns the blkio cgroup (relative to blkioRoot) process
// pid is in.
func blkioCgroup(pid int) (string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return "", fmt.Errorf("cgroup of %d: %w", pid, err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		parts := strings.SplitN(l, ":", 3)
		if len(parts) == 3 && strings.Contains(","+parts[1]+",", ",blkio,") {
			return parts[2], nil
		}
	}
	return "", fmt.Errorf("cgroup of %d: no blkio line", pid)
}

// SlowFsync caps the leader's writes to its data dir's device at 5–20
// IOPS (drawn by the seed) while it leads, through a blkio cgroup (see
// above), and lifts the cap on heal. Commits slow down; nothing may be
// lost or acknowledged twice.
func SlowFsync() Fault {
	var cg, back string
	var pid int
	return Fault{Name: "slow fsync on the leader (5-20 IOPS)",
		Inject: func(e *Env) ([]string, []string, error) {
			l, id := e.leaderID()
			r := e.C.Replica(l)
			dev := e.disks[r.DataDir()]
			if dev == "" {
				return nil, nil, fmt.Errorf("slow fsync: %s's data dir is no loop device (see NewEnv's log)", id)
			}
			pid = r.PID()
			var err error
			if back, err = blkioCgroup(pid); err != nil {
				return nil, nil, err
			}
			iops := []int{5, 10, 20}[e.rng.IntN(3)]
			b := make([]byte, 4)
			rand.Read(b) //nolint:errcheck // crypto/rand never fails
			cg = filepath.Join(blkioRoot, "hakuriver-chaos-"+hex.EncodeToString(b))
			if err := os.Mkdir(cg, 0o755); err != nil {
				return nil, nil, fmt.Errorf("slow fsync: %w", err)
			}
			if err := os.WriteFile(filepath.Join(cg, "blkio.throttle.write_iops_device"), []byte(dev+" "+strconv.Itoa(iops)), 0o644); err != nil {
				return nil, nil, fmt.Errorf("slow fsync: cap %s: %w", dev, err)
			}
			if err := os.WriteFile(filepath.Join(cg, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644); err != nil {
				return nil, nil, fmt.Errorf("slow fsync: move %s: %w", id, err)
			}
			e.TB.Logf("writes of leader %s to %s capped at %d IOPS", id, dev, iops)
			return nil, nil, nil
		},
		Heal: func(e *Env) error {
			// A process that died meanwhile has left the cgroup already.
			if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
				if err := os.WriteFile(filepath.Join(blkioRoot, back, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644); err != nil {
					return fmt.Errorf("slow fsync: move back: %w", err)
				}
			}
			if err := os.Remove(cg); err != nil {
				return fmt.Errorf("slow fsync: %w", err)
			}
			return nil
		},
	}
}
