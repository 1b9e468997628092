package docker

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestTaskMountsConfinedToSharedData plays a task that asks for bind mounts
// of the shared storage's own areas, against the real engine: the
// shared-dir root, the environment tarball folder, the log folders, a
// symlink to the root planted in shared_data, and an ancestor of the shared
// dir an admin allowed. Each is refused before a container exists; a task
// that runs sees neither the tarballs nor another task's logs.
func TestTaskMountsConfinedToSharedData(t *testing.T) {
	cfg := testConfig(t)
	// An admin's additional mount source that happens to contain the
	// shared dir must not expose it either.
	cfg.AllowedMountSources = []string{filepath.Dir(cfg.SharedDir)}
	e := newTestExecutor(t, cfg)
	cli := requireDocker(t)
	ctx := context.Background()
	shared := cfg.SharedDir
	const marker = "MARKER-7f3a1c-not-for-tasks"
	for _, f := range []string{
		filepath.Join(shared, cfg.ContainerDir, "env-1.tar"),
		filepath.Join(shared, "task_outputs", "other.out"),
		filepath.Join(shared, "task_errors", "other.err"),
	} {
		if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f, []byte(marker+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	link := filepath.Join(shared, "shared_data", "root-link")
	if err := os.Symlink(shared, link); err != nil {
		t.Fatal(err)
	}
	for _, src := range []string{
		shared,
		shared + "/",
		filepath.Join(shared, cfg.ContainerDir),
		filepath.Join(shared, "task_outputs"),
		filepath.Join(shared, "task_errors"),
		link,
		filepath.Join(shared, "shared_data", ".."),
		filepath.Dir(shared),
	} {
		id := testTaskID()
		spec := taskSpec(cfg, id, testImage, "true")
		spec.Mounts = []string{src + ":/x"}
		err := e.Start(ctx, spec)
		// An unclean spelling is refused by the mount parser already.
		if err == nil || !(strings.Contains(err.Error(), "shared_dir") || strings.Contains(err.Error(), "not a clean path")) {
			t.Errorf("mount %s: Start = %v, want a refusal naming shared_dir", src, err)
		}
		if _, err := cli.ContainerInspect(ctx, ContainerName(id)); err == nil {
			t.Errorf("mount %s: container created", src)
		}
	}

	// A mount under shared_data works, and from inside no path leads to
	// the tarballs or the logs.
	sub := filepath.Join(shared, "shared_data", "sub")
	if err := os.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	id := testTaskID()
	spec := taskSpec(cfg, id, testImage, "sh", "-c",
		"echo ok > /x/written; grep -rs "+marker[:10]+" /shared /local_temp /x /tmp /etc /root; cat /proc/self/mountinfo; echo end")
	spec.Mounts = []string{sub + ":/x"}
	if err := e.Start(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if ex := waitExit(t, e, id, 30*time.Second); ex.Code != 0 {
		t.Fatalf("task exit %+v", ex)
	}
	out := readFile(t, spec.Stdout)
	if strings.Contains(out, marker) || !strings.HasSuffix(out, "end\n") {
		t.Fatalf("task reached the tarballs or logs:\n%s", out)
	}
	for _, l := range strings.Split(out, "\n") {
		// mountinfo's 4th field is the mount's root within its filesystem.
		if f := strings.Fields(l); len(f) > 4 && (strings.HasSuffix(f[3], "/"+cfg.ContainerDir) || strings.HasSuffix(f[3], "/task_outputs") || strings.HasSuffix(f[3], "/task_errors")) {
			t.Errorf("task has a mount of %s", f[3])
		}
	}
	if got := readFile(t, filepath.Join(sub, "written")); got != "ok\n" {
		t.Fatalf("mount under shared_data not writable: %q", got)
	}
}
