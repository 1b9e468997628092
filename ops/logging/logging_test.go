package logging

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestNewFormats(t *testing.T) {
	var buf bytes.Buffer
	log, f, err := New(Options{Level: "info", Format: "json"}, &buf)
	if err != nil || f != nil {
		t.Fatalf("New: %v, %v", f, err)
	}
	log.Debug("hidden")
	log.Info("hello", "k", 1)
	var rec map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil || rec["msg"] != "hello" || rec["level"] != "INFO" || rec["k"] != 1.0 {
		t.Fatalf("json record %q: %v", buf.String(), err)
	}
	buf.Reset()
	log, _, err = New(Options{Level: "WARN"}, &buf)
	if err != nil {
		t.Fatal(err)
	}
	log.Info("hidden")
	log.Warn("careful")
	if got := buf.String(); !strings.Contains(got, "level=WARN msg=careful") || strings.Contains(got, "hidden") {
		t.Fatalf("text output %q", got)
	}
	for _, o := range []Options{{Level: "loud"}, {Level: "info", Format: "xml"}} {
		if _, _, err := New(o, &buf); err == nil || !strings.Contains(err.Error(), "--log-") {
			t.Errorf("New(%+v) = %v, want an error naming the flag", o, err)
		}
	}
}

// TestFileReopen: after a rename, Reopen writes to a new file at the path
// and the renamed one keeps what was written before.
func TestFileReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hakuriver.log")
	log, f, err := New(Options{Level: "info", File: path}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	log.Info("before rotation")
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	log.Info("still to the renamed file")
	if err := f.Reopen(); err != nil {
		t.Fatal(err)
	}
	log.Info("after rotation")
	old, _ := os.ReadFile(path + ".1")
	cur, _ := os.ReadFile(path)
	if !strings.Contains(string(old), "before rotation") || !strings.Contains(string(old), "still to the renamed file") || strings.Contains(string(old), "after rotation") {
		t.Errorf("rotated file: %q", old)
	}
	if !strings.Contains(string(cur), "after rotation") || strings.Contains(string(cur), "before") {
		t.Errorf("new file: %q", cur)
	}
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o640 {
		t.Errorf("new file mode: %v, %v", st.Mode(), err)
	}
}

// TestFileRefusesSymlink: a symlink planted where the log goes is not
// followed (the runner logs as root), and its target is left unchanged.
func TestFileRefusesSymlink(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "victim")
	if err := os.WriteFile(target, []byte("precious\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "host.log")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if f, err := OpenFile(link); err == nil {
		f.Close()
		t.Fatal("OpenFile followed a symlink")
	}
	if b, _ := os.ReadFile(target); string(b) != "precious\n" {
		t.Fatalf("the symlink's target changed: %q", b)
	}
}
