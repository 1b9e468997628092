//go:build integration

package integration

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/fsm"
	"github.com/hakuriver/hakuriver-ha/integration/harness"
	"github.com/hakuriver/hakuriver-ha/ops/environment"
)

// startDockerSingle starts one replica and one Docker runner named
// prefix-<random> (unique: runners on this machine share one engine).
func startDockerSingle(t *testing.T, prefix string) (*harness.Cluster, string) {
	t.Helper()
	c := startCluster(t, harness.Options{Replicas: 1, HeartbeatInterval: hbInterval, HeartbeatTimeoutFactor: hbFactor})
	name := prefix + "-" + uniqueSuffix()
	t.Cleanup(func() { harness.RemoveRunnerContainers(t, name) })
	c.StartRunner(name, dockerRunner)
	return c, name
}

// removeEnvImages removes environment env's images from the engine: the
// name create-tar saves (envImage) and the name c's runners run it by.
func removeEnvImages(t *testing.T, c *harness.Cluster, env string) {
	t.Helper()
	st, err := c.Status(0)
	if err != nil {
		t.Fatal(err)
	}
	harness.RemoveImages(t, envImage(env), environment.ScopedImageName(env, st.ClusterID))
}

// TestDockerTaskCannotPoisonEnvironments plays a task that gets at the
// shared storage: it asks for a bind mount of the shared-dir root (refused:
// the task fails naming shared_dir), and, as if it had written there
// anyway, drops a tarball of version 9999999999 holding another image under
// the environment's name. The next task of the environment runs the image
// create-tar recorded, and the poisoned image is never loaded; a recorded
// file replaced by the poisoned one is refused on its SHA-256.
func TestDockerTaskCannotPoisonEnvironments(t *testing.T) {
	requireDocker(t, busyboxImage)
	c, runner := startDockerSingle(t, "hkt-poison")
	env := envName("hkt-poison")
	createEnvironment(t, c, busyboxImage, env)
	envShell(t, c, env, "echo recorded > "+versionFile)
	tar := createTar(t, c, env)

	// The mount of the shared root is refused by the runner: the admin may
	// ask for mounts (the mounts policy), the runner still refuses this one.
	ctx, cancel := context.WithTimeout(context.Background(), harness.WriteTimeout)
	if a, err := c.CallAs(ctx, 0, http.MethodPatch, "/api/users/admin", c.AdminToken(), api.UserPatch{Policy: &fsm.Policy{Mounts: true}}); err != nil || a.Status != http.StatusOK {
		t.Fatalf("grant the admin mounts: %v %s", err, a)
	}
	cancel()
	id := submitCLI(t, c, []string{"--target", runner, "--container", env, "--mount", c.SharedDir() + ":/x"}, "sh", "-c", "echo pwned > /x/pwned")
	task := c.WaitFinal(id, dockerTaskTimeout)
	if task.Status != "failed" || !strings.Contains(task.ErrorMessage, "shared_dir") {
		t.Errorf("task mounting the shared root: want failed naming shared_dir, got %s", describe(task))
	}
	if _, err := os.Stat(filepath.Join(c.SharedDir(), "pwned")); err == nil {
		t.Error("the task wrote into the shared root")
	}

	// The poisoned tarball: another image under the environment's name.
	evil := "hkt-evil-" + uniqueSuffix()
	t.Cleanup(func() { harness.RemoveContainers(t, evil) })
	if _, err := harness.Docker("run", "--name", evil, busyboxImage, "sh", "-c", "echo poisoned > "+versionFile); err != nil {
		t.Fatal(err)
	}
	poisonID, err := harness.Docker("commit", "--change", "LABEL hakuriver.version=9999999999", evil, envImage(env))
	if err != nil {
		t.Fatal(err)
	}
	poisonID = strings.TrimSpace(poisonID)
	t.Cleanup(func() { harness.RemoveImages(t, poisonID) })
	poison := filepath.Join(c.SharedDir(), tarballDir, env+"-9999999999.tar")
	if _, err := harness.Docker("save", "-o", poison, envImage(env)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(poison) })
	// The runner has neither image: it must load one.
	harness.RemoveImages(t, poisonID)
	removeEnvImages(t, c, env)
	if _, err := harness.Docker("image", "inspect", poisonID); err == nil {
		t.Fatal("poisoned image still on the engine")
	}
	poisonLoaded := func(when string) {
		t.Helper()
		if _, err := harness.Docker("image", "inspect", poisonID); err == nil {
			t.Errorf("%s: the poisoned image was loaded", when)
		}
	}

	id = submitCLI(t, c, []string{"--target", runner, "--container", env}, "cat", versionFile)
	waitCompleted(t, c, id)
	if got := strings.TrimSpace(stdoutOf(t, c, id)); got != "recorded" {
		t.Errorf("task ran an image printing %q, want the recorded one", got)
	}
	poisonLoaded("future version in the folder")
	if log := c.Runner(runner).LogPath(); !harness.LogContains(log, "did not record") || !harness.LogContains(log, filepath.Base(tar.TarballPath)) {
		t.Errorf("runner log shows no refusal of %s and no load of %s", filepath.Base(poison), filepath.Base(tar.TarballPath))
	}
	if tars := listTars(t, c)[env]; tars.LatestTimestamp != tar.Timestamp || len(tars.AllVersions) != 1 || tars.AllVersions[0].SHA256 == "" {
		t.Errorf("list-tars shows %+v, want only the recorded version %d with its SHA-256", tars, tar.Timestamp)
	}

	// The recorded file replaced by the poisoned one.
	b, err := os.ReadFile(poison)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tar.TarballPath, b, 0o644); err != nil {
		t.Fatal(err)
	}
	removeEnvImages(t, c, env)
	id = submitCLI(t, c, []string{"--target", runner, "--container", env}, "cat", versionFile)
	task = c.WaitFinal(id, dockerTaskTimeout)
	if task.Status == "completed" || !strings.Contains(task.ErrorMessage, filepath.Base(tar.TarballPath)) {
		t.Errorf("task over a replaced tarball: want a failure naming %s, got %s", filepath.Base(tar.TarballPath), describe(task))
	}
	poisonLoaded("replaced recorded tarball")
}

// TestDockerClustersApart runs two independent single-replica clusters on
// this machine's one Docker Engine: cluster B neither lists nor deletes,
// saves or takes over cluster A's environment, and A's keeps working.
func TestDockerClustersApart(t *testing.T) {
	requireDocker(t, busyboxImage)
	a := startCluster(t, harness.Options{Replicas: 1})
	b := startCluster(t, harness.Options{Replicas: 1})
	env := envName("hkt-scope")
	createEnvironment(t, a, busyboxImage, env)

	var list []api.DockerContainer
	if err := b.CLIOK("-o", "json", "docker", "list").Decode(&list); err != nil {
		t.Fatal(err)
	}
	for _, e := range list {
		if e.Name == env {
			t.Errorf("cluster B lists cluster A's environment: %+v", e)
		}
	}
	if r := b.CLI("docker", "delete", env); r.Code == 0 {
		t.Errorf("cluster B deleted cluster A's environment: %s", r)
	}
	call(t, b, 0, http.MethodPost, "/api/docker/host/delete/"+env, nil, http.StatusNotFound)
	call(t, b, 0, http.MethodPost, "/api/docker/host/stop/"+env, nil, http.StatusNotFound)
	if r := b.CLIVia(nil, createTarTimeout, "", "docker", "create-tar", env); r.Code == 0 {
		t.Errorf("cluster B saved cluster A's environment: %s", r)
	}
	if r := b.CLIVia(nil, createTarTimeout, "", "docker", "create-container", busyboxImage, env); r.Code == 0 {
		t.Errorf("cluster B took over cluster A's environment name: %s", r)
	}
	if st, err := harness.DockerState(env); err != nil || st != "running" {
		t.Fatalf("cluster A's environment after B's attempts: %q %v", st, err)
	}

	// A still sees and uses it, labelled with A's ID.
	sa, err := a.Status(0)
	if err != nil {
		t.Fatal(err)
	}
	sb, err := b.Status(0)
	if err != nil {
		t.Fatal(err)
	}
	if sa.ClusterID == "" || sb.ClusterID == "" || sa.ClusterID == sb.ClusterID {
		t.Fatalf("cluster IDs %q and %q: want two different ones", sa.ClusterID, sb.ClusterID)
	}
	if got, err := harness.Docker("container", "inspect", "--format", `{{index .Config.Labels "hakuriver.cluster"}}`, env); err != nil || got != sa.ClusterID {
		t.Errorf("environment label hakuriver.cluster = %q (%v), want %s", got, err, sa.ClusterID)
	}
	if err := a.CLIOK("-o", "json", "docker", "list").Decode(&list); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range list {
		found = found || e.Name == env && e.State == "running"
	}
	if !found {
		t.Errorf("cluster A no longer lists its environment: %+v", list)
	}
	tar := createTar(t, a, env)
	if tar.Timestamp == 0 {
		t.Errorf("create-tar in cluster A: %+v", tar)
	}
	a.CLIOK("docker", "delete", env)
	if _, err := harness.DockerState(env); err == nil {
		t.Error("cluster A could not delete its own environment")
	}
}
