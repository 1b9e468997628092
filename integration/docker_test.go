//go:build integration

package integration

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/integration/harness"
	"github.com/hakuriver/hakuriver-ha/ops/environment"
)

// Docker test images (make test-images, .ci/test-images.sh).
const (
	busyboxImage = "hakuriver-test/busybox:latest"
	sshdImage    = "hakuriver-test/sshd:latest"
)

// Bounds of the Docker tests.
const (
	// dockerTaskTimeout bounds a short container task, tarball load
	// included.
	dockerTaskTimeout = 60 * time.Second
	// createTarTimeout bounds one `docker create-tar` of a test image.
	createTarTimeout = 3 * time.Minute
)

// tarballDir is the default docker.container_dir under the shared dir.
const tarballDir = "hakuriver-containers"

// requireDocker skips the test when Docker or one of images is missing,
// and fails it instead when HAKURIVER_REQUIRE_DOCKER=1 (CI).
func requireDocker(t *testing.T, images ...string) {
	t.Helper()
	problem := harness.DockerProblem(images...)
	if problem == "" {
		return
	}
	if os.Getenv("HAKURIVER_REQUIRE_DOCKER") == "1" {
		t.Fatalf("HAKURIVER_REQUIRE_DOCKER=1 but %s", problem)
	}
	t.Skipf("skipping: %s (set HAKURIVER_REQUIRE_DOCKER=1 to make this a failure)", problem)
}

// dockerRunner is a runner with a Docker executor, 2 cores and 4 GB.
var dockerRunner = harness.RunnerOptions{Cores: 2, Memory: "4G"}

// startDockerCluster starts 3 replicas and 2 runners with Docker
// executors. The runners' names are unique to this run: every runner on
// this machine shares one Docker engine and finds its containers by its
// name, so a runner of another cluster (another test process) with the
// same name would adopt them.
func startDockerCluster(t *testing.T, prefix string) (*harness.Cluster, [2]string) {
	t.Helper()
	return startDockerClusterWith(t, prefix, harness.Options{})
}

// startDockerClusterWith is startDockerCluster with the cluster options
// opts (the heartbeat settings are the tests' own).
func startDockerClusterWith(t *testing.T, prefix string, opts harness.Options) (*harness.Cluster, [2]string) {
	t.Helper()
	suffix := uniqueSuffix()
	names := [2]string{prefix + "1-" + suffix, prefix + "2-" + suffix}
	opts.HeartbeatInterval, opts.HeartbeatTimeoutFactor = hbInterval, hbFactor
	c := startCluster(t, opts)
	for _, r := range []runnerSpec{{names[0], dockerRunner}, {names[1], dockerRunner}} {
		c.StartRunner(r.name, r.opts)
	}
	// Runs before the cluster's shutdown: a container a failed test left
	// (a task still running, a VPS) does not outlive the test.
	t.Cleanup(func() {
		for _, n := range names {
			harness.RemoveRunnerContainers(t, n)
		}
	})
	return c, names
}

// uniqueSuffix returns 8 random hex digits, for names that must not
// collide with those of other test processes on this machine.
func uniqueSuffix() string {
	b := make([]byte, 4)
	rand.Read(b) //nolint:errcheck // crypto/rand.Read never fails
	return hex.EncodeToString(b)
}

// envName returns an environment name unique to this run.
func envName(prefix string) string { return prefix + "-" + uniqueSuffix() }

// envImage is the image a runner runs environment env's tasks from.
func envImage(env string) string { return environment.ImageName(env) }

// createEnvironment creates environment container env from image through
// the CLI, and removes the container and its image at cleanup.
func createEnvironment(t *testing.T, c *harness.Cluster, image, env string) {
	t.Helper()
	t.Cleanup(func() {
		harness.RemoveContainers(t, env)
		harness.RemoveImages(t, envImage(env))
	})
	r := c.CLIVia(nil, createTarTimeout, "", "docker", "create-container", image, env)
	if r.Code != 0 {
		t.Fatalf("create environment: %s", r)
	}
	if st, err := harness.DockerState(env); err != nil || st != "running" {
		t.Fatalf("environment container %s: state %q, %v", env, st, err)
	}
}

// createTar runs `docker create-tar env` through the CLI against replicas
// idxs (all when none) and returns the new version.
func createTar(t *testing.T, c *harness.Cluster, env string, idxs ...int) api.CreateTarResponse {
	t.Helper()
	r := c.CLIVia(idxs, createTarTimeout, "", "-o", "json", "docker", "create-tar", env)
	if r.Code != 0 {
		t.Fatalf("create-tar: %s", r)
	}
	var res api.CreateTarResponse
	if err := r.Decode(&res); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(r.Stderr, "create-tar "+env+":") {
		t.Errorf("create-tar printed no progress on stderr: %q", r.Stderr)
	}
	if fi, err := os.Stat(res.TarballPath); err != nil || fi.Size() == 0 {
		t.Fatalf("create-tar answered %+v but the tarball is not there: %v", res, err)
	}
	t.Logf("create-tar %s: version %d, %d bytes, %s", env, res.Timestamp, res.Size, r.Elapsed.Round(time.Millisecond))
	return res
}

// envShell runs a script in environment env through `docker shell`
// against replicas idxs (all when none).
func envShell(t *testing.T, c *harness.Cluster, env, script string, idxs ...int) string {
	t.Helper()
	r := c.CLIVia(idxs, 30*time.Second, script+"\nexit\n", "docker", "shell", env)
	if r.Code != 0 {
		t.Fatalf("docker shell: %s", r)
	}
	return r.Stdout
}

// listTars returns `docker list-tars --all -o json`.
func listTars(t *testing.T, c *harness.Cluster) map[string]api.TarballSet {
	t.Helper()
	r := c.CLIOK("-o", "json", "docker", "list-tars", "--all")
	var out map[string]api.TarballSet
	if err := r.Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out
}

// submitCLI submits a task through the CLI with the given submit flags
// and command, and returns its ID.
func submitCLI(t *testing.T, c *harness.Cluster, flags []string, command ...string) string {
	t.Helper()
	args := append([]string{"-o", "json", "task", "submit"}, flags...)
	args = append(append(args, "--"), command...)
	r := c.CLIOK(args...)
	var resp api.SubmitResponse
	if err := r.Decode(&resp); err != nil {
		t.Fatal(err)
	}
	if len(resp.TaskIDs) != 1 {
		t.Fatalf("submit: want 1 task, got %+v", resp)
	}
	return resp.TaskIDs[0]
}

// stdoutOf returns a finished task's stdout as `task logs` prints it.
func stdoutOf(t *testing.T, c *harness.Cluster, id string) string {
	t.Helper()
	return c.CLIOK("task", "logs", id).Stdout
}

// waitCompleted waits for task id to end and fails unless it completed.
func waitCompleted(t *testing.T, c *harness.Cluster, id string) api.Task {
	t.Helper()
	task := c.WaitFinal(id, dockerTaskTimeout)
	if task.Status != "completed" {
		t.Fatalf("want completed, got %s", describe(task))
	}
	return task
}

// TestDockerEnvironments drives the environment workflow through the CLI
// against 3 replicas and 2 runners: an environment prepared through
// `docker shell`, saved with `create-tar`, loaded by each runner, a new
// version, limits of Docker tasks, pause/resume/kill, and bad input.
func TestDockerEnvironments(t *testing.T) {
	requireDocker(t, busyboxImage)
	c, names := startDockerCluster(t, "dk")
	d := &dockerFixture{c: c, env: envName("hkt-env"), r1: names[0], r2: names[1]}
	createEnvironment(t, c, busyboxImage, d.env)

	// Each subtest builds on the previous one's environment version.
	if !t.Run("TarballOnEachRunner", d.testTarballOnEachRunner) {
		t.FailNow()
	}
	t.Run("NewVersion", d.testNewVersion)
	t.Run("MemoryLimitOOM", d.testOOM)
	t.Run("CoresPauseResumeKill", d.testCoresPauseKill)
	t.Run("UnknownEnvironment", d.testUnknownEnvironment)
	t.Run("CorruptTarball", d.testCorruptTarball)
}

// dockerFixture is the cluster of TestDockerEnvironments, its environment
// and its two runners.
type dockerFixture struct {
	c      *harness.Cluster
	env    string
	r1, r2 string
}

// versionFile is the file the tests write into the environment.
const versionFile = "/etc/hkt-version"

func (d *dockerFixture) testTarballOnEachRunner(t *testing.T) {
	c, env := d.c.For(t), d.env
	out := envShell(t, c, env, "echo v1 > "+versionFile+" && cat "+versionFile)
	if !strings.Contains(out, "v1") {
		t.Fatalf("docker shell output %q lacks the file's content", out)
	}
	var envs []api.DockerContainer
	if err := c.CLIOK("-o", "json", "docker", "list").Decode(&envs); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range envs {
		found = found || e.Name == env && e.State == "running" && e.Replica == c.Replica(0).ID
	}
	if !found {
		t.Errorf("docker list: want %s running on %s (the replica that created it), got %+v", env, c.Replica(0).ID, envs)
	}
	tar := createTar(t, c, env)
	if tars := listTars(t, c)[env]; len(tars.AllVersions) != 1 || tars.LatestTimestamp != tar.Timestamp {
		t.Fatalf("list-tars: want one version %d of %s, got %+v", tar.Timestamp, env, tars)
	}
	for _, node := range []string{d.r1, d.r2} {
		// All runners share this machine's Docker engine: without the
		// image, the runner has to load the tarball itself.
		harness.RemoveImages(t, envImage(env))
		id := submitCLI(t, c, []string{"--target", node, "--container", env}, "cat", versionFile)
		task := waitCompleted(t, c, id)
		if task.AssignedNode != node {
			t.Errorf("task %s ran on %s, want %s", id, task.AssignedNode, node)
		}
		if got := strings.TrimSpace(stdoutOf(t, c, id)); got != "v1" {
			t.Errorf("task on %s printed %q, want v1", node, got)
		}
		if log := c.Runner(node).LogPath(); !harness.LogContains(log, "environment tarball loaded") || !harness.LogContains(log, filepath.Base(tar.TarballPath)) {
			t.Errorf("runner %s's log does not show it loading %s", node, tar.TarballPath)
		}
	}
}

func (d *dockerFixture) testNewVersion(t *testing.T) {
	c, env := d.c.For(t), d.env
	old := listTars(t, c)[env]
	if len(old.AllVersions) != 1 {
		t.Fatalf("want one tarball of %s before, got %+v", env, old)
	}
	// Through the other replicas: they pass the operations on to the one
	// that holds the environment.
	envShell(t, c, env, "echo v2 > "+versionFile, 2)
	tar := createTar(t, c, env, 1)
	if tar.Timestamp <= old.LatestTimestamp {
		t.Errorf("new version %d is not newer than %d", tar.Timestamp, old.LatestTimestamp)
	}
	now := listTars(t, c)[env]
	if len(now.AllVersions) != 1 || now.LatestTimestamp != tar.Timestamp {
		t.Errorf("list-tars: want only the new version %d, got %+v", tar.Timestamp, now)
	}
	if _, err := os.Stat(filepath.Join(c.SharedDir(), tarballDir, old.LatestTarball)); !os.IsNotExist(err) {
		t.Errorf("old tarball %s not pruned: %v", old.LatestTarball, err)
	}
	// The first runner keeps the image it has (the commit retagged it on
	// this shared engine); the second must load the new version.
	id1 := submitCLI(t, c, []string{"--target", d.r1, "--container", env}, "cat", versionFile)
	waitCompleted(t, c, id1)
	if got := strings.TrimSpace(stdoutOf(t, c, id1)); got != "v2" {
		t.Errorf("task on %s printed %q, want v2", d.r1, got)
	}
	harness.RemoveImages(t, envImage(env))
	id2 := submitCLI(t, c, []string{"--target", d.r2, "--container", env}, "cat", versionFile)
	waitCompleted(t, c, id2)
	if got := strings.TrimSpace(stdoutOf(t, c, id2)); got != "v2" {
		t.Errorf("task on %s printed %q, want v2", d.r2, got)
	}
	if !harness.LogContains(c.Runner(d.r2).LogPath(), filepath.Base(tar.TarballPath)) {
		t.Errorf("runner %s's log does not show it loading %s", d.r2, tar.TarballPath)
	}
}

func (d *dockerFixture) testOOM(t *testing.T) {
	c, env := d.c.For(t), d.env
	// dd fills a 64 MB buffer from /dev/zero: more than the 32 MB limit.
	id := submitCLI(t, c, []string{"--target", d.r1, "--container", env, "--memory", "32M"},
		"dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=4")
	task := c.WaitFinal(id, dockerTaskTimeout)
	if task.Status != "killed_oom" {
		t.Errorf("want killed_oom, got %s", describe(task))
	}
}

func (d *dockerFixture) testCoresPauseKill(t *testing.T) {
	c, env := d.c.For(t), d.env
	id := submitCLI(t, c, []string{"--target", d.r2, "--container", env, "--cores", "1", "--memory", "64M"}, "sleep", "120")
	killOnFailure(t, c, id)
	c.WaitStatus(id, "running", dockerTaskTimeout)
	name := "hakuriver-task-" + id
	limits, err := harness.Docker("container", "inspect", "--format", "{{.HostConfig.NanoCpus}} {{.HostConfig.Memory}}", name)
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("%d %d", int64(1e9), int64(64e6)); limits != want {
		t.Errorf("container %s: NanoCpus Memory = %q, want %q", name, limits, want)
	}
	waitState := func(want string) {
		t.Helper()
		c.Poll(15*time.Second, "container "+name+" "+want, func() (bool, string) {
			st, err := harness.DockerState(name)
			if err != nil {
				return want == "gone", err.Error()
			}
			return st == want, st
		})
	}
	c.CLIOK("task", "pause", id)
	c.WaitStatus(id, "paused", 15*time.Second)
	waitState("paused")
	c.CLIOK("task", "resume", id)
	c.WaitStatus(id, "running", 15*time.Second)
	waitState("running")
	c.CLIOK("task", "kill", id)
	c.WaitStatus(id, "killed", 15*time.Second)
	waitState("gone")
}

func (d *dockerFixture) testUnknownEnvironment(t *testing.T) {
	c := d.c.For(t)
	bogus := envName("hkt-nope")
	r := c.CLI("task", "submit", "--container", bogus, "--", "true")
	if r.Code == 0 || !strings.Contains(r.Stderr, bogus) {
		t.Errorf("submit with unknown environment: want a failure naming %s, got %s", bogus, r)
	}
	for i := range c.N() {
		a := call(t, c, i, http.MethodPost, "/api/submit", api.SubmitRequest{Command: "true", ContainerName: &bogus}, http.StatusBadRequest)
		if !strings.Contains(string(a.Body), bogus) {
			t.Errorf("replica %d: 400 does not name %s: %s", i, bogus, a)
		}
	}
}

// testCorruptTarball damages the recorded tarball itself: the runner that
// has to load it refuses it on its SHA-256 and the task fails naming the
// file; with the file restored the next task runs.
func (d *dockerFixture) testCorruptTarball(t *testing.T) {
	c, env := d.c.For(t), d.env
	good := listTars(t, c)[env]
	path := filepath.Join(c.SharedDir(), tarballDir, good.LatestTarball)
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	bad := append([]byte(nil), orig...)
	copy(bad[len(bad)/2:], "this is not what create-tar saved")
	if err := os.WriteFile(path, bad, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.WriteFile(path, orig, 0o644) }) //nolint:errcheck // best effort
	harness.RemoveImages(t, envImage(env))
	id := submitCLI(t, c, []string{"--target", d.r1, "--container", env}, "cat", versionFile)
	task := c.WaitFinal(id, dockerTaskTimeout)
	if task.Status != "failed" || !strings.Contains(task.ErrorMessage, good.LatestTarball) || !strings.Contains(task.ErrorMessage, "SHA-256") {
		t.Errorf("want failed naming %s and its SHA-256, got %s", good.LatestTarball, describe(task))
	}
	// The runner is still healthy: with the file restored, the next task
	// in the environment runs.
	if err := os.WriteFile(path, orig, 0o644); err != nil {
		t.Fatal(err)
	}
	c.WaitNodeStatus(d.r1, "online", 5*time.Second)
	id2 := submitCLI(t, c, []string{"--target", d.r1, "--container", env}, "cat", versionFile)
	waitCompleted(t, c, id2)
	if got := strings.TrimSpace(stdoutOf(t, c, id2)); got != "v2" {
		t.Errorf("task after the corrupt tarball printed %q, want v2", got)
	}
}
