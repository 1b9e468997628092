package docker

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/ops/environment"
	"github.com/hakuriver/hakuriver-ha/runner/executor"
)

// TestEnvironmentToTask is the environment round trip: an environment is
// changed through a shell, saved as a tarball, loaded by a runner that does
// not have its image, and a task in it sees the change.
func TestEnvironmentToTask(t *testing.T) {
	env := uniqueName("hrtest-env")
	cfg := testConfig(t)
	m := newTestManager(t, cfg, env)
	cli := requireDocker(t)
	ctx := context.Background()
	// "Another runner": the image is not there until the tarball is loaded.
	tb := tarballOnly(t, m, cli, env, "/data.txt", "hello-from-env")
	e := newTestExecutor(t, cfg)
	id := testTaskID()
	spec := taskSpec(cfg, id, environment.ImageName(env), "cat", "/data.txt")
	spec.ImageVersion, spec.ImageSHA256 = tb.Version, tb.SHA256
	spec.Env = map[string]string{"HAKURIVER_TASK_ID": "x"}
	if err := e.Start(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if err := e.Start(ctx, spec); err != nil {
		t.Fatalf("second Start (idempotent): %v", err)
	}
	ex := waitExit(t, e, id, 30*time.Second)
	if ex.Code != 0 || ex.OOM || ex.Killed {
		t.Fatalf("exit %+v; stderr %q", ex, readFile(t, spec.Stderr))
	}
	if got := readFile(t, spec.Stdout); got != "hello-from-env\n" {
		t.Fatalf("stdout %q", got)
	}
	if n := e.Syncer().loads.Load(); n != 1 {
		t.Fatalf("%d loads, want 1", n)
	}
	ii, err := cli.ImageInspect(ctx, environment.ImageName(env))
	if err != nil || ii.Config.Labels[LabelVersion] == "" {
		t.Fatalf("loaded image: %v %+v", err, ii.Config)
	}

	// Exit is reported until Forget, which removes the container.
	if s, ok := stateOf(t, e, id); !ok || s.Exit == nil {
		t.Fatalf("state before Forget: %+v %v", s, ok)
	}
	if err := e.Forget(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, ok := stateOf(t, e, id); ok {
		t.Fatal("task listed after Forget")
	}
	if _, err := cli.ContainerInspect(ctx, ContainerName(id)); err == nil {
		t.Fatal("container not removed by Forget")
	}
	if err := e.Forget(ctx, id); !errors.Is(err, executor.ErrUnknownTask) {
		t.Fatalf("second Forget: %v", err)
	}
}

func TestTaskExitCodeEnvAndMounts(t *testing.T) {
	cfg := testConfig(t)
	extra := t.TempDir()
	if err := os.WriteFile(filepath.Join(extra, "in.txt"), []byte("mounted"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg.AllowedMountSources = []string{extra}
	e := newTestExecutor(t, cfg)
	ctx := context.Background()
	id := testTaskID()
	spec := taskSpec(cfg, id, testImage, "sh", "-c",
		`echo "$GREETING $HAKURIVER_SHARED_DIR $(pwd)"; cat /extra/in.txt; echo; touch /extra/x 2>/dev/null || echo read-only; `+
			`echo shared > /shared/out.txt; echo tmp > /local_temp/t.txt; echo oops >&2; exit 3`)
	spec.Env = map[string]string{"GREETING": "hi there"}
	spec.WorkDir = filepath.Join(cfg.SharedDir, "shared_data")
	spec.Mounts = []string{extra + ":/extra:ro"}
	if err := e.Start(ctx, spec); err != nil {
		t.Fatal(err)
	}
	ex := waitExit(t, e, id, 30*time.Second)
	if ex.Code != 3 || ex.OOM || ex.Killed || ex.EndedAt.Before(ex.StartedAt) {
		t.Fatalf("exit %+v", ex)
	}
	if got, want := readFile(t, spec.Stdout), "hi there /shared /shared\nmounted\nread-only\n"; got != want {
		t.Fatalf("stdout %q, want %q", got, want)
	}
	if got := readFile(t, spec.Stderr); got != "oops\n" {
		t.Fatalf("stderr %q", got)
	}
	if got := readFile(t, filepath.Join(cfg.SharedDir, "shared_data", "out.txt")); got != "shared\n" {
		t.Fatalf("/shared not mounted: %q", got)
	}
	if got := readFile(t, filepath.Join(cfg.LocalTempDir, "t.txt")); got != "tmp\n" {
		t.Fatalf("/local_temp not mounted: %q", got)
	}
}

func TestTaskOOM(t *testing.T) {
	cfg := testConfig(t)
	e := newTestExecutor(t, cfg)
	id := testTaskID()
	spec := taskSpec(cfg, id, testImage, "dd", "if=/dev/zero", "of=/dev/null", "bs=96M", "count=1")
	spec.MemoryBytes = 32 << 20
	if err := e.Start(context.Background(), spec); err != nil {
		t.Fatal(err)
	}
	ex := waitExit(t, e, id, 30*time.Second)
	if !ex.OOM || ex.Killed {
		t.Fatalf("exit %+v, want OOM; stderr %q", ex, readFile(t, spec.Stderr))
	}
	// Had Docker lost its OOM flag, the memory peak would still tell.
	if ex.Usage != nil && !oomByPeak(ex.Code, ex.Killed, spec.MemoryBytes, ex.Usage) {
		t.Errorf("exit %+v, usage %+v: the peak does not tell the OOM kill (limit %d)", ex, *ex.Usage, spec.MemoryBytes)
	}
}

// TestOOMByPeak checks the fallback's rule: only an unrequested SIGKILL
// with the memory peak at the limit counts.
func TestOOMByPeak(t *testing.T) {
	t.Parallel()
	at := &executor.Usage{PeakBytes: 32 << 20}
	below := &executor.Usage{PeakBytes: 31 << 20}
	for _, c := range []struct {
		code   int
		killed bool
		limit  int64
		u      *executor.Usage
		want   bool
	}{
		{137, false, 32 << 20, at, true},
		{137, true, 32 << 20, at, false},     // killed here
		{1, false, 32 << 20, at, false},      // not a SIGKILL
		{137, false, 32 << 20, below, false}, // killed by someone else
		{137, false, 0, at, false},           // no limit
		{137, false, 32 << 20, nil, false},   // no figures
	} {
		if got := oomByPeak(c.code, c.killed, c.limit, c.u); got != c.want {
			t.Errorf("oomByPeak(%d, %v, %d, %+v) = %v, want %v", c.code, c.killed, c.limit, c.u, got, c.want)
		}
	}
}

func TestTaskLimitsPauseResumeKill(t *testing.T) {
	cfg := testConfig(t)
	e := newTestExecutor(t, cfg)
	cli := requireDocker(t)
	ctx := context.Background()
	id := testTaskID()
	spec := taskSpec(cfg, id, testImage, "sleep", "300")
	spec.Cores = 1
	spec.MemoryBytes = 64 << 20
	if err := e.Start(ctx, spec); err != nil {
		t.Fatal(err)
	}
	ins, err := cli.ContainerInspect(ctx, ContainerName(id))
	if err != nil {
		t.Fatal(err)
	}
	hc := ins.HostConfig
	if hc.NanoCPUs != 1e9 || hc.Memory != 64<<20 || hc.MemorySwap != 64<<20 || hc.Privileged || string(hc.NetworkMode) != "host" {
		t.Fatalf("host config: nano_cpus %d memory %d swap %d privileged %v network %s",
			hc.NanoCPUs, hc.Memory, hc.MemorySwap, hc.Privileged, hc.NetworkMode)
	}
	if ins.Config.Labels[LabelRunner] != cfg.RunnerName || ins.Config.Labels[LabelTaskID] == "" {
		t.Fatalf("labels %v", ins.Config.Labels)
	}

	if err := e.Pause(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := e.Pause(ctx, id); err != nil {
		t.Fatalf("second Pause: %v", err)
	}
	if ins, _ := cli.ContainerInspect(ctx, ContainerName(id)); !ins.State.Paused {
		t.Fatal("not paused")
	}
	if s, _ := stateOf(t, e, id); !s.Paused || !s.Running {
		t.Fatalf("List while paused: %+v", s)
	}
	if err := e.Resume(ctx, id); err != nil {
		t.Fatal(err)
	}
	if ins, _ := cli.ContainerInspect(ctx, ContainerName(id)); ins.State.Paused || !ins.State.Running {
		t.Fatalf("after resume: %+v", ins.State)
	}
	if s, _ := stateOf(t, e, id); s.Paused || !s.Running {
		t.Fatalf("List after resume: %+v", s)
	}
	// Killing a paused task works too.
	if err := e.Pause(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := e.Kill(ctx, id); err != nil {
		t.Fatal(err)
	}
	ex := waitExit(t, e, id, 30*time.Second)
	if !ex.Killed || ex.OOM {
		t.Fatalf("exit after kill %+v", ex)
	}
	if err := e.Kill(ctx, id); err != nil {
		t.Fatalf("Kill of an ended task: %v", err)
	}
	if err := e.Pause(ctx, id); !errors.Is(err, environment.ErrConflict) {
		t.Fatalf("Pause of an ended task: %v", err)
	}
	for _, op := range []func(context.Context, int64) error{e.Kill, e.Pause, e.Resume} {
		if err := op(ctx, testTaskID()); !errors.Is(err, executor.ErrUnknownTask) {
			t.Fatalf("op on an unknown task: %v", err)
		}
	}
}

func TestTaskStartFailures(t *testing.T) {
	cfg := testConfig(t)
	e := newTestExecutor(t, cfg)
	cli := requireDocker(t)
	ctx := context.Background()
	cases := []struct {
		name string
		edit func(*executor.Spec)
		want string
	}{
		{"privileged not allowed", func(s *executor.Spec) { s.Privileged = true }, "privileged"},
		{"bad mount", func(s *executor.Spec) { s.Mounts = []string{"relative:/x"} }, "relative:/x"},
		{"missing mount source", func(s *executor.Spec) { s.Mounts = []string{"/no/such/dir:/x"} }, "/no/such/dir"},
		{"bad mount option", func(s *executor.Spec) { s.Mounts = []string{"/tmp:/x:weird"} }, "weird"},
		{"image missing", func(s *executor.Spec) { s.Image = "hakuriver-test/none:latest" }, "hakuriver-test/none"},
		{"environment without tarball", func(s *executor.Spec) { s.Image = environment.ImageName(uniqueName("hrtest-none")) }, "recorded no tarball"},
		{"command missing", func(s *executor.Spec) { s.Command = "/no/such/command" }, "/no/such/command"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id := testTaskID()
			spec := taskSpec(cfg, id, testImage, "true")
			tc.edit(&spec)
			err := e.Start(ctx, spec)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Start: %v, want an error naming %q", err, tc.want)
			}
			if _, err := cli.ContainerInspect(ctx, ContainerName(id)); err == nil {
				t.Fatal("container left behind")
			}
			if _, ok := stateOf(t, e, id); ok {
				t.Fatal("failed task listed")
			}
		})
	}
}

// TestTaskSurvivesRunnerRestart closes the executor while a task prints,
// and checks that a new one (a restarted runner) finds the container by
// label and that every line reaches the output file exactly once.
func TestTaskSurvivesRunnerRestart(t *testing.T) {
	cfg := testConfig(t)
	e1, err := NewExecutor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e2 := newTestExecutor(t, cfg) // same runner name and StateDir
	ctx := context.Background()
	id := testTaskID()
	spec := taskSpec(cfg, id, testImage, "sh", "-c", "for i in 1 2 3 4 5 6 7 8; do echo out$i; echo err$i >&2; sleep 0.25; done")
	if err := e1.Start(ctx, spec); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(readFile(t, spec.Stdout), "out2") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if err := e1.Close(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(600 * time.Millisecond) // output the stopped runner misses
	if s, ok := stateOf(t, e2, id); !ok || !s.Running {
		t.Fatalf("restarted executor does not see the running task: %+v %v", s, ok)
	}
	if ex := waitExit(t, e2, id, 30*time.Second); ex.Code != 0 {
		t.Fatalf("exit %+v", ex)
	}
	var wantOut, wantErr strings.Builder
	for i := 1; i <= 8; i++ {
		wantOut.WriteString("out" + string(rune('0'+i)) + "\n")
		wantErr.WriteString("err" + string(rune('0'+i)) + "\n")
	}
	if got := readFile(t, spec.Stdout); got != wantOut.String() {
		t.Fatalf("stdout after a restart:\n%s\nwant:\n%s", got, wantOut.String())
	}
	if got := readFile(t, spec.Stderr); got != wantErr.String() {
		t.Fatalf("stderr after a restart:\n%s\nwant:\n%s", got, wantErr.String())
	}
}

// TestConcurrentStarts checks that concurrent Starts of one task make one
// container, and that tasks of another runner are not listed.
func TestConcurrentStarts(t *testing.T) {
	cfg := testConfig(t)
	e := newTestExecutor(t, cfg)
	other := cfg
	other.RunnerName = uniqueName("other-runner")
	eo := newTestExecutor(t, other)
	ctx := context.Background()
	id := testTaskID()
	spec := taskSpec(cfg, id, testImage, "sleep", "30")
	var wg sync.WaitGroup
	errs := make([]error, 6)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = e.Start(ctx, spec)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if _, ok := stateOf(t, eo, id); ok {
		t.Fatal("another runner lists this runner's task")
	}
	if err := eo.Kill(ctx, id); !errors.Is(err, executor.ErrUnknownTask) {
		t.Fatalf("another runner kills this runner's task: %v", err)
	}
	if err := e.Kill(ctx, id); err != nil {
		t.Fatal(err)
	}
	waitExit(t, e, id, 30*time.Second)
}
