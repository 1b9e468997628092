package httpapi

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/hakuriver/hakuriver-ha/fsm"
)

// TestNotifyURLHiddenFromNonOwners: a task's notify URL (which may carry a
// token of its owner's receiver) is shown to its owner and operators only,
// and hiding it changes nothing else (env_vars stays null).
func TestNotifyURLHiddenFromNonOwners(t *testing.T) {
	tk := task(20, fsm.StatusCompleted)
	tk.Owner, tk.Notify = "alice", "https://hooks.example/x?token=tok"
	f := newOwnerFixture(t, newFakeState([]*fsm.Task{tk}), testAccounts(), Config{})
	for as, sees := range map[string]bool{"alice": true, "bob": false, "vera": false, "opal": true, "admin": true} {
		code, body := f.do(t, as, "GET", "/api/status/20", "")
		if code != http.StatusOK {
			t.Fatalf("%s: %d %s", as, code, body)
		}
		var got fsm.Task
		if err := json.Unmarshal([]byte(body), &got); err != nil {
			t.Fatal(err)
		}
		want := HiddenValue
		if sees {
			want = tk.Notify
		}
		if got.Notify != want || !sees && strings.Contains(body, "tok") {
			t.Errorf("%s: notify %q, want %q", as, got.Notify, want)
		}
		if got.EnvVars != nil {
			t.Errorf("%s: env_vars %v, want null", as, got.EnvVars)
		}
	}
	if tk.Notify != "https://hooks.example/x?token=tok" {
		t.Error("the stored task was modified")
	}
}
