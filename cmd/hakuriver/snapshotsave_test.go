package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hakuriver/hakuriver-ha/cluster/backup"
	"github.com/hakuriver/hakuriver-ha/fsm"
)

// testBackup returns a valid backup file of an empty state.
func testBackup(t *testing.T) []byte {
	t.Helper()
	snap := fsm.New().Snapshot()
	var buf bytes.Buffer
	hdr := backup.Header{Format: backup.FormatVersion, SnapshotVersion: fsm.SnapshotVersion, Counts: snap.Counts()}
	if _, _, err := backup.Write(&buf, hdr, snap.Write); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// onlyFile fails unless dir holds exactly the file name (no partial file
// left behind).
func onlyFile(t *testing.T, dir, name string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if len(names) != 1 || names[0] != name {
		t.Fatalf("dir holds %v, want only %s", names, name)
	}
}

// TestSnapshotSaveCapsAndNeverOverwrites checks `snapshot save`'s writer:
// an endless download stops at --max-size and leaves nothing behind; a file
// that appears at the target during the download is kept unless --force.
func TestSnapshotSaveCapsAndNeverOverwrites(t *testing.T) {
	ctx := context.Background()
	good := testBackup(t)

	t.Run("a download past --max-size is stopped and removed", func(t *testing.T) {
		dir := t.TempDir()
		path := filepath.Join(dir, "b.snap")
		const limit = 1 << 20
		var sent int64
		// A hostile or broken server sending up to 1 GiB: the cap must stop
		// the copy long before that.
		_, err := saveSnapshot(ctx, path, limit, false, func(w io.Writer) (int64, error) {
			n, err := io.Copy(w, io.LimitReader(zeros{}, 1<<30))
			sent = n
			return n, err
		})
		if !errors.Is(err, errTooLarge) || !strings.Contains(err.Error(), "--max-size") {
			t.Fatalf("err = %v, want one naming --max-size", err)
		}
		if sent > 2*limit {
			t.Fatalf("the download went on to %d bytes past a %d-byte cap", sent, limit)
		}
		if ents, _ := os.ReadDir(dir); len(ents) != 0 {
			t.Fatalf("left behind: %v", ents)
		}
		// A valid file one byte larger than the cap is refused too.
		if _, err := saveSnapshot(ctx, path, int64(len(good))-1, false, func(w io.Writer) (int64, error) {
			n, err := w.Write(good)
			return int64(n), err
		}); !errors.Is(err, errTooLarge) {
			t.Fatalf("err = %v, want errTooLarge", err)
		}
		if _, err := saveSnapshot(ctx, path, int64(len(good)), false, func(w io.Writer) (int64, error) {
			n, err := w.Write(good)
			return int64(n), err
		}); err != nil {
			t.Fatalf("a file of exactly --max-size bytes: %v", err)
		}
		onlyFile(t, dir, "b.snap")
	})

	t.Run("a file created during the download is not replaced without --force", func(t *testing.T) {
		dir := t.TempDir()
		path := filepath.Join(dir, "b.snap")
		theirs := []byte("someone else's file")
		fetch := func(w io.Writer) (int64, error) {
			// The target appears after the command's first check.
			if err := os.WriteFile(path, theirs, 0o600); err != nil {
				return 0, err
			}
			n, err := w.Write(good)
			return int64(n), err
		}
		_, err := saveSnapshot(ctx, path, backup.DefaultMaxFileBytes, false, fetch)
		if err == nil || !strings.Contains(err.Error(), "--force") {
			t.Fatalf("err = %v, want one naming --force", err)
		}
		if got, _ := os.ReadFile(path); !bytes.Equal(got, theirs) {
			t.Fatalf("the existing file was replaced: %q", got)
		}
		onlyFile(t, dir, "b.snap")

		if _, err := saveSnapshot(ctx, path, backup.DefaultMaxFileBytes, true, fetch); err != nil {
			t.Fatalf("with --force: %v", err)
		}
		if got, _ := os.ReadFile(path); !bytes.Equal(got, good) {
			t.Fatal("with --force the file was not replaced by the snapshot")
		}
		onlyFile(t, dir, "b.snap")
	})

	t.Run("--max-size must be positive", func(t *testing.T) {
		_, _, err := runCLI(t, "cluster", "snapshot", "save", "--max-size", "0", filepath.Join(t.TempDir(), "b.snap"))
		if err == nil || !strings.Contains(err.Error(), "--max-size") {
			t.Fatalf("err = %v, want one naming --max-size", err)
		}
	})
}

// zeros is an endless reader of zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
