package native

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// TestSlimShimChoice: an Executor without a ShimCommand uses the slim
// supervisor binary beside its executable only when it is a regular
// executable file nobody else may write and it answers --protocol with
// this build's ShimProtocol; otherwise it keeps "hakuriver runner-shim".
func TestSlimShimChoice(t *testing.T) {
	t.Parallel()
	script := func(answer string) string {
		return "#!/bin/sh\n[ \"$1\" = --protocol ] && echo " + answer + "\n"
	}
	for _, tc := range []struct {
		name    string
		content string // "" : no slim binary
		mode    os.FileMode
		want    bool
	}{
		{"missing", "", 0, false},
		{"same protocol", script(strconv.Itoa(ShimProtocol)), 0o755, true},
		{"other protocol", script(strconv.Itoa(ShimProtocol + 1)), 0o755, false},
		{"says nothing", "#!/bin/sh\nexit 0\n", 0o755, false},
		{"fails", "#!/bin/sh\nexit 3\n", 0o755, false},
		{"not executable", script(strconv.Itoa(ShimProtocol)), 0o644, false},
		{"writable by others", script(strconv.Itoa(ShimProtocol)), 0o757, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			exe := filepath.Join(dir, "hakuriver")
			if err := os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755); err != nil {
				t.Fatal(err)
			}
			slim := filepath.Join(dir, SlimShimName)
			if tc.content != "" {
				if err := os.WriteFile(slim, []byte(tc.content), 0o600); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(slim, tc.mode); err != nil { // past the umask
					t.Fatal(err)
				}
			}
			cmd, why := slimShim(exe)
			if got := cmd != nil; got != tc.want {
				t.Fatalf("slimShim = %q (%v), want used=%v", cmd, why, tc.want)
			}
			if tc.want && (len(cmd) != 1 || cmd[0] != slim) {
				t.Errorf("slimShim = %q, want [%s]", cmd, slim)
			}
			if !tc.want && why == nil {
				t.Error("slimShim refused the binary without saying why")
			}
		})
	}
}
