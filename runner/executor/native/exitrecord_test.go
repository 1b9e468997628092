package native

import (
	"io"
	"os"
	"path/filepath"
	"testing"
)

// TestRecordExitClosesEndedPipe checks that the exit record is readable
// once the ended pipe is closed, that the tidying (the cgroup's removal)
// runs only once the pipe is closed, and that without a pipe (a runner of
// an earlier version) the record is written all the same, after the
// tidying, as before.
func TestRecordExitClosesEndedPipe(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	path := filepath.Join(dir, fileExit)
	tidied := false
	tidy := func() {
		tidied = true
		// The pipe is closed already: the read ends at once.
		if b, err := io.ReadAll(r); err != nil || len(b) != 0 {
			t.Errorf("ended pipe while tidying: read %q, %v; want EOF with nothing written", b, err)
		}
		if ex, err := readExit(dir); err != nil || ex == nil || ex.Code != 3 {
			t.Errorf("exit record while tidying = %+v, %v; want code 3", ex, err)
		}
	}
	if err := recordExit(path, exitRecord{Code: 3}, &startedPipe{f: w}, tidy); err != nil {
		t.Fatal(err)
	}
	if !tidied {
		t.Fatal("recordExit did not tidy")
	}
	ex, err := readExit(dir)
	if err != nil || ex == nil || ex.Code != 3 {
		t.Fatalf("exit record = %+v, %v; want code 3", ex, err)
	}
	other := filepath.Join(t.TempDir(), fileExit)
	tidied = false
	if err := recordExit(other, exitRecord{Code: 4}, nil, func() {
		tidied = true
		if ex, err := readExit(filepath.Dir(other)); err != nil || ex != nil {
			t.Errorf("exit record without a pipe, while tidying = %+v, %v; want none yet", ex, err)
		}
	}); err != nil {
		t.Fatal(err)
	}
	if ex, err := readExit(filepath.Dir(other)); err != nil || ex == nil || ex.Code != 4 {
		t.Fatalf("exit record without a pipe = %+v, %v; want code 4", ex, err)
	}
	if !tidied {
		t.Fatal("recordExit without a pipe did not tidy")
	}
}
