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
