package docker

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"

	"github.com/hakuriver/hakuriver-ha/ops/environment"
)

// TestSyncNeverLoadsUnrecordedTarball plays a task with write access to the
// tarball folder, against the real engine: it drops a tarball of version
// 9999999999 holding another image under the environment's name, and later
// overwrites the recorded tarball itself. The next tasks run the recorded
// image, then fail on the hash; the poisoned image never reaches the
// engine.
func TestSyncNeverLoadsUnrecordedTarball(t *testing.T) {
	env, evil := uniqueName("hrtest-env"), uniqueName("hrtest-evil")
	cfg := testConfig(t)
	m := newTestManager(t, cfg, env, evil)
	cli := requireDocker(t)
	ctx := context.Background()
	const cluster = "c0ffee0001"
	scoped := m.Scoped(cluster, nil)
	createEnvWithFile(t, scoped, env, "/marker", "recorded")
	tb, err := scoped.CreateTarball(ctx, env, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cli.ImageRemove(context.Background(), environment.ScopedImageName(env, cluster), image.RemoveOptions{Force: true}) //nolint:errcheck // cleanup
	})

	// The poisoned image: another container committed under the
	// environment's image name, saved with a version from the future.
	createEnvWithFile(t, m, evil, "/marker", "poisoned")
	ins, err := cli.ContainerInspect(ctx, evil)
	if err != nil {
		t.Fatal(err)
	}
	poison, err := cli.ContainerCommit(ctx, ins.ID, container.CommitOptions{Reference: environment.ImageName(env),
		Config: &container.Config{Labels: map[string]string{LabelVersion: "9999999999", LabelCluster: cluster, LabelEnvironment: env}}})
	if err != nil {
		t.Fatal(err)
	}
	rc, err := cli.ImageSave(ctx, []string{environment.ImageName(env)})
	if err != nil {
		t.Fatal(err)
	}
	poisonPath := filepath.Join(m.TarballDir(), environment.TarballName(env, 9999999999))
	f, err := os.Create(poisonPath)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(f, rc); err != nil {
		t.Fatal(err)
	}
	rc.Close()
	f.Close()
	// "Another runner": neither image is on the engine.
	for _, img := range []string{poison.ID, environment.ScopedImageName(env, cluster), environment.ImageName(env)} {
		cli.ImageRemove(ctx, img, image.RemoveOptions{Force: true, PruneChildren: true}) //nolint:errcheck // some are gone already
	}
	if _, err := cli.ImageInspect(ctx, poison.ID); err == nil {
		t.Fatal("poisoned image still on the engine before the test")
	}
	poisonGone := func(when string) {
		t.Helper()
		if _, err := cli.ImageInspect(ctx, poison.ID); err == nil {
			t.Fatalf("%s: the poisoned image was loaded", when)
		}
	}

	e := newTestExecutor(t, cfg)
	run := func(id int64) (executor_exit string, err error) {
		spec := taskSpec(cfg, id, environment.ImageName(env), "cat", "/marker")
		spec.ClusterID, spec.ImageVersion, spec.ImageSHA256, spec.ImageSize = cluster, tb.Version, tb.SHA256, tb.Size
		if err := e.Start(ctx, spec); err != nil {
			return "", err
		}
		if ex := waitExit(t, e, id, 30*time.Second); ex.Code != 0 {
			t.Fatalf("task exit %+v: %s", ex, readFile(t, spec.Stderr))
		}
		return readFile(t, spec.Stdout), nil
	}
	id := testTaskID()
	out, err := run(id)
	if err != nil {
		t.Fatal(err)
	}
	if out != "recorded\n" {
		t.Fatalf("task printed %q, want the recorded image's marker", out)
	}
	poisonGone("future version")
	ins2, err := cli.ContainerInspect(ctx, ContainerName(id))
	if err != nil || ins2.Config.Labels[LabelCluster] != cluster || ins2.Config.Image != environment.ScopedImageName(env, cluster) {
		t.Fatalf("task container: %v, labels %v, image %s", err, ins2.Config.Labels, ins2.Config.Image)
	}

	// The recorded file itself replaced by the poisoned one: refused on
	// its hash, nothing loaded.
	if err := os.Rename(poisonPath, tb.Path); err != nil {
		t.Fatal(err)
	}
	for _, img := range []string{environment.ScopedImageName(env, cluster), environment.ImageName(env)} {
		cli.ImageRemove(ctx, img, image.RemoveOptions{Force: true, PruneChildren: true}) //nolint:errcheck // force a load
	}
	e.Syncer().mu.Lock()
	clear(e.Syncer().loaded)
	e.Syncer().mu.Unlock()
	if _, err := run(testTaskID()); err == nil || !errors.Is(err, environment.ErrInvalid) || !strings.Contains(err.Error(), "SHA-256") && !strings.Contains(err.Error(), "bytes") {
		t.Fatalf("task with a replaced tarball: %v, want a refusal on its hash or size", err)
	}
	poisonGone("replaced tarball")
}
