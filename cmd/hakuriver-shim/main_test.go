package main

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/hakuriver/hakuriver-ha/runner/executor/native"
)

const runMainEnv = "HAKURIVER_SHIM_TEST_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(runMainEnv) == "1" {
		os.Args = append(os.Args[:1], strings.Fields(os.Getenv(runMainEnv+"_ARGS"))...)
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// runMain runs this binary's main with args in a child process.
func runMain(t *testing.T, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), runMainEnv+"=1", runMainEnv+"_ARGS="+strings.Join(args, " "))
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return string(out), ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return string(out), 0
}

// TestProtocolAndUsage: --protocol answers the supervisor protocol the
// runner of the same build checks; anything but one task directory (or
// the warm "-") is refused with usage and status 2.
func TestProtocolAndUsage(t *testing.T) {
	out, code := runMain(t, "--protocol")
	if code != 0 || strings.TrimSpace(out) != strconv.Itoa(native.ShimProtocol) {
		t.Errorf("--protocol: %q, status %d; want %d", out, code, native.ShimProtocol)
	}
	for _, args := range [][]string{{}, {"--help"}, {"/a", "/b"}} {
		out, code := runMain(t, args...)
		if code != 2 || !strings.Contains(out, "usage: hakuriver-shim") {
			t.Errorf("%q: %q, status %d; want usage and status 2", args, out, code)
		}
	}
}
