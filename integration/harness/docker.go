//go:build integration

package harness

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// dockerCLITimeout bounds one docker CLI call of the harness.
const dockerCLITimeout = 60 * time.Second

// Docker runs the docker CLI with args and returns its stdout without the
// trailing newline. The tests use it to look at and clean up what the
// product did through the engine; the product itself never runs it.
func Docker(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), dockerCLITimeout)
	defer cancel()
	var out, errOut bytes.Buffer
	cmd := exec.CommandContext(ctx, "docker", args...)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("docker %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(errOut.String()))
	}
	return strings.TrimRight(out.String(), "\n"), nil
}

// DockerLogs returns a container's output, its stdout and stderr
// together (`docker logs` passes the container's stderr on as its own).
func DockerLogs(name string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), dockerCLITimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, "docker", "logs", name).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("docker logs %s: %w: %s", name, err, bytes.TrimSpace(out))
	}
	return string(out), nil
}

// DockerProblem returns why Docker cannot serve the tests: the engine does
// not answer, or one of images is missing; "" when all is well.
func DockerProblem(images ...string) string {
	if _, err := exec.LookPath("docker"); err != nil {
		return "the docker CLI is not installed"
	}
	if _, err := Docker("version", "--format", "{{.Server.Version}}"); err != nil {
		return fmt.Sprintf("the Docker engine does not answer: %v", err)
	}
	for _, img := range images {
		if _, err := Docker("image", "inspect", "--format", "{{.Id}}", img); err != nil {
			return fmt.Sprintf("image %s is missing (build it with `make test-images`)", img)
		}
	}
	return ""
}

// RemoveContainers force-removes the named containers; ones that do not
// exist are fine. For test cleanups.
func RemoveContainers(tb TB, names ...string) {
	tb.Helper()
	for _, n := range names {
		if _, err := Docker("container", "inspect", "--format", "{{.Id}}", n); err != nil {
			continue
		}
		if _, err := Docker("rm", "-f", n); err != nil {
			tb.Logf("cleanup: %v", err)
		}
	}
}

// RemoveRunnerContainers force-removes every container a runner named
// name labelled as its own (hakuriver.runner=name@<installation id>). For
// test cleanups.
func RemoveRunnerContainers(tb TB, name string) {
	tb.Helper()
	// The label holds "<name>@<installation id>" (older runners: the name).
	out, err := Docker("ps", "-a", "--filter", "label=hakuriver.runner", "--format", `{{.ID}} {{.Label "hakuriver.runner"}}`)
	if err != nil {
		tb.Logf("cleanup: %v", err)
		return
	}
	var ids []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		id, runner, ok := strings.Cut(strings.TrimSpace(line), " ")
		if ok && (runner == name || strings.HasPrefix(runner, name+"@")) {
			ids = append(ids, id)
		}
	}
	if len(ids) > 0 {
		if _, err := Docker(append([]string{"rm", "-f"}, ids...)...); err != nil {
			tb.Logf("cleanup: %v", err)
		}
	}
	removeTaskCgroupParents(name)
}

// removeTaskCgroupParents removes the (empty) cgroup parents the Docker
// executor of runner name made for its task containers
// (/hakuriver-tasks/<name>_<installation id>-<task id>), which the runner
// removes itself only for the tasks it forgot.
func removeTaskCgroupParents(name string) {
	dirs, _ := filepath.Glob("/sys/fs/cgroup/*/hakuriver-tasks/" + name + "_*-*") //nolint:errcheck // a bad pattern matches nothing
	v2, _ := filepath.Glob("/sys/fs/cgroup/hakuriver-tasks/" + name + "_*-*")     //nolint:errcheck // as above
	for _, d := range append(dirs, v2...) {
		os.Remove(d) //nolint:errcheck // best effort: a busy one stays
	}
}

// RemoveImages removes the named images when they exist, with the other
// tags of the same repository on that image (a runner's cluster-scoped tag
// hakuriver/<env>:c-<id> of an environment image), never tags of other
// repositories. For test cleanups.
func RemoveImages(tb TB, images ...string) {
	tb.Helper()
	for _, img := range images {
		tags, err := Docker("image", "inspect", "--format", "{{join .RepoTags \" \"}}", img)
		if err != nil {
			continue
		}
		repo := img
		if i := strings.LastIndex(img, ":"); i > strings.LastIndex(img, "/") {
			repo = img[:i]
		}
		names := []string{img}
		for _, t := range strings.Fields(tags) {
			if t != img && strings.HasPrefix(t, repo+":") {
				names = append(names, t)
			}
		}
		if _, err := Docker(append([]string{"rmi", "-f"}, names...)...); err != nil {
			tb.Logf("cleanup: %v", err)
		}
	}
}

// DockerState returns a container's State.Status ("running", "paused",
// "exited", ...), or "" with an error when it does not exist.
func DockerState(name string) (string, error) {
	return Docker("container", "inspect", "--format", "{{.State.Status}}", name)
}
