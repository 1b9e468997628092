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
)

func TestSyncLoadsWhenMissingOrOlder(t *testing.T) {
	env := uniqueName("hrtest-env")
	cfg := testConfig(t)
	m := newTestManager(t, cfg, env)
	cli := requireDocker(t)
	ctx := context.Background()
	createEnvWithFile(t, m, env, "/v.txt", "v1")
	tb1, err := m.CreateTarball(ctx, env, nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSyncer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	// Up to date on the host that made it: no load.
	if err := s.Sync(ctx, ImageName(env)); err != nil {
		t.Fatal(err)
	}
	if n := s.loads.Load(); n != 0 {
		t.Fatalf("%d loads for an up-to-date image", n)
	}
	// Missing: loaded.
	if _, err := cli.ImageRemove(ctx, ImageName(env), image.RemoveOptions{Force: true, PruneChildren: true}); err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(ctx, ImageName(env)); err != nil {
		t.Fatal(err)
	}
	if n := s.loads.Load(); n != 1 {
		t.Fatalf("%d loads for a missing image, want 1", n)
	}
	// Keep v1 aside as a runner that synced v1 still has it, then save v2.
	aside := testConfig(t)
	asideDir := filepath.Join(aside.SharedDir, aside.ContainerDir)
	if err := os.MkdirAll(asideDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(tb1.Path, filepath.Join(asideDir, filepath.Base(tb1.Path))); err != nil {
		t.Fatal(err)
	}
	if out, code := shell(t, m, env, "echo v2 > /v.txt"); code != 0 {
		t.Fatalf("shell: %d %q", code, out)
	}
	tb2, err := m.CreateTarball(ctx, env, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.ImageRemove(ctx, ImageName(env), image.RemoveOptions{Force: true, PruneChildren: true}); err != nil {
		t.Fatal(err)
	}
	old, err := NewSyncer(aside)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	if err := old.Sync(ctx, ImageName(env)); err != nil {
		t.Fatal(err)
	}
	checkVersion := func(want int64) {
		t.Helper()
		ii, err := cli.ImageInspect(ctx, ImageName(env))
		if err != nil {
			t.Fatal(err)
		}
		if got := ii.Config.Labels[LabelVersion]; got != strconv.FormatInt(want, 10) {
			t.Fatalf("image version %s, want %d", got, want)
		}
	}
	checkVersion(tb1.Version)
	// The runner's v1 is older than the newest tarball: loaded.
	before := s.loads.Load()
	if err := s.Sync(ctx, ImageName(env)); err != nil {
		t.Fatal(err)
	}
	checkVersion(tb2.Version)
	if s.loads.Load() != before+1 {
		t.Fatalf("loads %d, want %d", s.loads.Load(), before+1)
	}
	// A tarball whose name claims a newer version than its image label is
	// loaded once, not before every task.
	if err := os.Rename(tb2.Path, filepath.Join(m.TarballDir(), TarballName(env, tb2.Version+100))); err != nil {
		t.Fatal(err)
	}
	before = s.loads.Load()
	for range 3 {
		if err := s.Sync(ctx, ImageName(env)); err != nil {
			t.Fatal(err)
		}
	}
	if s.loads.Load() != before+1 {
		t.Fatalf("loads %d, want %d", s.loads.Load(), before+1)
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
	bad := filepath.Join(dir, TarballName(env, time.Now().Unix()))
	if err := os.WriteFile(bad, []byte("this is not a tar archive at all\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	e := newTestExecutor(t, cfg)
	cli := requireDocker(t)
	ctx := context.Background()
	id := testTaskID()
	err := e.Start(ctx, taskSpec(cfg, id, ImageName(env), "true"))
	if err == nil || !strings.Contains(err.Error(), bad) {
		t.Fatalf("Start with a corrupt tarball: %v; want an error naming %s", err, bad)
	}
	if _, err := cli.ContainerInspect(ctx, ContainerName(id)); err == nil {
		t.Fatal("container created despite the failed sync")
	}
	// The executor stays usable.
	id2 := testTaskID()
	spec := taskSpec(cfg, id2, testImage, "echo", "still fine")
	if err := e.Start(ctx, spec); err != nil {
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
	createEnvWithFile(t, m, env, "/f", "x")
	if _, err := m.CreateTarball(ctx, env, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.ImageRemove(ctx, ImageName(env), image.RemoveOptions{Force: true, PruneChildren: true}); err != nil {
		t.Fatal(err)
	}
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
			errs[i] = s.Sync(ctx, ImageName(env))
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
	if _, err := cli.ImageRemove(ctx, ImageName(env), image.RemoveOptions{Force: true, PruneChildren: true}); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithCancel(ctx)
	cancel()
	if err := s.Sync(short, ImageName(env)); !errors.Is(err, context.Canceled) {
		t.Fatalf("Sync with a cancelled context: %v", err)
	}
	if err := s.Sync(ctx, ImageName(env)); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.ImageInspect(ctx, ImageName(env)); err != nil {
		t.Fatal(err)
	}
}
