package runner_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/runner"
	"github.com/hakuriver/hakuriver-ha/runner/executor/native"
)

// TestRunRefusesWhatSubmitRefuses sends /run bodies that break the submit
// contract (as a task committed by an older host could) to a real runner:
// each is refused with 400 naming the field, and no task starts, while a
// body at the size limits gets past the contract check.
func TestRunRefusesWhatSubmitRefuses(t *testing.T) {
	ctx := context.Background()
	tmp, shared, state := t.TempDir(), t.TempDir(), t.TempDir()
	nc := native.DefaultConfig()
	nc.StateDir = filepath.Join(state, "tasks")
	// A task that gets past the checks would fail to start here: none may.
	nc.ShimCommand = []string{"/bin/false"}
	nc.CgroupParent = "hakuriver-runcontract-test"
	ex, err := native.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	rc := runner.DefaultConfig()
	rc.Name, rc.BindAddr, rc.AdvertiseAddr, rc.Port, rc.GossipPort = "r1", "127.0.0.1", "127.0.0.1", 0, 0
	// No host: gossip keeps trying an address where nobody listens.
	rc.Join, rc.Token, rc.SharedDir, rc.LocalTempDir = []string{"127.0.0.1:1"}, "secret-token", shared, tmp
	rc.StateDir = state
	rc.FastGossip, rc.Native, rc.NativeLimited = true, ex, ex.Limited()
	rc.Logger = logger(t)
	a, err := runner.Start(ctx, rc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(context.Background()) })
	cc := api.DefaultClientConfig()
	cc.Hosts, cc.Token = []string{a.URL()}, "secret-token"
	c, err := api.NewClient(cc)
	if err != nil {
		t.Fatal(err)
	}
	base := api.RunRequest{TaskID: 41, TaskType: "command", Command: "true", ContainerName: "NULL"}
	for name, tc := range map[string]struct {
		mod  func(r *api.RunRequest)
		want string
	}{
		"relative working_dir": {func(r *api.RunRequest) { r.WorkDir = "../../../../etc" }, "working_dir"},
		"NUL in an argument":   {func(r *api.RunRequest) { r.Arguments = []string{"a\x00b"} }, "arguments[0]"},
		"env name with slash":  {func(r *api.RunRequest) { r.EnvVars = map[string]string{"A/B": "1"} }, "env_vars"},
		"mount etc:/x":         {func(r *api.RunRequest) { r.DockerMounts = []string{"etc:/x"} }, "additional_mounts[0]"},
		"300 KiB argument":     {func(r *api.RunRequest) { r.Arguments = []string{strings.Repeat("a", 300<<10)} }, "arguments"},
		"run_as with a shell":  {func(r *api.RunRequest) { r.RunAs = "x;rm -rf /" }, "run_as"},
		"run_as UID:name":      {func(r *api.RunRequest) { r.RunAs = "4242:wheel" }, "run_as"},
	} {
		req := base
		tc.mod(&req)
		_, err := c.Do(ctx, "POST", "/run", req, nil)
		if err == nil || !strings.Contains(err.Error(), "HTTP 400") || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: /run answered %v, want 400 naming %s", name, err, tc.want)
		}
	}
	if entries, _ := os.ReadDir(nc.StateDir); len(entries) != 0 {
		t.Fatalf("refused /run calls left task state: %v", entries)
	}
	// At the limits the contract passes: the start itself fails here (the
	// shim is /bin/false), with a 500 that is not about the contract.
	req := base
	req.Arguments = []string{strings.Repeat("a", api.MaxArgBytes), strings.Repeat("b", api.MaxCommandBytes-api.MaxArgBytes-len("true"))}
	req.EnvVars = map[string]string{"E": strings.Repeat("<", api.MaxEnvBytes)}
	_, err = c.Do(ctx, "POST", "/run", req, nil)
	if err == nil || strings.Contains(err.Error(), "HTTP 400") {
		t.Fatalf("/run at the limits: %v, want past the contract check", err)
	}
}
