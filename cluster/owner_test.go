package cluster

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/fsm"
)

// doAs sends one request with an account's token ("" = anonymous).
func doAs(t *testing.T, method, url, bearer string, body any) (*http.Response, []byte) {
	t.Helper()
	var rd io.Reader
	if s, ok := body.(string); ok {
		rd = strings.NewReader(s)
	} else if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// addUser creates an account as admin and returns a token of it.
func addUser(t *testing.T, base, admin string, u api.UserRequest) string {
	t.Helper()
	if resp, body := doAs(t, "POST", base+"/api/users", admin, u); resp.StatusCode != http.StatusCreated {
		t.Fatalf("create user %s: %d %s", u.Name, resp.StatusCode, body)
	}
	resp, body := doAs(t, "POST", base+"/api/tokens", admin, api.TokenRequest{User: u.Name})
	var tr api.TokenResponse
	if resp.StatusCode != http.StatusCreated || json.Unmarshal(body, &tr) != nil || tr.Token == "" {
		t.Fatalf("token of %s: %d %s", u.Name, resp.StatusCode, body)
	}
	return tr.Token
}

// submitAs submits req as bearer and returns the answer.
func submitAs(t *testing.T, base, bearer string, req any) (int, string, []string) {
	t.Helper()
	resp, body := doAs(t, "POST", base+"/api/submit", bearer, req)
	var sr api.SubmitResponse
	if resp.StatusCode == http.StatusAccepted {
		if err := json.Unmarshal(body, &sr); err != nil {
			t.Fatalf("submit answer %s: %v", body, err)
		}
	}
	return resp.StatusCode, string(body), sr.TaskIDs
}

// TestAccountsOwnTheirTasks runs against a real host with accounts (no
// anonymous access): tasks record their owner and the Unix account they
// run as; privileged and mount requests need the admin's policy; env
// values are hidden from viewers and other users; ?user= lists an owner's
// tasks.
func TestAccountsOwnTheirTasks(t *testing.T) {
	h := startClusterWith(t, 1, func(_ int, cfg *Config) { cfg.AnonymousRole = "" })[0]
	base := h.APIURL()
	admin := bootstrapAdmin(t, h)
	alice := addUser(t, base, admin, api.UserRequest{Name: "alice", Role: fsm.RoleUser, UnixUser: "4242:4242"})
	bob := addUser(t, base, admin, api.UserRequest{Name: "bob", Role: fsm.RoleUser})
	rooty := addUser(t, base, admin, api.UserRequest{Name: "rooty", Role: fsm.RoleUser, UnixUser: "root"})
	viewer := addUser(t, base, admin, api.UserRequest{Name: "vera", Role: fsm.RoleViewer})

	// Owner and RunAs recorded; root refused without the policy.
	code, body, ids := submitAs(t, base, alice, api.SubmitRequest{Command: "id", EnvVars: map[string]string{"TOKEN": "s3cret"}})
	if code != http.StatusAccepted {
		t.Fatalf("alice submits: %d %s", code, body)
	}
	aliceTask := ids[0]
	if code, body, _ = submitAs(t, base, bob, api.SubmitRequest{Command: "id"}); code != http.StatusAccepted {
		t.Fatalf("bob submits: %d %s", code, body)
	}
	if code, body, _ = submitAs(t, base, rooty, api.SubmitRequest{Command: "id"}); code != http.StatusForbidden || !strings.Contains(body, "run_as_root") {
		t.Errorf("a root unix_user submits without the policy: %d %s, want 403 naming run_as_root", code, body)
	}
	resp, raw := doAs(t, "GET", base+"/api/status/"+aliceTask, alice, nil)
	var tk fsm.Task
	if resp.StatusCode != http.StatusOK || json.Unmarshal(raw, &tk) != nil {
		t.Fatalf("status: %d %s", resp.StatusCode, raw)
	}
	if tk.Owner != "alice" || tk.RunAs != "4242:4242" || tk.EnvVars["TOKEN"] != "s3cret" {
		t.Errorf("alice's task as she sees it: owner %q run_as %q env %v", tk.Owner, tk.RunAs, tk.EnvVars)
	}

	// Privileged and mounts: refused, then allowed by the admin's policy
	// on a group.
	priv := api.SubmitRequest{Command: "id", Privileged: new(true)}
	mounts := api.SubmitRequest{Command: "id", AdditionalMounts: []string{"/srv:/srv:ro"}}
	for name, req := range map[string]api.SubmitRequest{"privileged": priv, "additional_mounts": mounts} {
		for who, tok := range map[string]string{"alice": alice, "admin": admin} {
			if code, body, _ := submitAs(t, base, tok, req); code != http.StatusForbidden || !strings.Contains(body, name) {
				t.Errorf("%s asks for %s without the policy: %d %s, want 403 naming it", who, name, code, body)
			}
		}
	}
	if resp, body := doAs(t, "POST", base+"/api/groups", admin, api.GroupRequest{Name: "hpc", Policy: fsm.Policy{Mounts: true}}); resp.StatusCode != http.StatusCreated {
		t.Fatalf("create group: %d %s", resp.StatusCode, body)
	}
	if resp, body := doAs(t, "PATCH", base+"/api/users/alice", admin, api.UserPatch{Groups: &[]string{"hpc"}}); resp.StatusCode != http.StatusOK {
		t.Fatalf("add alice to hpc: %d %s", resp.StatusCode, body)
	}
	if code, body, _ := submitAs(t, base, alice, mounts); code != http.StatusAccepted {
		t.Errorf("alice asks for mounts with the group's policy: %d %s", code, body)
	}
	if code, body, _ := submitAs(t, base, alice, priv); code != http.StatusForbidden {
		t.Errorf("alice asks for privileged with only mounts allowed: %d %s", code, body)
	}

	// Secrets: hidden from a viewer and another user, shown to the owner
	// and the admin.
	for who, tok := range map[string]string{"vera": viewer, "bob": bob, "alice": alice, "admin": admin} {
		for _, path := range []string{"/api/status/" + aliceTask, "/api/tasks"} {
			resp, raw := doAs(t, "GET", base+path, tok, nil)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("%s GET %s: %d %s", who, path, resp.StatusCode, raw)
			}
			sees := who == "alice" || who == "admin"
			if got := bytes.Contains(raw, []byte("s3cret")); got != sees {
				t.Errorf("%s GET %s: value shown %v, want %v: %s", who, path, got, sees, raw)
			}
			if !bytes.Contains(raw, []byte(`"TOKEN"`)) {
				t.Errorf("%s GET %s: the key is missing: %s", who, path, raw)
			}
		}
	}

	// Listing by owner.
	resp, raw = doAs(t, "GET", base+"/api/tasks?user=bob", viewer, nil)
	var list []fsm.Task
	if resp.StatusCode != http.StatusOK || json.Unmarshal(raw, &list) != nil {
		t.Fatalf("?user=bob: %d %s", resp.StatusCode, raw)
	}
	if len(list) != 1 || list[0].Owner != "bob" || list[0].RunAs != "" || list[0].AllowRoot {
		t.Errorf("?user=bob: %+v, want bob's one task with no run_as and no allow_root (he has no run_as_root)", list)
	}
	resp, raw = doAs(t, "GET", base+"/api/tasks?user=alice", viewer, nil)
	if resp.StatusCode != http.StatusOK || json.Unmarshal(raw, &list) != nil || len(list) != 2 {
		t.Errorf("?user=alice: %d %s, want her 2 tasks", resp.StatusCode, raw)
	}
}
