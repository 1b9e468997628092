package docker

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"

	"github.com/hakuriver/hakuriver-ha/ops/environment"
)

func TestEnvironmentLifecycle(t *testing.T) {
	env := uniqueName("hrtest-env")
	cfg := testConfig(t)
	m := newTestManager(t, cfg, env)
	cli := requireDocker(t)
	ctx := context.Background()

	createEnvWithFile(t, m, env, "/data.txt", "hello-env")
	if created, err := m.CreateEnvironment(ctx, testImage, env); err != nil || created {
		t.Fatalf("second CreateEnvironment = %v, %v; want already existing", created, err)
	}
	list, err := m.Environments(ctx)
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(list, func(c environment.Container) bool { return c.Name == env })
	if i < 0 || list[i].State != "running" || list[i].Image != testImage || !strings.HasPrefix(list[i].Status, "Up") {
		t.Fatalf("Environments() = %+v; want %s running", list, env)
	}

	// Stop and start.
	if err := m.StopEnvironment(ctx, env); err != nil {
		t.Fatal(err)
	}
	if err := m.StopEnvironment(ctx, env); err != nil {
		t.Fatalf("stopping a stopped environment: %v", err)
	}
	if ins, _ := cli.ContainerInspect(ctx, env); ins.State.Running {
		t.Fatal("still running after stop")
	}
	if _, err := m.Shell(ctx, env, 0, 0); !errors.Is(err, environment.ErrConflict) || !strings.Contains(err.Error(), "is not running") {
		t.Fatalf("Shell of a stopped environment: %v", err)
	}
	if err := m.StartEnvironment(ctx, env); err != nil {
		t.Fatal(err)
	}
	if out, code := shell(t, m, env, "cat /data.txt"); code != 0 || !strings.Contains(out, "hello-env") {
		t.Fatalf("file lost over stop/start: code %d out %q", code, out)
	}
	if _, code := shell(t, m, env, "exit 7"); code != 7 {
		t.Fatalf("shell exit code %d, want 7", code)
	}

	// Commit and save, with progress.
	var stages []string
	tb, err := m.CreateTarball(ctx, env, 0, func(p environment.Progress) {
		if len(stages) == 0 || stages[len(stages)-1] != p.Stage {
			stages = append(stages, p.Stage)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(stages, []string{"commit", "save", "done"}) {
		t.Errorf("progress stages %v", stages)
	}
	wantPath := filepath.Join(cfg.SharedDir, cfg.ContainerDir, environment.TarballName(env, tb.Version))
	fi, err := os.Stat(wantPath)
	if err != nil || tb.Path != wantPath || fi.Size() != tb.Size || tb.Size < 1<<20 {
		t.Fatalf("tarball %+v; stat %v %v", tb, fi, err)
	}
	if d := time.Since(time.Unix(tb.Version, 0)); d < 0 || d > time.Minute {
		t.Fatalf("version %d is not about now", tb.Version)
	}
	ii, err := cli.ImageInspect(ctx, environment.ImageName(env))
	if err != nil {
		t.Fatal(err)
	}
	if got := ii.Config.Labels[LabelVersion]; got != strconv.FormatInt(tb.Version, 10) {
		t.Fatalf("image version label %q, want %d", got, tb.Version)
	}
	if !slices.Equal(ii.Config.Cmd, []string{"/bin/sh"}) || len(ii.Config.Entrypoint) != 0 {
		t.Fatalf("committed image keeps the keep-alive loop: entrypoint %q cmd %q", ii.Config.Entrypoint, ii.Config.Cmd)
	}
	if ins, _ := cli.ContainerInspect(ctx, env); !ins.State.Running {
		t.Fatal("environment not running after create_tar")
	}

	// A second version replaces the first (keep_tarballs = 1).
	tb2, err := m.CreateTarball(ctx, env, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if tb2.Version <= tb.Version {
		t.Fatalf("second version %d not newer than %d", tb2.Version, tb.Version)
	}
	if _, err := os.Stat(tb.Path); !os.IsNotExist(err) {
		t.Fatalf("old tarball not pruned: %v", err)
	}
	all, err := environment.ListTarballs(m.TarballDir())
	if err != nil || len(all[env]) != 1 || all[env][0].Version != tb2.Version {
		t.Fatalf("environment.ListTarballs = %+v, %v", all, err)
	}
	entries, _ := os.ReadDir(m.TarballDir())
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".tmp") {
			t.Fatalf("temporary file left: %s", e.Name())
		}
	}

	// Delete.
	if err := m.DeleteEnvironment(ctx, env); err != nil {
		t.Fatal(err)
	}
	for _, op := range []func(context.Context, string) error{m.StartEnvironment, m.StopEnvironment, m.DeleteEnvironment} {
		if err := op(ctx, env); !errors.Is(err, environment.ErrNotFound) {
			t.Fatalf("operation on a deleted environment: %v, want environment.ErrNotFound", err)
		}
	}
	if _, err := m.CreateTarball(ctx, env, 0, nil); !errors.Is(err, environment.ErrNotFound) {
		t.Fatalf("CreateTarball of a deleted environment: %v", err)
	}
}

func TestEnvironmentBadInput(t *testing.T) {
	other := uniqueName("hrtest-plain")
	m := newTestManager(t, testConfig(t), other)
	cli := requireDocker(t)
	ctx := context.Background()

	for _, name := range []string{"", "Upper", "-dash", "a/b", "x:y", strings.Repeat("a", 200)} {
		if _, err := m.CreateEnvironment(ctx, testImage, name); !errors.Is(err, environment.ErrInvalid) {
			t.Errorf("CreateEnvironment(%q): %v, want environment.ErrInvalid", name, err)
		}
	}
	if _, err := m.CreateEnvironment(ctx, "", "fine"); !errors.Is(err, environment.ErrInvalid) {
		t.Errorf("empty image: %v", err)
	}
	if _, err := m.CreateEnvironment(ctx, "hakuriver-test/no-such-image:latest", uniqueName("hrtest-env")); !errors.Is(err, environment.ErrNotFound) {
		t.Errorf("missing image: %v, want environment.ErrNotFound", err)
	}
	// A container that is not an environment is never touched.
	resp, err := cli.ContainerCreate(ctx, &container.Config{Image: testImage, Cmd: []string{"true"}}, nil, nil, nil, other)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.CreateEnvironment(ctx, testImage, other); !errors.Is(err, environment.ErrConflict) {
		t.Errorf("CreateEnvironment over a foreign container: %v, want environment.ErrConflict", err)
	}
	if err := m.DeleteEnvironment(ctx, other); !errors.Is(err, environment.ErrConflict) {
		t.Errorf("DeleteEnvironment of a foreign container: %v, want environment.ErrConflict", err)
	}
	if _, err := cli.ContainerInspect(ctx, resp.ID); err != nil {
		t.Errorf("foreign container removed: %v", err)
	}
	list, err := m.Environments(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range list {
		if c.Name == other {
			t.Errorf("foreign container listed as an environment")
		}
	}
}

func TestDockerUnreachable(t *testing.T) {
	t.Setenv("DOCKER_HOST", "unix://"+filepath.Join(t.TempDir(), "no-docker.sock"))
	m, err := NewManager(testConfig(t))
	if err != nil {
		t.Fatalf("NewManager must not need the engine: %v", err)
	}
	defer m.Close()
	ctx := context.Background()
	if _, err := m.Environments(ctx); !errors.Is(err, environment.ErrUnavailable) {
		t.Fatalf("Environments without an engine: %v, want environment.ErrUnavailable", err)
	}
	if _, err := m.CreateEnvironment(ctx, testImage, "x"); !errors.Is(err, environment.ErrUnavailable) {
		t.Fatalf("CreateEnvironment without an engine: %v, want environment.ErrUnavailable", err)
	}
	if err := m.Ping(ctx); !errors.Is(err, environment.ErrUnavailable) {
		t.Fatalf("Ping: %v", err)
	}
}

// TestScopedManagers runs two clusters' views of one engine: B neither
// lists nor changes A's environment, cannot take its name, and an
// unlabelled (pre-cluster-ID) environment belongs to the cluster that
// adopts it.
func TestScopedManagers(t *testing.T) {
	env, legacy := uniqueName("hrtest-env"), uniqueName("hrtest-old")
	cfg := testConfig(t)
	m := newTestManager(t, cfg, env, legacy)
	ctx := context.Background()
	a := m.Scoped("clustera01", func(name string) bool { return name == legacy })
	b := m.Scoped("clusterb02", nil)
	createEnvWithFile(t, a, env, "/f", "a")
	if _, err := m.CreateEnvironment(ctx, testImage, legacy); err != nil { // unlabelled
		t.Fatal(err)
	}
	names := func(mm *Manager) map[string]bool {
		list, err := mm.Environments(ctx)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]bool{}
		for _, c := range list {
			out[c.Name] = true
		}
		return out
	}
	if got := names(a); !got[env] || !got[legacy] {
		t.Fatalf("cluster A lists %v, want %s and %s", got, env, legacy)
	}
	if got := names(b); got[env] || got[legacy] {
		t.Fatalf("cluster B lists %v", got)
	}
	for _, op := range []func(context.Context, string) error{b.StopEnvironment, b.DeleteEnvironment} {
		if err := op(ctx, env); !errors.Is(err, environment.ErrNotFound) {
			t.Fatalf("cluster B on A's environment: %v, want environment.ErrNotFound", err)
		}
	}
	if _, err := b.CreateTarball(ctx, env, 0, nil); !errors.Is(err, environment.ErrNotFound) {
		t.Fatalf("cluster B saved A's environment: %v", err)
	}
	if _, err := b.CreateEnvironment(ctx, testImage, env); !errors.Is(err, environment.ErrConflict) {
		t.Fatalf("cluster B took A's environment name: %v", err)
	}
	if ins, err := requireDocker(t).ContainerInspect(ctx, env); err != nil || !ins.State.Running || ins.Config.Labels[LabelCluster] != "clustera01" {
		t.Fatalf("A's environment after B's attempts: %v %+v", err, ins.State)
	}
	if err := a.DeleteEnvironment(ctx, env); err != nil {
		t.Fatal(err)
	}
}
