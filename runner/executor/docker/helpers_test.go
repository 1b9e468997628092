package docker

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"

	"github.com/hakuriver/hakuriver-ha/ops/environment"
	"github.com/hakuriver/hakuriver-ha/runner/executor"
)

// testImage is built by .ci/test-images.sh (make test-images).
const testImage = "hakuriver-test/busybox:latest"

// requireDocker returns an engine client, or skips the test when the engine
// is unreachable; with HAKURIVER_REQUIRE_DOCKER=1 it fails instead. It
// builds the test image when it is missing.
func requireDocker(t testing.TB) *client.Client {
	t.Helper()
	cli, err := newClient()
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err = ping(ctx, cli)
		cancel()
	}
	if err != nil {
		if os.Getenv("HAKURIVER_REQUIRE_DOCKER") == "1" {
			t.Fatalf("Docker engine required (HAKURIVER_REQUIRE_DOCKER=1) but unreachable: %v", err)
		}
		t.Skipf("skipping: Docker engine unreachable (%v); set HAKURIVER_REQUIRE_DOCKER=1 to make this a failure", err)
	}
	t.Cleanup(func() { cli.Close() })
	ctx := context.Background()
	if _, err := cli.ImageInspect(ctx, testImage); err != nil {
		script, _ := filepath.Abs("../../.ci/test-images.sh")
		out, berr := exec.Command("bash", script, "busybox").CombinedOutput()
		if berr != nil {
			t.Fatalf("test image %s missing and %s failed: %v\n%s", testImage, script, berr, out)
		}
		if _, err := cli.ImageInspect(ctx, testImage); err != nil {
			t.Fatalf("test image %s still missing after %s: %v\n%s", testImage, script, err, out)
		}
	}
	return cli
}

// uniqueName returns a fresh lower-case name for containers and images.
func uniqueName(prefix string) string {
	b := make([]byte, 5)
	rand.Read(b) //nolint:errcheck // crypto/rand.Read never fails
	return prefix + "-" + hex.EncodeToString(b)
}

// testLogger sends logs to t.Log.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// testConfig returns a config over fresh temporary directories.
func testConfig(t testing.TB) Config {
	cfg := DefaultConfig()
	cfg.SharedDir = filepath.Join(t.TempDir(), "shared")
	cfg.LocalTempDir = filepath.Join(t.TempDir(), "temp")
	cfg.StateDir = filepath.Join(t.TempDir(), "docker-tasks")
	cfg.RunnerName = uniqueName("runner")
	cfg.Logger = testLogger(t)
	return cfg
}

// newTestManager returns a Manager and removes, at cleanup, every
// environment container it may have created under the given names and
// their images.
func newTestManager(t testing.TB, cfg Config, envs ...string) *Manager {
	t.Helper()
	cli := requireDocker(t)
	m, err := NewManager(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		for _, env := range envs {
			cli.ContainerRemove(ctx, env, container.RemoveOptions{Force: true}) //nolint:errcheck // cleanup
			removeEnvImages(cli, env)
		}
		m.Close()
	})
	return m
}

// newTestExecutor returns an Executor whose task containers are removed at
// cleanup.
func newTestExecutor(t testing.TB, cfg Config) *Executor {
	t.Helper()
	cli := requireDocker(t)
	e, err := NewExecutor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		e.Close()
		removeTaskContainers(t, cli, cfg.RunnerName)
		if e.cgroupfsDriver(context.Background()) {
			e.sweepParents(map[int64]bool{}) // their containers are gone
		}
	})
	return e
}

func removeTaskContainers(t testing.TB, cli *client.Client, runner string) {
	ctx := context.Background()
	list, err := cli.ContainerList(ctx, container.ListOptions{All: true})
	if err != nil {
		t.Logf("cleanup: list containers: %v", err)
		return
	}
	for _, c := range list {
		if c.Labels[LabelRunner] == runner {
			cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true}) //nolint:errcheck // cleanup
		}
	}
}

// shell runs script in environment env through an interactive Session and
// returns its output and exit code.
func shell(t testing.TB, m *Manager, env, script string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := m.Shell(ctx, env, 24, 100)
	if err != nil {
		t.Fatalf("Shell(%s): %v", env, err)
	}
	defer s.Close()
	if _, err := io.WriteString(s, script+"\nexit\n"); err != nil {
		t.Fatalf("write to shell: %v", err)
	}
	var out bytes.Buffer
	done := make(chan struct{})
	go func() {
		defer close(done)
		io.Copy(&out, s) //nolint:errcheck // ends when the shell exits
	}()
	select {
	case <-done:
	case <-ctx.Done():
		t.Fatalf("shell did not exit; output so far: %q", out.String())
	}
	code, err := s.ExitCode(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return out.String(), code
}

// createEnvWithFile creates environment env from the test image and writes
// content to path in it through a shell.
func createEnvWithFile(t testing.TB, m *Manager, env, path, content string) {
	t.Helper()
	ctx := context.Background()
	created, err := m.CreateEnvironment(ctx, testImage, env)
	if err != nil || !created {
		t.Fatalf("CreateEnvironment(%s) = %v, %v", env, created, err)
	}
	out, code := shell(t, m, env, "echo '"+content+"' > "+path)
	if code != 0 {
		t.Fatalf("shell exit code %d; output %q", code, out)
	}
}

// waitExit polls List until task id has ended.
func waitExit(t testing.TB, e *Executor, id int64, timeout time.Duration) executor.Exit {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		list, err := e.List(context.Background())
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		for _, s := range list {
			if s.TaskID == id && s.Exit != nil {
				return *s.Exit
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("task %d did not end within %s", id, timeout)
	return executor.Exit{}
}

// stateOf returns task id's state from List.
func stateOf(t testing.TB, e *Executor, id int64) (executor.State, bool) {
	t.Helper()
	list, err := e.List(context.Background())
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	for _, s := range list {
		if s.TaskID == id {
			return s, true
		}
	}
	return executor.State{}, false
}

// taskSpec returns a spec for a command task with output files in cfg's
// shared dir.
func taskSpec(cfg Config, id int64, img string, cmd ...string) executor.Spec {
	return executor.Spec{
		TaskID: id, Command: cmd[0], Args: cmd[1:], Image: img,
		Stdout: filepath.Join(cfg.SharedDir, "task_outputs", strings.TrimPrefix(ContainerName(id), "hakuriver-task-")+".out"),
		Stderr: filepath.Join(cfg.SharedDir, "task_errors", strings.TrimPrefix(ContainerName(id), "hakuriver-task-")+".err"),
	}
}

func readFile(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return string(b)
}

// testTaskID returns a task ID unlikely to clash with a concurrent test run.
func testTaskID() int64 {
	b := make([]byte, 6)
	rand.Read(b) //nolint:errcheck // crypto/rand.Read never fails
	var v int64
	for _, x := range b {
		v = v<<8 | int64(x)
	}
	return v + 1
}

// sha256Hex is the hex SHA-256 of b.
func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// removeEnvImages removes every tag hakuriver/<env>:* (the cluster-scoped
// ones too), by name, so that an image also tagged otherwise (a test image)
// stays. For cleanups.
func removeEnvImages(cli *client.Client, env string) {
	ctx := context.Background()
	list, err := cli.ImageList(ctx, image.ListOptions{Filters: filters.NewArgs(filters.Arg("reference", "hakuriver/"+env))})
	if err != nil {
		return
	}
	for _, im := range list {
		for _, tag := range im.RepoTags {
			if strings.HasPrefix(tag, "hakuriver/"+env+":") {
				cli.ImageRemove(ctx, tag, image.RemoveOptions{Force: true, PruneChildren: true}) //nolint:errcheck // cleanup
			}
		}
	}
}

// tarballOnly creates environment env with a file, saves its tarball and
// removes its image, as on a runner that has only the tarball to load.
func tarballOnly(t testing.TB, m *Manager, cli *client.Client, env, path, content string) environment.Tarball {
	t.Helper()
	ctx := context.Background()
	createEnvWithFile(t, m, env, path, content)
	tb, err := m.CreateTarball(ctx, env, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.ImageRemove(ctx, environment.ImageName(env), image.RemoveOptions{Force: true, PruneChildren: true}); err != nil {
		t.Fatal(err)
	}
	return tb
}
