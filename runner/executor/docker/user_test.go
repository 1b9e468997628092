package docker

import (
	"context"
	"syscall"
	"testing"
	"time"
)

// TestTaskRunsAsUser: a task with a User runs as that UID:GID in its
// container (no passwd entry needed, in the image or on the runner), with
// the output files the runner creates belonging to it; without one it runs
// as the image's user (root for busybox).
func TestTaskRunsAsUser(t *testing.T) {
	cfg := testConfig(t)
	e := newTestExecutor(t, cfg)
	ctx := context.Background()
	for _, tc := range []struct {
		user, want string
		uid, gid   uint32
	}{
		{"4242:4243", "4242 4243\n", 4242, 4243},
		{"4242", "4242 4242\n", 4242, 4242},
		{"", "0 0\n", 0, 0},
	} {
		id := testTaskID()
		spec := taskSpec(cfg, id, testImage, "sh", "-c", `echo "$(id -u) $(id -g)"`)
		spec.User = tc.user
		if err := e.Start(ctx, spec); err != nil {
			t.Fatalf("user %q: %v", tc.user, err)
		}
		if ex := waitExit(t, e, id, 30*time.Second); ex.Code != 0 {
			t.Fatalf("user %q: exit %+v, stderr %q", tc.user, ex, readFile(t, spec.Stderr))
		}
		if got := readFile(t, spec.Stdout); got != tc.want {
			t.Errorf("user %q: stdout %q, want %q", tc.user, got, tc.want)
		}
		for _, p := range []string{spec.Stdout, spec.Stderr} {
			var st syscall.Stat_t
			if err := syscall.Stat(p, &st); err != nil || st.Uid != tc.uid || st.Gid != tc.gid {
				t.Errorf("user %q: %s owned by %d:%d (%v), want %d:%d", tc.user, p, st.Uid, st.Gid, err, tc.uid, tc.gid)
			}
		}
	}
}
