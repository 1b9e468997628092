package httpapi

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"

	"github.com/hakuriver/hakuriver-ha/cluster/auth"
	"github.com/hakuriver/hakuriver-ha/fsm"
)

// fakeAccounts holds fixed users and groups; EffectivePolicy joins them
// as fsm.Machine does.
type fakeAccounts struct {
	AccountReader // the account calls these tests do not make
	users         map[string]fsm.User
	groups        map[string]fsm.Group
}

func (f *fakeAccounts) User(name string) (fsm.User, bool) { u, ok := f.users[name]; return u, ok }

func (f *fakeAccounts) Users() []fsm.User {
	var out []fsm.User
	for _, u := range f.users {
		out = append(out, u)
	}
	return out
}

func (f *fakeAccounts) Groups() []fsm.Group {
	var out []fsm.Group
	for _, g := range f.groups {
		out = append(out, g)
	}
	return out
}

func (f *fakeAccounts) EffectivePolicy(u fsm.User) fsm.Policy {
	p := u.Policy
	for _, g := range u.Groups {
		p = p.Or(f.groups[g].Policy)
	}
	return p
}

// principalHeader names the caller in these tests: an account name, or
// "anonymous:ROLE", or "cluster".
const principalHeader = "X-Test-Principal"

// ownerFixture serves the task handlers with the caller taken from
// principalHeader, resolved against accts.
type ownerFixture struct {
	prop *fakeProposer
	srv  *httptest.Server
}

func newOwnerFixture(t *testing.T, state *fakeState, accts *fakeAccounts, cfg Config) *ownerFixture {
	t.Helper()
	f := &ownerFixture{prop: &fakeProposer{}}
	cfg.NodeID, cfg.SharedDir, cfg.MaxListTasks, cfg.DefaultContainer = "h1", t.TempDir(), 1000, "hakuriver-base"
	a := New(cfg, Deps{Proposer: f.prop, Tasks: state, Nodes: state, Runners: &fakeRunners{},
		Environments: fakeEnvs{"hakuriver-base", "NULL"}, Accounts: accts})
	r := chi.NewRouter()
	r.Use(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			name := r.Header.Get(principalHeader)
			var p auth.Principal
			switch {
			case name == "cluster":
				p = auth.Principal{Kind: auth.Cluster, Name: "cluster"}
			case strings.HasPrefix(name, "anonymous:"):
				p = auth.Principal{Kind: auth.Anonymous, Name: auth.AnonymousName, Role: fsm.Role(strings.TrimPrefix(name, "anonymous:"))}
			default:
				u, ok := accts.users[name]
				if !ok {
					http.Error(w, "unknown test principal "+name, http.StatusUnauthorized)
					return
				}
				p = auth.Principal{Kind: auth.Account, Name: u.Name, Role: u.Role, User: &u}
			}
			next.ServeHTTP(w, r.WithContext(auth.WithPrincipal(r.Context(), p)))
		})
	})
	r.Post("/api/submit", CheckSubmit(a.Submit))
	r.Get("/api/status/{id}", a.Status)
	r.Get("/api/tasks", a.Tasks)
	r.Get("/api/vps", a.VPSList)
	r.Get("/api/vps/status", a.VPSStatus)
	r.Post("/api/batch/{id}/{action}", a.Batch)
	f.srv = httptest.NewServer(r)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *ownerFixture) do(t *testing.T, as, method, path, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, f.srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set(principalHeader, as)
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// submitted returns the tasks of the last SubmitTasks proposed.
func (f *ownerFixture) submitted(t *testing.T) []*fsm.Task {
	t.Helper()
	cmds := f.prop.proposed()
	if len(cmds) == 0 {
		t.Fatal("nothing proposed")
	}
	st, ok := cmds[len(cmds)-1].(*fsm.SubmitTasks)
	if !ok {
		t.Fatalf("proposed %#v, want SubmitTasks", cmds[len(cmds)-1])
	}
	return st.Tasks
}

func testAccounts() *fakeAccounts {
	return &fakeAccounts{
		users: map[string]fsm.User{
			"alice":   {Name: "alice", Role: fsm.RoleUser, UnixUser: "4242:4242"},
			"bob":     {Name: "bob", Role: fsm.RoleUser},
			"rooty":   {Name: "rooty", Role: fsm.RoleUser, UnixUser: "root"},
			"zero":    {Name: "zero", Role: fsm.RoleUser, UnixUser: "0:0"},
			"trusted": {Name: "trusted", Role: fsm.RoleUser, UnixUser: "root", Policy: fsm.Policy{RunAsRoot: true, Privileged: true}},
			"member":  {Name: "member", Role: fsm.RoleUser, UnixUser: "carol", Groups: []string{"hpc"}},
			"opal":    {Name: "opal", Role: fsm.RoleOperator},
			"admin":   {Name: "admin", Role: fsm.RoleAdmin},
			"vera":    {Name: "vera", Role: fsm.RoleViewer},
		},
		groups: map[string]fsm.Group{"hpc": {Name: "hpc", Policy: fsm.Policy{Mounts: true}}},
	}
}

// TestSubmitRecordsOwnerAndRunAs: a task runs as its owner's unix_user;
// an account without one and anonymous callers run as runner_user ("").
// allow_root is the owner's effective run_as_root policy (their own or a
// group's), and true for anonymous callers (compatibility mode).
func TestSubmitRecordsOwnerAndRunAs(t *testing.T) {
	accts := testAccounts()
	accts.users["ogre"] = fsm.User{Name: "ogre", Role: fsm.RoleUser, Groups: []string{"ops"}}
	accts.groups["ops"] = fsm.Group{Name: "ops", Policy: fsm.Policy{RunAsRoot: true}}
	f := newOwnerFixture(t, newFakeState(nil), accts, Config{})
	for _, tc := range []struct {
		as, owner, runAs string
		allowRoot        bool
	}{
		{"alice", "alice", "4242:4242", false},
		{"bob", "bob", "", false},
		{"member", "member", "carol", false},
		{"trusted", "trusted", "root", true},
		{"ogre", "ogre", "", true},
		{"anonymous:user", auth.AnonymousName, "", true},
	} {
		code, body := f.do(t, tc.as, "POST", "/api/submit", `{"command":"id","array":"0-1"}`)
		if code != http.StatusAccepted {
			t.Fatalf("%s: submit %d %s", tc.as, code, body)
		}
		for _, tk := range f.submitted(t) {
			if tk.Owner != tc.owner || tk.RunAs != tc.runAs || tk.AllowRoot != tc.allowRoot {
				t.Errorf("%s: task owner %q run_as %q allow_root %v, want %q %q %v", tc.as, tk.Owner, tk.RunAs, tk.AllowRoot, tc.owner, tc.runAs, tc.allowRoot)
			}
		}
	}
}

// TestSubmitAsRootNeedsPolicy: an account whose unix_user is root (by name
// or UID 0) cannot submit without run_as_root; nothing is proposed.
func TestSubmitAsRootNeedsPolicy(t *testing.T) {
	f := newOwnerFixture(t, newFakeState(nil), testAccounts(), Config{})
	for _, as := range []string{"rooty", "zero"} {
		code, body := f.do(t, as, "POST", "/api/submit", `{"command":"id"}`)
		if code != http.StatusForbidden || !strings.Contains(body, "run_as_root") {
			t.Errorf("%s: submit %d %s, want 403 naming run_as_root", as, code, body)
		}
	}
	if cmds := f.prop.proposed(); len(cmds) != 0 {
		t.Errorf("refused submits proposed %#v", cmds)
	}
}

func TestIsRootUser(t *testing.T) {
	for s, want := range map[string]bool{"root": true, "0": true, "0:0": true, "00:5": true, "root:x": true,
		"4242:0": true, "4242:00": true, "": false, "4242": false, "4242:10": false, "rooty": false, "10": false, "alice": false} {
		if got := isRootUser(s); got != want {
			t.Errorf("isRootUser(%q) = %v, want %v", s, got, want)
		}
	}
}

// TestSubmitPrivilegedAndMountsNeedPolicy: a request's privileged: true or
// additional_mounts is refused with 403 naming the field unless the owner's
// effective policy (their own or a group's) allows it; anonymous callers
// never get them, whatever their role. The server's defaults still apply
// to requests that do not name the fields.
func TestSubmitPrivilegedAndMountsNeedPolicy(t *testing.T) {
	cfg := Config{TasksPrivileged: true, AdditionalMounts: []string{"/data:/data:ro"}}
	f := newOwnerFixture(t, newFakeState(nil), testAccounts(), cfg)
	priv := `{"command":"id","privileged":true}`
	mounts := `{"command":"id","additional_mounts":["/srv:/srv"]}`
	for _, tc := range []struct {
		as, body, field string
	}{
		{"bob", priv, "privileged"},
		{"bob", mounts, "additional_mounts"},
		{"admin", priv, "privileged"},
		{"admin", mounts, "additional_mounts"},
		{"opal", mounts, "additional_mounts"},
		{"member", priv, "privileged"},
		{"trusted", mounts, "additional_mounts"},
		{"anonymous:admin", priv, "privileged"},
		{"anonymous:admin", mounts, "additional_mounts"},
	} {
		code, body := f.do(t, tc.as, "POST", "/api/submit", tc.body)
		if code != http.StatusForbidden || !strings.Contains(body, tc.field) || !strings.Contains(body, "policy") {
			t.Errorf("%s submits %s: %d %s, want 403 naming %s and the policy", tc.as, tc.body, code, body, tc.field)
		}
	}
	if cmds := f.prop.proposed(); len(cmds) != 0 {
		t.Fatalf("refused submits proposed %d commands", len(cmds))
	}
	for _, tc := range []struct {
		as, body   string
		privileged bool
		mounts     []string
	}{
		{"trusted", priv, true, cfg.AdditionalMounts},
		{"member", mounts, true, []string{"/srv:/srv"}},
		// Not named in the request: the server's defaults.
		{"bob", `{"command":"id"}`, true, cfg.AdditionalMounts},
		{"anonymous:user", `{"command":"id"}`, true, cfg.AdditionalMounts},
		// Asking for less is always allowed.
		{"bob", `{"command":"id","privileged":false,"additional_mounts":[]}`, false, nil},
	} {
		code, body := f.do(t, tc.as, "POST", "/api/submit", tc.body)
		if code != http.StatusAccepted {
			t.Errorf("%s submits %s: %d %s, want 202", tc.as, tc.body, code, body)
			continue
		}
		tk := f.submitted(t)[0]
		if tk.Privileged != tc.privileged || strings.Join(tk.AdditionalMounts, ",") != strings.Join(tc.mounts, ",") {
			t.Errorf("%s submits %s: privileged %v mounts %v, want %v %v", tc.as, tc.body, tk.Privileged, tk.AdditionalMounts, tc.privileged, tc.mounts)
		}
	}
}

// TestEnvValuesHiddenFromNonOwners: viewers and users who do not own a
// task see its env_vars keys with every value replaced; the owner,
// operators, admins and the cluster see the values, on every listing.
func TestEnvValuesHiddenFromNonOwners(t *testing.T) {
	secret := map[string]string{"API_KEY": "s3cret", "MODE": "fast"}
	cmd := task(10, fsm.StatusRunning)
	cmd.Owner, cmd.EnvVars = "alice", secret
	vps := task(11, fsm.StatusRunning)
	vps.TaskType, vps.Owner, vps.EnvVars = fsm.TaskVPS, "alice", secret
	anon := task(12, fsm.StatusRunning)
	anon.Owner, anon.EnvVars = auth.AnonymousName, secret
	f := newOwnerFixture(t, newFakeState([]*fsm.Task{cmd, vps, anon}), testAccounts(), Config{})
	decode := func(t *testing.T, body string) map[int64]*fsm.Task {
		t.Helper()
		out := map[int64]*fsm.Task{}
		var list []*fsm.Task
		if strings.HasPrefix(strings.TrimSpace(body), "[") {
			if err := json.Unmarshal([]byte(body), &list); err != nil {
				t.Fatalf("decode %s: %v", body, err)
			}
		} else {
			var one fsm.Task
			if err := json.Unmarshal([]byte(body), &one); err != nil {
				t.Fatalf("decode %s: %v", body, err)
			}
			list = []*fsm.Task{&one}
		}
		for _, tk := range list {
			out[tk.TaskID] = tk
		}
		return out
	}
	paths := []string{"/api/status/10", "/api/status/11", "/api/tasks", "/api/vps", "/api/vps/status"}
	for _, tc := range []struct {
		as string
		// sees lists the tasks whose values the caller sees.
		sees map[int64]bool
	}{
		{"alice", map[int64]bool{10: true, 11: true}},
		{"bob", nil},
		{"vera", nil},
		{"anonymous:viewer", nil},
		{"anonymous:user", map[int64]bool{12: true}},
		{"opal", map[int64]bool{10: true, 11: true, 12: true}},
		{"admin", map[int64]bool{10: true, 11: true, 12: true}},
		{"cluster", map[int64]bool{10: true, 11: true, 12: true}},
	} {
		for _, path := range paths {
			code, body := f.do(t, tc.as, "GET", path, "")
			if code != http.StatusOK {
				t.Fatalf("%s GET %s: %d %s", tc.as, path, code, body)
			}
			tasks := decode(t, body)
			if len(tasks) == 0 {
				t.Fatalf("%s GET %s: no tasks in %s", tc.as, path, body)
			}
			for id, tk := range tasks {
				if len(tk.EnvVars) != 2 {
					t.Errorf("%s GET %s: task %d env %v, want both keys", tc.as, path, id, tk.EnvVars)
					continue
				}
				want := secret
				if !tc.sees[id] {
					want = map[string]string{"API_KEY": HiddenValue, "MODE": HiddenValue}
				}
				for k, v := range want {
					if tk.EnvVars[k] != v {
						t.Errorf("%s GET %s: task %d %s=%q, want %q", tc.as, path, id, k, tk.EnvVars[k], v)
					}
				}
			}
			seen := false
			for id := range tasks {
				seen = seen || tc.sees[id]
			}
			if !seen && strings.Contains(body, "s3cret") {
				t.Errorf("%s GET %s: the secret value is in the answer", tc.as, path)
			}
		}
	}
	// The stored task is never modified by hiding.
	if cmd.EnvVars["API_KEY"] != "s3cret" {
		t.Errorf("stored task's env changed: %v", cmd.EnvVars)
	}
}

// TestTasksFilterByOwner: ?user= lists one account's tasks; a malformed
// name is a 400 naming the field.
func TestTasksFilterByOwner(t *testing.T) {
	var tasks []*fsm.Task
	for i, owner := range []string{"alice", "bob", "alice", auth.AnonymousName} {
		tk := task(int64(20+i), fsm.StatusPending)
		tk.Owner = owner
		tasks = append(tasks, tk)
	}
	f := newOwnerFixture(t, newFakeState(tasks), testAccounts(), Config{})
	for user, want := range map[string]string{"alice": "22,20", "bob": "21", "anonymous": "23", "nobody": ""} {
		code, body := f.do(t, "vera", "GET", "/api/tasks?user="+user, "")
		var got []*fsm.Task
		if code != http.StatusOK || json.Unmarshal([]byte(body), &got) != nil {
			t.Fatalf("?user=%s: %d %s", user, code, body)
		}
		var ids []string
		for _, tk := range got {
			ids = append(ids, strconv.FormatInt(tk.TaskID, 10))
		}
		if strings.Join(ids, ",") != want {
			t.Errorf("?user=%s: tasks %v, want %s", user, ids, want)
		}
	}
	if code, body := f.do(t, "vera", "GET", "/api/tasks?user=Bad%20Name", ""); code != http.StatusBadRequest || !strings.Contains(body, "user") {
		t.Errorf("?user=Bad Name: %d %s, want 400 naming user", code, body)
	}
}
