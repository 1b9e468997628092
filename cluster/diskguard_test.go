package cluster

import (
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster/httpapi"
)

// TestDiskGuard reads the real free space of a temporary directory: a
// minimum above it refuses with 507 and the figures, one below it passes,
// and no minimum never reads the disk.
func TestDiskGuard(t *testing.T) {
	dir := t.TempDir()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	var nilGuard *diskGuard
	if err := nilGuard.check(); err != nil {
		t.Fatal(err)
	}
	if err := newDiskGuard(dir, 0, log).check(); err != nil {
		t.Fatalf("no minimum: %v", err)
	}
	if err := newDiskGuard(dir, 1, log).check(); err != nil {
		t.Fatalf("1 byte minimum: %v", err)
	}
	g := newDiskGuard(dir, 1<<62, log)
	err := g.check()
	if !errors.Is(err, ErrInsufficientStorage) || httpapi.StatusOf(err) != http.StatusInsufficientStorage ||
		!strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "min_free_disk 4.0EiB") {
		t.Fatalf("huge minimum: %v (status %d)", err, httpapi.StatusOf(err))
	}
	// Space freed: the next reading, a second later, lets writes through.
	g.min = 1
	if err := g.check(); err == nil {
		t.Fatal("the reading was not kept for a second")
	}
	g.at = g.at.Add(-diskRecheck - time.Millisecond)
	if err := g.check(); err != nil {
		t.Fatalf("after the recheck: %v", err)
	}
}

// TestDiskGuardHandOff: a guard asks for a leadership hand-off only while
// it refuses writes, and at most once per diskHandOffEvery.
func TestDiskGuardHandOff(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	avail := uint64(1 << 30)
	g := newDiskGuard(t.TempDir(), 1<<20, slog.New(slog.NewTextHandler(io.Discard, nil)))
	g.now = func() time.Time { return now }
	g.statfs = func(string) (uint64, error) { return avail, nil }
	var nilGuard *diskGuard
	if nilGuard.shouldHandOff() {
		t.Fatal("a nil guard asks for a hand-off")
	}
	if g.check() != nil || g.shouldHandOff() {
		t.Fatal("a guard with space asks for a hand-off")
	}
	avail = 1 << 10
	now = now.Add(diskRecheck)
	if g.check() == nil {
		t.Fatal("no refusal below the minimum")
	}
	if !g.shouldHandOff() {
		t.Fatal("no hand-off while refusing")
	}
	now = now.Add(diskHandOffEvery - time.Millisecond)
	if g.shouldHandOff() {
		t.Fatal("a second hand-off within diskHandOffEvery")
	}
	now = now.Add(time.Millisecond)
	if !g.shouldHandOff() {
		t.Fatal("no hand-off after diskHandOffEvery")
	}
	avail = 1 << 30
	now = now.Add(diskHandOffEvery)
	if g.check() != nil || g.shouldHandOff() {
		t.Fatal("a hand-off after space was freed")
	}
}
