package cluster

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/hakuriver/hakuriver-ha/fsm"
)

// TestRunRequestCarriesRunAsAndAllowRoot: the runner learns who a task
// runs as and whether root is allowed for it; allow_root is left out of
// the body when false, so an older runner sees the body it always saw.
func TestRunRequestCarriesRunAsAndAllowRoot(t *testing.T) {
	r := runRequest(&fsm.Task{TaskID: 1, Command: "id", RunAs: "4242:4242", AllowRoot: true})
	if r.RunAs != "4242:4242" || !r.AllowRoot {
		t.Errorf("run request run_as %q allow_root %v, want 4242:4242 true", r.RunAs, r.AllowRoot)
	}
	b, err := json.Marshal(runRequest(&fsm.Task{TaskID: 2, Command: "id"}))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "allow_root") {
		t.Errorf("run request without allow_root: %s", b)
	}
}
