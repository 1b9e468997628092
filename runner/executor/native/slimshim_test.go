package native

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// copyTestBinary copies this test binary (which answers --protocol, see
// TestMain) to path with mode.
func copyTestBinary(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	src, err := os.Open(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // past the umask
		t.Fatal(err)
	}
}

// TestSlimShimChoice: an Executor without a ShimCommand uses the slim
// supervisor binary beside its executable only when it is a regular
// executable file (no symbolic link) that nobody else may write, in a
// directory nobody else may write, and it answers --protocol with this
// build's ShimProtocol; otherwise it keeps "hakuriver runner-shim".
func TestSlimShimChoice(t *testing.T) {
	for _, tc := range []struct {
		name    string
		answer  string // what the binary answers to --protocol
		mode    os.FileMode
		dirMode os.FileMode
		link    bool // the slim name is a symbolic link to the binary
		missing bool
		want    bool
	}{
		{name: "same protocol", mode: 0o755, dirMode: 0o755, want: true},
		{name: "missing", missing: true, dirMode: 0o755},
		{name: "other protocol", answer: strconv.Itoa(ShimProtocol + 1), mode: 0o755, dirMode: 0o755},
		{name: "fails", answer: "fail", mode: 0o755, dirMode: 0o755},
		{name: "not executable", mode: 0o644, dirMode: 0o755},
		{name: "writable by others", mode: 0o757, dirMode: 0o755},
		{name: "directory writable by others", mode: 0o755, dirMode: 0o1777},
		{name: "symbolic link", link: true, mode: 0o755, dirMode: 0o755},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(testProtocolEnv, tc.answer)
			dir := filepath.Join(t.TempDir(), "bin")
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			exe := filepath.Join(dir, "hakuriver")
			if err := os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755); err != nil {
				t.Fatal(err)
			}
			slim := filepath.Join(dir, SlimShimName)
			switch {
			case tc.missing:
			case tc.link:
				real := filepath.Join(t.TempDir(), SlimShimName)
				copyTestBinary(t, real, tc.mode)
				if err := os.Symlink(real, slim); err != nil {
					t.Fatal(err)
				}
			default:
				copyTestBinary(t, slim, tc.mode)
			}
			if err := os.Chmod(dir, tc.dirMode); err != nil {
				t.Fatal(err)
			}
			b, why := slimShim(exe)
			if got := b != nil; got != tc.want {
				t.Fatalf("slimShim used=%v (%v), want %v", got, why, tc.want)
			}
			if !tc.want {
				if why == nil {
					t.Error("slimShim refused the binary without saying why")
				}
				return
			}
			defer b.f.Close()
			if b.path != slim {
				t.Errorf("slimShim path %s, want %s", b.path, slim)
			}
			// The file checked is the file run: one renamed over it
			// afterwards (an upgrade, or anyone else) is not.
			evil := filepath.Join(dir, ".evil")
			if err := os.WriteFile(evil, []byte("#!/bin/sh\necho evil\n"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(evil, slim); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(b.exec(), "--protocol").Output()
			if got := strings.TrimSpace(string(out)); err != nil || got != strconv.Itoa(ShimProtocol) {
				t.Errorf("supervisor binary after a swap answers %q (%v), want the checked one's %d", got, err, ShimProtocol)
			}
		})
	}
}
