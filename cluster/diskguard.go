package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/raft"

	"github.com/hakuriver/hakuriver-ha/cluster/httpapi"
)

// ErrInsufficientStorage refuses a write while the data dir's filesystem
// has less free space than min_free_disk; it answers 507.
var ErrInsufficientStorage = httpapi.ErrInsufficientStorage

// diskRecheck is how long one free-space reading stands before a write
// reads it again; diskWatch is how often the replica reads it while idle,
// so that a filling disk is logged before the first refused write.
const (
	diskRecheck = time.Second
	diskWatch   = 10 * time.Second
)

// diskGuard keeps a replica from filling its data dir's filesystem: while
// the space available there is below min, proposals are refused (reads
// are served as before). A Raft log or snapshot write that hits a full disk
// would fail half-way; a refusal names the reason and changes nothing.
type diskGuard struct {
	dir string
	min uint64
	log *slog.Logger
	// statfs returns the bytes available to unprivileged users on the
	// filesystem holding dir.
	statfs func(dir string) (uint64, error)
	now    func() time.Time

	mu     sync.Mutex
	at     time.Time
	avail  uint64
	err    error
	refuse bool
	// handedOff is when the leader last handed leadership over because
	// of a full disk (see Host.yieldForDisk).
	handedOff time.Time
}

// diskHandOffEvery spaces a leader's attempts to hand leadership over
// while its data dir stays almost full.
const diskHandOffEvery = 5 * time.Second

// shouldHandOff reports whether the leader refusing writes for lack of
// space should try to hand leadership over now, and records the attempt.
func (g *diskGuard) shouldHandOff() bool {
	if g == nil {
		return false
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	if !g.refuse || now.Sub(g.handedOff) < diskHandOffEvery {
		return false
	}
	g.handedOff = now
	return true
}

func newDiskGuard(dir string, min uint64, log *slog.Logger) *diskGuard {
	return &diskGuard{dir: dir, min: min, log: log, statfs: availBytes, now: time.Now}
}

// availBytes is the space unprivileged users may still use where dir is.
func availBytes(dir string) (uint64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("statfs %s: %w", dir, err)
	}
	return st.Bavail * uint64(st.Bsize), nil
}

// check returns ErrInsufficientStorage, wrapped with the figures, while the
// free space is below the minimum; it reads the filesystem at most once per
// diskRecheck and logs each change between enough and too little.
func (g *diskGuard) check() error {
	if g == nil || g.min == 0 {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if now := g.now(); now.Sub(g.at) >= diskRecheck {
		g.at = now
		g.avail, g.err = g.statfs(g.dir)
		low := g.err == nil && g.avail < g.min
		switch {
		case low && !g.refuse:
			g.log.Error("data dir almost full: refusing writes until space is freed", "data_dir", g.dir,
				"free_bytes", g.avail, "min_free_disk_bytes", g.min)
		case !low && g.refuse:
			g.log.Info("data dir has space again: accepting writes", "data_dir", g.dir, "free_bytes", g.avail)
		}
		g.refuse = low
	}
	if !g.refuse {
		return nil
	}
	return fmt.Errorf("%w: data_dir %s has %s free, below min_free_disk %s: writes are refused until space is freed there (reads still work)",
		ErrInsufficientStorage, g.dir, fmtBytes(g.avail), fmtBytes(g.min))
}

// watch reads the free space every diskWatch until ctx ends (check logs
// the changes) and calls low after each reading that refuses writes.
func (g *diskGuard) watch(ctx context.Context, low func()) {
	if g == nil || g.min == 0 {
		return
	}
	t := time.NewTicker(diskWatch)
	defer t.Stop()
	for {
		if g.check() != nil {
			low()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// fmtBytes renders n with binary units ("1.5GiB").
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

// yieldForDisk hands leadership to another voter while this replica leads
// with its data dir almost full: the leader refuses every write then, and
// since a refused write never reaches the disk nothing else makes it step
// down, so the whole cluster would refuse writes although a majority of
// healthy replicas could take them (found by the chaos test, leader's disk
// full). A transfer runs in the background, at most once per
// diskHandOffEvery; a single-voter cluster has no one to hand over to.
func (h *Host) yieldForDisk() {
	if h.closed.Load() || !h.IsLeader() || !h.disk.shouldHandOff() {
		return
	}
	cf := h.raft.r.GetConfiguration()
	if err := cf.Error(); err != nil {
		return
	}
	voters := 0
	for _, s := range cf.Configuration().Servers {
		if s.Suffrage == raft.Voter {
			voters++
		}
	}
	if voters < 2 {
		return
	}
	h.goRun(func() {
		h.log.Info("data dir almost full: handing leadership to another replica")
		if err := h.raft.r.LeadershipTransfer().Error(); err != nil {
			h.log.Warn("hand leadership over (data dir almost full)", "err", err)
		}
	})
}
