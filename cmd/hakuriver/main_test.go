package main

import (
	"os"
	"testing"
)

// runMainEnv makes the test binary act as the hakuriver binary: `hakuriver
// dev` started by a test runs its members (and runners their shims) with
// os.Executable(), which is this test binary.
const runMainEnv = "HAKURIVER_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(runMainEnv) == "1" {
		os.Exit(run())
	}
	os.Setenv(runMainEnv, "1") //nolint:errcheck // only for the children
	os.Exit(m.Run())
}
