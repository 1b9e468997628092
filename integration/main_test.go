//go:build integration

// Package integration runs real `hakuriver host` processes on loopback and
// checks the design's invariants under faults: SIGKILL and SIGSTOP of the
// leader, loss of quorum, membership changes. The tests run one after the
// other: each starts its own cluster, and a 2-core machine has no room for
// two at once.
package integration

import (
	"fmt"
	"os"
	"testing"

	"github.com/hakuriver/hakuriver-ha/integration/harness"
)

// hostBin is the hakuriver binary under test: $HAKURIVER_BIN, or one built
// by TestMain into a temporary directory.
var hostBin string

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "hakuriver-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "integration:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	if hostBin, err = harness.Binary(dir); err != nil {
		fmt.Fprintln(os.Stderr, "integration:", err)
		return 1
	}
	return m.Run()
}

// startCluster starts three replicas of hostBin with opts.
func startCluster(t *testing.T, opts harness.Options) *harness.Cluster {
	t.Helper()
	opts.Bin = hostBin
	if opts.Replicas == 0 {
		opts.Replicas = 3
	}
	return harness.StartCluster(t, opts)
}
