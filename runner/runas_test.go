package runner

import (
	"testing"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/runner/executor"
)

// TestRunAs: the owner's Unix account wins; without one, native tasks run
// as runner_user and Docker tasks as their image's user when root is
// allowed for them, and as runner_user (unless it is root) or nobody when
// it is not.
func TestRunAs(t *testing.T) {
	docker := func(r api.RunRequest) api.RunRequest {
		r.ContainerName, r.DockerImageName = "env", "hakuriver/env:base"
		return r
	}
	for _, tc := range []struct {
		req        api.RunRequest
		runnerUser string
		want       string
	}{
		{api.RunRequest{RunAs: "4242:4242", ContainerName: "NULL"}, "nobody", "4242:4242"},
		{docker(api.RunRequest{RunAs: "alice"}), "nobody", "alice"},
		{api.RunRequest{ContainerName: "NULL", AllowRoot: true}, "nobody", "nobody"},
		{api.RunRequest{ContainerName: "env", AllowRoot: true}, "nobody", "nobody"},
		{api.RunRequest{ContainerName: "NULL", AllowRoot: true}, "", ""},
		{docker(api.RunRequest{AllowRoot: true}), "nobody", ""},
		{api.RunRequest{ContainerName: "NULL"}, "nobody", "nobody"},
		{api.RunRequest{ContainerName: "NULL"}, "", executor.Nobody},
		{api.RunRequest{ContainerName: "NULL"}, "root", executor.Nobody},
		{docker(api.RunRequest{}), "", executor.Nobody},
		{docker(api.RunRequest{}), "nobody", "nobody"},
		// A VPS runs as root inside its container (vpsConfig), whatever
		// runner_user is.
		{docker(api.RunRequest{TaskType: executor.TaskVPS}), "no-such-user-hk", ""},
	} {
		a := &Agent{cfg: Config{RunnerUser: tc.runnerUser, SharedDir: t.TempDir()}}
		s, err := a.spec(tc.req)
		if err != nil || s.User != tc.want {
			t.Errorf("spec(%+v) with runner_user %q: user %q (%v), want %q", tc.req, tc.runnerUser, s.User, err, tc.want)
		}
	}
}

// TestRunAsUnknownRunnerUser: a task that would run as an unknown
// runner_user is refused, not run as root.
func TestRunAsUnknownRunnerUser(t *testing.T) {
	a := &Agent{cfg: Config{RunnerUser: "no-such-user-hk", SharedDir: t.TempDir()}}
	if s, err := a.spec(api.RunRequest{ContainerName: "NULL"}); err == nil {
		t.Errorf("spec with an unknown runner_user: user %q, want an error", s.User)
	}
}
