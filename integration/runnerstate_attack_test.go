//go:build integration

package integration

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/integration/harness"
)

// forgeScript is what the attacking container task runs (busybox sh). It
// looks at /local_temp (the runner's local_temp_dir, mounted into every
// task) and writes there what the runner kept there before
// runner_state_dir existed:
//   - a native task record tasks/<forged>/spec.json whose cgroup root is a
//     directory the task controls (its host path, $1: a task learns it from
//     /proc/self/mountinfo or guesses the default), whose cgroup.procs
//     lists a host process ($2) and whose freezer.state is a symlink to a
//     host file ($3);
//   - runner-id overwritten, so that a restarted runner would no longer
//     recognise its own containers;
//   - finished/<id> for the ID of a later task, which the test hands over
//     through the shared dir ($4) once that task is queued.
//
// $5 is the forged task ID.
const forgeScript = `set -e
hostlt=$1; vpid=$2; vfile=$3; x=/shared/$4; fid=$5
ls -la /local_temp > $x/seen.txt 2>&1 || true
evil=/local_temp/evil
for c in cpu cpuset memory freezer; do
  mkdir -p $evil/$c/p/task-$fid
  echo $vpid > $evil/$c/p/task-$fid/cgroup.procs
done
ln -sf $vfile $evil/freezer/p/task-$fid/freezer.state
ln -sf $vfile $evil/cpu/p/task-$fid/cpu.cfs_quota_us
mkdir -p /local_temp/tasks/$fid /local_temp/finished /local_temp/docker-tasks
printf '{"spec":{"TaskID":%s,"Command":"sleep"},"cgroup":{"version":1,"root":"%s/evil","parent":"p","controllers":{"cpu":"cpu","cpuset":"cpuset","memory":"memory","freezer":"freezer"}},"created_at":"2020-01-01T00:00:00Z"}' $fid $hostlt > /local_temp/tasks/$fid/spec.json
printf '{"pid":%s,"pgid":%s,"start_ticks":0,"started_at":"2020-01-01T00:00:00Z"}' $vpid $vpid > /local_temp/tasks/$fid/task.json
echo 0123456789ab > /local_temp/runner-id
echo planted > $x/attacked
while [ ! -s $x/guess ]; do sleep 1; done
touch /local_temp/finished/$(cat $x/guess)
echo done > $x/done
`

// TestTaskCannotSteerRunnerState runs the attack of issue 10 from a plain
// container task (no privileges, no extra mounts) against a runner with a
// Docker executor, real cgroups and a real host process and file as
// victims. The runner keeps its state in runner_state_dir, so nothing the
// task wrote into /local_temp is read: the victim process lives, the
// victim file is unchanged, the later task whose tombstone was forged
// completes, and a VPS and a long-running container task survive a runner
// restart after runner-id was overwritten. On the code before runner_state_dir the
// victim was SIGKILLed, the file truncated, the later task stuck in
// assigning and the VPS and the long task lost after the restart.
func TestTaskCannotSteerRunnerState(t *testing.T) {
	requireDocker(t, busyboxImage, sshdImage)
	name := "rs-" + uniqueSuffix()
	c := startWithRunners(t, runnerSpec{name, harness.RunnerOptions{Cores: 3, Memory: "4G"}})
	env, vpsEnv := envName("hkt-rs"), envName("hkt-rs-vps")
	createEnvironment(t, c, busyboxImage, env)
	createTar(t, c, env)
	createEnvironment(t, c, sshdImage, vpsEnv)
	createTar(t, c, vpsEnv)
	r := c.Runner(name)
	vps := vpsCreate(t, c, "--target", name, "--container", vpsEnv, "--cores", "1",
		"--gen-ssh-key", "--key-out", filepath.Join(t.TempDir(), "vps_ed25519"))

	victim := exec.Command("sleep", "600")
	victim.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := victim.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { victim.Wait(); close(exited) }()          //nolint:errcheck // only reaping
	t.Cleanup(func() { victim.Process.Kill(); <-exited }) //nolint:errcheck // may be gone already
	victimAlive := func() bool {
		select {
		case <-exited:
			return false
		default:
			return true
		}
	}
	victimFile := filepath.Join(t.TempDir(), "victim.txt")
	const victimContent = "precious host data\n"
	if err := os.WriteFile(victimFile, []byte(victimContent), 0o644); err != nil {
		t.Fatal(err)
	}

	docker := []string{"--target", name, "--container", env, "--cores", "1"}
	long := submitCLI(t, c, docker, "sleep", "3600")
	t.Cleanup(func() { harness.RemoveContainers(t, "hakuriver-task-"+long) })
	killOnFailure(t, c, long)
	c.WaitStatus(long, "running", dockerTaskTimeout)

	xdir := "attack-" + uniqueSuffix()
	x := sharedDir(t, c, filepath.Join("shared_data", xdir)) // /shared/<xdir> in the task
	forged := strconv.FormatInt(987654321, 10)
	attack := submitCLI(t, c, docker, "sh", "-c", forgeScript, "forge",
		r.LocalTempDir(), strconv.Itoa(victim.Process.Pid), victimFile, xdir, forged)
	t.Cleanup(func() { harness.RemoveContainers(t, "hakuriver-task-"+attack) })
	killOnFailure(t, c, attack)
	c.Poll(dockerTaskTimeout, "the attacking task to plant its files", func() (bool, string) {
		_, err := os.Stat(filepath.Join(x, "attacked"))
		task, _ := c.Task(0, attack)
		return err == nil, describe(task)
	})
	if _, err := os.Stat(filepath.Join(r.LocalTempDir(), "tasks", forged, "spec.json")); err != nil {
		t.Fatalf("the attack did not plant its record: %v", err)
	}

	// Every core is taken: the later task waits, and its ID is known.
	later := submitCLI(t, c, []string{"--target", name, "--container", env, "--cores", "1"}, "echo", "later task ran")
	t.Cleanup(func() { harness.RemoveContainers(t, "hakuriver-task-"+later) })
	if err := os.WriteFile(filepath.Join(x, "guess"), []byte(later+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Every check below runs even when one fails, so that a regression
	// shows all of its effects.
	c.Poll(dockerTaskTimeout, "the attacking task to plant the tombstone", func() (bool, string) {
		_, err := os.Stat(filepath.Join(x, "done"))
		return err == nil, "not yet"
	})
	if err := harness.Eventually(dockerTaskTimeout, func() (bool, string) {
		task, err := c.Task(0, attack)
		return err == nil && task.Status == "completed", describe(task)
	}); err != nil {
		t.Errorf("the attacking task itself did not complete (a stalled runner loses its tasks): %v", err)
	}
	checkVictims := func(when string) {
		t.Helper()
		if !victimAlive() {
			t.Errorf("%s: the host process a forged cgroup.procs named was killed", when)
		}
		if b, err := os.ReadFile(victimFile); err != nil || string(b) != victimContent {
			t.Errorf("%s: victim file now %q (%v), want %q", when, b, err, victimContent)
		}
	}
	checkVictims("after the attack")
	err := harness.Eventually(dockerTaskTimeout, func() (bool, string) {
		task, err := c.Task(0, later)
		if err != nil {
			return false, err.Error()
		}
		return task.Status == "completed", describe(task)
	})
	if err != nil {
		t.Errorf("the later task whose tombstone a task forged did not complete: %v", err)
	}

	// A restarted runner must still know its containers (runner-id was
	// overwritten in /local_temp) and must not act on the planted record.
	c.KillRunner(name)
	c.RestartRunner(name)
	c.WaitNodeStatus(name, "online", 30*time.Second)
	c.Poll(30*time.Second, "the restarted runner to track the VPS and the long task", func() (bool, string) {
		n, err := c.RunnerTasks(name)
		if err != nil {
			return false, err.Error()
		}
		return n >= 2, strconv.Itoa(n) + " tasks tracked"
	})
	// Heartbeats of the restarted runner reach the leader: a task it did
	// not report would now be lost.
	c.WaitNodeStatus(name, "online", 30*time.Second)
	for _, id := range []string{long, vps.TaskID} {
		if task, err := c.Task(0, id); err != nil || task.Status != "running" {
			t.Errorf("task %s after the restart: %s, %v; want running", id, describe(task), err)
		}
	}
	if task, err := c.Task(0, vps.TaskID); err == nil && task.SSHPort > 0 {
		conn, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(task.SSHPort)), 5*time.Second)
		if err != nil {
			t.Errorf("the VPS's sshd after the restart: %v", err)
		} else {
			conn.Close()
		}
	}
	// It is still managed: a kill reaches its container.
	c.CLIOK("task", "kill", long)
	c.WaitStatus(long, "killed", dockerTaskTimeout)
	checkVictims("after the runner restart")
	c.Poll(15*time.Second, "the long task's container to stop", func() (bool, string) {
		st, err := harness.DockerState("hakuriver-task-" + long)
		if err != nil {
			return true, "gone"
		}
		return st != "running", st
	})
	if !harness.LogContains(r.LogPath(), "runner state of an older version") {
		t.Errorf("the runner did not warn that it ignores the runner state planted in local_temp_dir")
	}
	t.Logf("what the task saw in /local_temp:\n%s", readFileOr(filepath.Join(x, "seen.txt")))
}

// readFileOr returns the file's content, "" when unreadable.
func readFileOr(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return string(b)
}
