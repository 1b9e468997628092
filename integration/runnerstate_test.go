//go:build integration

package integration

import (
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/integration/harness"
)

// refuseTimeout bounds how long a runner that must refuse to start may
// take to exit.
const refuseTimeout = 30 * time.Second

// TestRunnerStateDirExclusive starts a real runner, then real `hakuriver
// runner` processes that must refuse to start: one given the same
// runner_state_dir (it is locked: the error names the directory and the
// holder's PID), and ones whose runner_state_dir is inside local_temp_dir
// or shared_dir (the error names the keys). The first runner keeps
// running and its doctor check of the state directory is green.
func TestRunnerStateDirExclusive(t *testing.T) {
	c := startWithRunners(t, runnerSpec{"sd1", twoCores})
	first := c.Runner("sd1")

	res := c.RunRunnerToExit("sd2", harness.RunnerOptions{NoDocker: true, Args: []string{"--runner-state-dir", first.StateDir()}}, refuseTimeout)
	if res.Err != nil || res.Code == 0 {
		t.Fatalf("a second runner on the same runner_state_dir: want a refusal (non-zero exit), got %s", res)
	}
	if !strings.Contains(res.Stderr, first.StateDir()) || !strings.Contains(res.Stderr, "locked") {
		t.Errorf("the refusal does not name the locked directory %s: %s", first.StateDir(), res.Stderr)
	}
	if !strings.Contains(res.Stderr, "pid "+strconv.Itoa(first.PID())) {
		t.Errorf("the refusal does not name the holder's pid %d: %s", first.PID(), res.Stderr)
	}

	for _, tc := range []struct{ dir, key string }{
		{filepath.Join(first.LocalTempDir(), "state"), "local_temp_dir"},
		{filepath.Join(c.SharedDir(), "runner-state"), "shared_dir"},
	} {
		res := c.RunRunnerToExit("sd3", harness.RunnerOptions{NoDocker: true,
			Args: []string{"--local-temp-dir", first.LocalTempDir(), "--runner-state-dir", tc.dir}}, refuseTimeout)
		if res.Err != nil || res.Code == 0 {
			t.Errorf("runner_state_dir %s: want a refusal, got %s", tc.dir, res)
			continue
		}
		if !strings.Contains(res.Stderr, "runner_state_dir") || !strings.Contains(res.Stderr, tc.key) {
			t.Errorf("runner_state_dir %s: the refusal does not name runner_state_dir and %s: %s", tc.dir, tc.key, res.Stderr)
		}
	}

	c.WaitNodeStatus("sd1", "online", 10*time.Second)
	id := submitOne(t, c, 0, onTarget(native("true"), "sd1"))
	if task := c.WaitFinal(id, taskTimeout); task.Status != "completed" {
		t.Errorf("a task on the first runner after the refusals: %s", describe(task))
	}
}
