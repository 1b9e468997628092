package cluster

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Periodic backups: while a replica leads, it writes a backup file into
// BackupDir when the newest one there is older than BackupInterval (so a
// new leader on shared storage goes on from its predecessor's schedule), and
// keeps the newest BackupKeep files. No file is written while the state
// has not changed since the newest one.

// backupPrefix and backupSuffix frame the names of periodic backup files:
// hakuriver-20261206T215726Z-i12345.snap, which sort by time.
const (
	backupPrefix = "hakuriver-"
	backupSuffix = ".snap"
	backupStamp  = "20060102T150405Z"
)

// backupLoop runs until ctx ends when BackupDir is set.
func (h *Host) backupLoop(ctx context.Context) {
	if h.cfg.BackupDir == "" {
		return
	}
	if err := os.MkdirAll(h.cfg.BackupDir, 0o700); err != nil {
		h.log.Warn("periodic backups disabled: cannot create backup_dir", "dir", h.cfg.BackupDir, "err", err)
		return
	}
	period := min(max(h.cfg.BackupInterval/10, time.Second), time.Minute)
	tick := time.NewTicker(period)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if !h.IsLeader() {
			continue
		}
		files, newest := h.backupFiles()
		if !newest.IsZero() && time.Since(newest) < h.cfg.BackupInterval {
			continue
		}
		if len(files) > 0 && backupIndex(files[len(files)-1]) == h.machine.AppliedIndex() {
			continue // nothing changed since the newest file
		}
		if err := h.periodicBackup(ctx); err != nil {
			h.log.Warn("periodic backup failed", "dir", h.cfg.BackupDir, "err", err)
			continue
		}
		files, _ = h.backupFiles()
		h.pruneBackups(files)
	}
}

// backupFiles lists the periodic backup files in BackupDir, oldest first,
// and the modification time of the newest.
func (h *Host) backupFiles() ([]string, time.Time) {
	entries, err := os.ReadDir(h.cfg.BackupDir)
	if err != nil {
		return nil, time.Time{}
	}
	var names []string
	for _, e := range entries {
		n := e.Name()
		if e.Type().IsRegular() && strings.HasPrefix(n, backupPrefix) && strings.HasSuffix(n, backupSuffix) {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	if len(names) == 0 {
		return nil, time.Time{}
	}
	st, err := os.Stat(filepath.Join(h.cfg.BackupDir, names[len(names)-1]))
	if err != nil {
		return names, time.Time{}
	}
	return names, st.ModTime()
}

// periodicBackup writes one backup file: into a temporary file, synced,
// then renamed.
func (h *Host) periodicBackup(ctx context.Context) error {
	start := time.Now()
	tmp, err := os.CreateTemp(h.cfg.BackupDir, ".partial-*"+backupSuffix)
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) //nolint:errcheck // gone after the rename
	hdr, sum, n, err := h.writeBackup(tmp, nil)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	name := backupPrefix + hdr.CreatedAt.Format(backupStamp) + "-i" + strconv.FormatUint(hdr.AppliedIndex, 10) + backupSuffix
	if err := os.Rename(tmp.Name(), filepath.Join(h.cfg.BackupDir, name)); err != nil {
		return fmt.Errorf("rename backup: %w", err)
	}
	h.log.Info("periodic backup written", "file", name, "applied_index", hdr.AppliedIndex, "bytes", n, "sha256", sum,
		"took", time.Since(start).Round(time.Millisecond))
	return nil
}

// backupIndex returns the applied index in a periodic backup's name (0
// when there is none).
func backupIndex(name string) uint64 {
	_, rest, ok := strings.Cut(strings.TrimSuffix(name, backupSuffix), "-i")
	if !ok {
		return 0
	}
	n, _ := strconv.ParseUint(rest, 10, 64)
	return n
}

// pruneBackups removes the oldest files beyond BackupKeep.
func (h *Host) pruneBackups(files []string) {
	for len(files) > h.cfg.BackupKeep {
		if err := os.Remove(filepath.Join(h.cfg.BackupDir, files[0])); err != nil {
			h.log.Warn("remove an old backup", "file", files[0], "err", err)
		}
		files = files[1:]
	}
}
