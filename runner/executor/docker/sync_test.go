package docker

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/image"

	"github.com/hakuriver/hakuriver-ha/ops/environment"
)

func recordOf(tb environment.Tarball) Recorded {
	return Recorded{Version: tb.Version, SHA256: tb.SHA256, Size: tb.Size}
}

func TestSyncLoadsRecordedVersion(t *testing.T) {
	env := uniqueName("hrtest-env")
	cfg := testConfig(t)
	m := newTestManager(t, cfg, env)
	cli := requireDocker(t)
	ctx := context.Background()
	createEnvWithFile(t, m, env, "/v.txt", "v1")
	tb1, err := m.CreateTarball(ctx, env, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(tb1.SHA256) != 64 {
		t.Fatalf("tarball without a SHA-256: %+v", tb1)
	}
	s, err := NewSyncer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	sync := func(rec Recorded) {
		t.Helper()
		if run, err := s.Sync(ctx, environment.ImageName(env), rec); err != nil || run != environment.ImageName(env) {
			t.Fatalf("Sync = %q, %v", run, err)
		}
	}
	// Up to date on the host that made it: no load.
	sync(recordOf(tb1))
	if n := s.loads.Load(); n != 0 {
		t.Fatalf("%d loads for an up-to-date image", n)
	}
	// Missing: loaded.
	if _, err := cli.ImageRemove(ctx, environment.ImageName(env), image.RemoveOptions{Force: true, PruneChildren: true}); err != nil {
		t.Fatal(err)
	}
	sync(recordOf(tb1))
	if n := s.loads.Load(); n != 1 {
		t.Fatalf("%d loads for a missing image, want 1", n)
	}
	// A new version: the runner's v1 differs from the recorded v2.
	if out, code := shell(t, m, env, "echo v2 > /v.txt"); code != 0 {
		t.Fatalf("shell: %d %q", code, out)
	}
	tb2, err := m.CreateTarball(ctx, env, tb1.Version, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The runner still has another version (here: the test image).
	if err := cli.ImageTag(ctx, testImage, environment.ImageName(env)); err != nil {
		t.Fatal(err)
	}
	sync(recordOf(tb2))
	ii, err := cli.ImageInspect(ctx, environment.ImageName(env))
	if err != nil || ii.Config.Labels[LabelVersion] != strconv.FormatInt(tb2.Version, 10) {
		t.Fatalf("image after sync: %v %+v", err, ii.Config)
	}
	before := s.loads.Load()
	for range 3 {
		sync(recordOf(tb2))
	}
	if s.loads.Load() != before {
		t.Fatalf("loads %d, want %d", s.loads.Load(), before)
	}
	// Nothing recorded: a local image is used as it is, a missing one is
	// an error, never a load of whatever lies in the folder.
	sync(Recorded{})
	if _, err := cli.ImageRemove(ctx, environment.ImageName(env), image.RemoveOptions{Force: true, PruneChildren: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Sync(ctx, environment.ImageName(env), Recorded{}); !errors.Is(err, environment.ErrNotFound) || !strings.Contains(err.Error(), "recorded no tarball") {
		t.Fatalf("Sync without a record: %v", err)
	}
}

func TestSyncCorruptTarball(t *testing.T) {
	env := uniqueName("hrtest-env")
	cfg := testConfig(t)
	newTestManager(t, cfg, env) // removes the image at cleanup
	dir := filepath.Join(cfg.SharedDir, cfg.ContainerDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	content := []byte("this is not a tar archive at all\n")
	bad := filepath.Join(dir, environment.TarballName(env, time.Now().Unix()))
	if err := os.WriteFile(bad, content, 0o644); err != nil {
		t.Fatal(err)
	}
	e := newTestExecutor(t, cfg)
	cli := requireDocker(t)
	ctx := context.Background()
	id := testTaskID()
	spec := taskSpec(cfg, id, environment.ImageName(env), "true")
	// Recorded with its true hash, so that the load itself fails.
	spec.ImageVersion, spec.ImageSHA256 = time.Now().Unix(), sha256Hex(content)
	if err := os.Rename(bad, filepath.Join(dir, environment.TarballName(env, spec.ImageVersion))); err != nil {
		t.Fatal(err)
	}
	bad = filepath.Join(dir, environment.TarballName(env, spec.ImageVersion))
	err := e.Start(ctx, spec)
	if err == nil || !strings.Contains(err.Error(), bad) {
		t.Fatalf("Start with a corrupt tarball: %v; want an error naming %s", err, bad)
	}
	if _, err := cli.ContainerInspect(ctx, ContainerName(id)); err == nil {
		t.Fatal("container created despite the failed sync")
	}
	// The executor stays usable.
	id2 := testTaskID()
	spec2 := taskSpec(cfg, id2, testImage, "echo", "still fine")
	if err := e.Start(ctx, spec2); err != nil {
		t.Fatal(err)
	}
	if ex := waitExit(t, e, id2, 30*time.Second); ex.Code != 0 {
		t.Fatalf("exit %+v", ex)
	}
}

func TestConcurrentSyncsLoadOnce(t *testing.T) {
	env := uniqueName("hrtest-env")
	cfg := testConfig(t)
	m := newTestManager(t, cfg, env)
	cli := requireDocker(t)
	ctx := context.Background()
	// "Another runner": the image is not there until the tarball is loaded.
	tb := tarballOnly(t, m, cli, env, "/f", "x")
	s, err := NewSyncer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = s.Sync(ctx, environment.ImageName(env), recordOf(tb))
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if n := s.loads.Load(); n != 1 {
		t.Fatalf("%d loads for 8 concurrent syncs, want 1", n)
	}
	// A caller that gives up does not cancel the load others wait for.
	if _, err := cli.ImageRemove(ctx, environment.ImageName(env), image.RemoveOptions{Force: true, PruneChildren: true}); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.Sync(short, environment.ImageName(env), recordOf(tb)); !errors.Is(err, context.Canceled) {
		t.Fatalf("Sync with a cancelled context: %v", err)
	}
	if _, err := s.Sync(ctx, environment.ImageName(env), recordOf(tb)); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.ImageInspect(ctx, environment.ImageName(env)); err != nil {
		t.Fatal(err)
	}
}
