package runner

import (
	"testing"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
)

// TestRunAs: the owner's Unix account wins; without one, native tasks run
// as runner_user and Docker tasks as their image's user.
func TestRunAs(t *testing.T) {
	for _, tc := range []struct {
		req  api.RunRequest
		want string
	}{
		{api.RunRequest{RunAs: "4242:4242", ContainerName: "NULL"}, "4242:4242"},
		{api.RunRequest{RunAs: "alice", ContainerName: "env", DockerImageName: "hakuriver/env:base"}, "alice"},
		{api.RunRequest{ContainerName: "NULL"}, "nobody"},
		{api.RunRequest{ContainerName: "env"}, "nobody"},
		{api.RunRequest{ContainerName: "env", DockerImageName: "hakuriver/env:base"}, ""},
	} {
		if got := runAs(tc.req, "nobody"); got != tc.want {
			t.Errorf("runAs(%+v) = %q, want %q", tc.req, got, tc.want)
		}
	}
}
