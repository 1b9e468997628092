package native

import (
	"io"
	"os"
	"path/filepath"
	"testing"
)

// TestRecordExitClosesEndedPipe checks that the exit record is readable
// once the ended pipe is closed, and that without a pipe (a runner of an
// earlier version) it is written all the same.
func TestRecordExitClosesEndedPipe(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	path := filepath.Join(dir, fileExit)
	if err := recordExit(path, exitRecord{Code: 3}, &startedPipe{f: w}); err != nil {
		t.Fatal(err)
	}
	if b, err := io.ReadAll(r); err != nil || len(b) != 0 {
		t.Fatalf("ended pipe: read %q, %v; want EOF with nothing written", b, err)
	}
	ex, err := readExit(dir)
	if err != nil || ex == nil || ex.Code != 3 {
		t.Fatalf("exit record = %+v, %v; want code 3", ex, err)
	}
	other := filepath.Join(t.TempDir(), fileExit)
	if err := recordExit(other, exitRecord{Code: 4}, nil); err != nil {
		t.Fatal(err)
	}
	if ex, err := readExit(filepath.Dir(other)); err != nil || ex == nil || ex.Code != 4 {
		t.Fatalf("exit record without a pipe = %+v, %v; want code 4", ex, err)
	}
}
