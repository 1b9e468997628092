package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/crypto/ssh"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/fsm"
	"github.com/hakuriver/hakuriver-ha/sshproxy/sshtest"
)

// runVPSCLI runs "hakuriver ARGS" with the vps command wired as main.go
// does, and returns stdout, stderr and the error.
func runVPSCLI(tb testing.TB, args ...string) (string, string, error) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	root := &cobra.Command{Use: "hakuriver", SilenceUsage: true, SilenceErrors: true}
	g := addClientFlags(root)
	root.AddCommand(newVPSCmd(g))
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	return out.String(), errOut.String(), err
}

// fakeHome points $HOME at a fresh directory with an empty ~/.ssh.
func fakeHome(t *testing.T) string {
	t.Helper()
	home := t.TempDir()
	t.Setenv("HOME", home)
	if err := os.Mkdir(filepath.Join(home, ".ssh"), 0o700); err != nil {
		t.Fatal(err)
	}
	return home
}

func submitted(t *testing.T, f *fakeHost) api.SubmitRequest {
	t.Helper()
	var got api.SubmitRequest
	if err := json.Unmarshal(f.last(t, "/api/submit").Body, &got); err != nil {
		t.Fatalf("decode submit: %v", err)
	}
	return got
}

func TestCLI_VPSCreateBuildsRequest(t *testing.T) {
	fakeHome(t)
	f := newFakeHost(t)
	f.handle("POST /api/submit", http.StatusAccepted, api.SubmitResponse{Message: "ok", TaskIDs: []string{"55"}})
	key := sshtest.NewKey(t).AuthorizedKey("me@lab")
	keyFile := filepath.Join(t.TempDir(), "k.pub")
	if err := os.WriteFile(keyFile, []byte("\n"+key+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, _, err := runVPSCLI(t, "--host", f.srv.URL, "vps", "create", "--target", "n1:1::0,1", "--cores", "2", "--memory", "4G",
		"--container", "pytorch", "--public-key-file", keyFile, "--mount", "/data:/data:ro", "--request-id", "r-1")
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if !strings.HasPrefix(out, "55\n") || !strings.Contains(out, "hakuriver ssh 55") {
		t.Fatalf("output %q", out)
	}
	want := api.SubmitRequest{
		TaskType: "vps", Command: key, RequiredCores: ptr(2), RequiredMemoryBytes: ptr(int64(4e9)),
		Targets: []string{"n1:1"}, RequiredGPUs: [][]int{{0, 1}}, ContainerName: ptr("pytorch"),
		AdditionalMounts: []string{"/data:/data:ro"}, RequestID: "r-1",
	}
	if got := submitted(t, f); !reflect.DeepEqual(got, want) {
		t.Fatalf("request =\n%+v\nwant\n%+v", got, want)
	}

	// Without --target: no targets (the scheduler places it), --gpus is a count.
	if _, _, err := runVPSCLI(t, "--host", f.srv.URL, "vps", "create", "--gpus", "1", "--public-key", key); err != nil {
		t.Fatal(err)
	}
	got := submitted(t, f)
	if got.Targets != nil || got.GPUCount != 1 || *got.RequiredCores != 1 || got.ContainerName != nil || got.Command != key {
		t.Fatalf("request %+v", got)
	}
}

func TestCLI_VPSCreateDefaultKey(t *testing.T) {
	home := fakeHome(t)
	f := newFakeHost(t)
	f.handle("POST /api/submit", http.StatusAccepted, api.SubmitResponse{Message: "ok", TaskIDs: []string{"55"}})
	if _, _, err := runVPSCLI(t, "--host", f.srv.URL, "vps", "create"); err == nil ||
		!strings.Contains(err.Error(), "id_ed25519.pub") || !strings.Contains(err.Error(), "--gen-ssh-key") {
		t.Fatalf("without any key: %v", err)
	}
	if n := len(f.requests()); n != 0 {
		t.Fatalf("%d requests without a key", n)
	}
	rsa, ed := sshtest.NewKey(t).AuthorizedKey("rsa-file"), sshtest.NewKey(t).AuthorizedKey("ed-file")
	os.WriteFile(filepath.Join(home, ".ssh", "id_rsa.pub"), []byte(rsa+"\n"), 0o644) //nolint:errcheck // read back below
	if _, _, err := runVPSCLI(t, "--host", f.srv.URL, "vps", "create"); err != nil {
		t.Fatal(err)
	}
	if got := submitted(t, f).Command; got != rsa {
		t.Fatalf("key %q, want id_rsa.pub's", got)
	}
	os.WriteFile(filepath.Join(home, ".ssh", "id_ed25519.pub"), []byte(ed+"\n"), 0o644) //nolint:errcheck // read back below
	if _, _, err := runVPSCLI(t, "--host", f.srv.URL, "vps", "create"); err != nil {
		t.Fatal(err)
	}
	if got := submitted(t, f).Command; got != ed {
		t.Fatalf("key %q, want id_ed25519.pub's first", got)
	}
}

// TestCLI_VPSCreateGenKey checks that --gen-ssh-key saves a parseable 0600
// private key whose public half is the key sent, named after the task.
func TestCLI_VPSCreateGenKey(t *testing.T) {
	home := fakeHome(t)
	f := newFakeHost(t)
	f.handle("POST /api/submit", http.StatusAccepted, api.SubmitResponse{Message: "ok", TaskIDs: []string{"55"}})
	out, _, err := runVPSCLI(t, "--host", f.srv.URL, "vps", "create", "--gen-ssh-key")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(home, ".ssh", "hakuriver-vps-55")
	if !strings.Contains(out, path) || !strings.Contains(out, "hakuriver ssh --key "+path+" 55") {
		t.Fatalf("output does not name %s: %q", path, out)
	}
	checkKeyPair(t, path, submitted(t, f).Command)
	if left, _ := filepath.Glob(filepath.Join(home, ".ssh", "hakuriver-2*")); len(left) != 0 {
		t.Fatalf("temporary key files left: %v", left)
	}

	// --key-out, -o json.
	out2 := filepath.Join(t.TempDir(), "sub", "vps-key")
	stdout, _, err := runVPSCLI(t, "--host", f.srv.URL, "-o", "json", "vps", "create", "--gen-ssh-key", "--key-out", out2)
	if err != nil {
		t.Fatal(err)
	}
	var res vpsCreateOutput
	mustJSON(t, stdout, &res)
	if res.TaskID != "55" || res.PrivateKeyFile != out2 {
		t.Fatalf("json output %+v", res)
	}
	checkKeyPair(t, out2, submitted(t, f).Command)

	// A refused submit leaves no key behind.
	f2 := newFakeHost(t)
	f2.handle("POST /api/submit", http.StatusBadRequest, api.ErrorResponse{Error: "targets: nope"})
	out3 := filepath.Join(t.TempDir(), "refused")
	if _, _, err := runVPSCLI(t, "--host", f2.srv.URL, "vps", "create", "--gen-ssh-key", "--key-out", out3); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("refused submit: %v", err)
	}
	for _, p := range []string{out3, out3 + ".pub"} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Fatalf("%s left after a refused submit: %v", p, err)
		}
	}
	// An existing key is never overwritten.
	if _, _, err := runVPSCLI(t, "--host", f.srv.URL, "vps", "create", "--gen-ssh-key", "--key-out", out2); err == nil {
		t.Fatal("--key-out over an existing key must fail")
	}
	checkKeyPair(t, out2, submitted(t, f).Command)
}

// checkKeyPair checks a generated private key file: mode 0600, parseable,
// its public key is sent, and the .pub file holds the same key.
func checkKeyPair(t *testing.T, path, sent string) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("private key mode %v, want 0600", fi.Mode().Perm())
	}
	b, _ := os.ReadFile(path)
	signer, err := ssh.ParsePrivateKey(b)
	if err != nil {
		t.Fatalf("parse the private key: %v", err)
	}
	if signer.PublicKey().Type() != ssh.KeyAlgoED25519 {
		t.Fatalf("key type %s", signer.PublicKey().Type())
	}
	sentKey, _, _, _, err := ssh.ParseAuthorizedKey([]byte(sent))
	if err != nil || !bytes.Equal(sentKey.Marshal(), signer.PublicKey().Marshal()) {
		t.Fatalf("the key sent (%q, %v) is not the private key's public half", sent, err)
	}
	pubFile, _ := os.ReadFile(path + ".pub")
	if strings.TrimSpace(string(pubFile)) != sent {
		t.Fatalf(".pub file %q, sent %q", pubFile, sent)
	}
}

func TestCLI_VPSCreateBadFlags(t *testing.T) {
	fakeHome(t)
	f := newFakeHost(t)
	key := sshtest.NewKey(t).AuthorizedKey("k")
	privFile := filepath.Join(t.TempDir(), "id")
	os.WriteFile(privFile, []byte("-----BEGIN OPENSSH PRIVATE KEY-----\nxx\n-----END OPENSSH PRIVATE KEY-----\n"), 0o600) //nolint:errcheck // read by the CLI
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"TwoKeySources", []string{"--public-key", key, "--gen-ssh-key"}, "none of the others can be"},
		{"KeyOutAlone", []string{"--public-key", key, "--key-out", "/tmp/x"}, "--key-out needs --gen-ssh-key"},
		{"BadKey", []string{"--public-key", "ssh-rsa nonsense"}, "not an OpenSSH public key"},
		{"PrivateKeyFile", []string{"--public-key-file", privFile}, "private key"},
		{"MissingKeyFile", []string{"--public-key-file", "/no/such.pub"}, "--public-key-file"},
		{"Native", []string{"--public-key", key, "--container", "NULL"}, "--container"},
		{"Cores", []string{"--public-key", key, "--cores", "-1"}, "--cores"},
		{"Memory", []string{"--public-key", key, "--memory", "lots"}, "--memory"},
		{"TargetGPU", []string{"--public-key", key, "--target", "n1::x"}, "GPU ID"},
		{"Args", []string{"--public-key", key, "extra"}, "unknown command"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"--host", f.srv.URL, "vps", "create"}, tt.args...)
			if _, _, err := runVPSCLI(t, args...); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one naming %q", err, tt.want)
			}
		})
	}
	if n := len(f.requests()); n != 0 {
		t.Fatalf("bad flags sent %d requests", n)
	}
}

func TestCLI_VPSCreateWait(t *testing.T) {
	fakeHome(t)
	f := newFakeHost(t)
	f.handle("POST /api/submit", http.StatusAccepted, api.SubmitResponse{Message: "ok", TaskIDs: []string{"55"}})
	var polls atomic.Int32
	f.mux.HandleFunc("GET /api/status/55", func(w http.ResponseWriter, r *http.Request) {
		n := polls.Add(1)
		if n == 1 {
			// A follower that has not applied the submit yet.
			reply(w, http.StatusNotFound, api.ErrorResponse{Error: "task 55 not found"})
			return
		}
		t := fsm.Task{TaskID: 55, TaskType: fsm.TaskVPS, Status: fsm.StatusAssigning, AssignedNode: "n1"}
		if n >= 3 {
			t.Status, t.SSHPort = fsm.StatusRunning, 40022
		}
		reply(w, http.StatusOK, t)
	})
	out, _, err := runVPSCLI(t, "--host", f.srv.URL, "vps", "create", "--public-key", sshtest.NewKey(t).AuthorizedKey("k"), "--wait", "--poll-interval", "10ms")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "running on n1, SSH port 40022") || !strings.Contains(out, "hakuriver ssh 55") {
		t.Fatalf("output %q", out)
	}

	f2 := newFakeHost(t)
	f2.handle("POST /api/submit", http.StatusAccepted, api.SubmitResponse{Message: "ok", TaskIDs: []string{"56"}})
	f2.handle("GET /api/status/56", http.StatusOK, fsm.Task{TaskID: 56, TaskType: fsm.TaskVPS, Status: fsm.StatusFailed,
		ErrorMessage: "environment image hakuriver/x:base has no /usr/sbin/sshd"})
	if _, _, err := runVPSCLI(t, "--host", f2.srv.URL, "vps", "create", "--public-key", sshtest.NewKey(t).AuthorizedKey("k"), "--wait"); err == nil ||
		!strings.Contains(err.Error(), "no /usr/sbin/sshd") {
		t.Fatalf("wait for a failed VPS: %v", err)
	}
}

func TestCLI_VPSList(t *testing.T) {
	f := newFakeHost(t)
	started := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	f.handle("GET /api/vps/status", http.StatusOK, []fsm.Task{
		{TaskID: 2, TaskType: fsm.TaskVPS, Status: fsm.StatusRunning, AssignedNode: "n1", SSHPort: 40022, RequiredCores: 4,
			RequiredMemoryBytes: 8 << 30, StartedAt: &started},
		{TaskID: 1, TaskType: fsm.TaskVPS, Status: fsm.StatusPending, RequiredCores: 1},
	})
	f.handle("GET /api/vps", http.StatusOK, []fsm.Task{{TaskID: 3, TaskType: fsm.TaskVPS, Status: fsm.StatusKilled}})
	f.handle("GET /api/tasks", http.StatusOK, []fsm.Task{{TaskID: 4, Name: "box", TaskType: fsm.TaskVPS, Status: fsm.StatusStopped, AssignedNode: "n2"}})
	out, _, err := runVPSCLI(t, "--host", f.srv.URL, "vps", "list")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 || strings.Join(strings.Fields(lines[0]), " ") != "TASK ID NAME STATUS NODE SSH PORT CORES MEMORY STARTED" {
		t.Fatalf("table:\n%s", out)
	}
	if f := strings.Fields(lines[1]); f[0] != "4" || f[1] != "box" || f[2] != "stopped" || f[3] != "n2" {
		t.Fatalf("row %q", lines[1])
	}
	if q := f.last(t, "/api/tasks").Query; !strings.Contains(q, "status=stopped") || !strings.Contains(q, "type=vps") {
		t.Fatalf("stopped VPS query: %v", q)
	}
	if f := strings.Fields(lines[2]); f[0] != "2" || f[1] != "-" || f[2] != "running" || f[3] != "n1" || f[4] != "40022" || f[5] != "4" || f[6] != "8.0GiB" {
		t.Fatalf("row %q", lines[2])
	}
	if f := strings.Fields(lines[3]); f[0] != "1" || f[2] != "pending" || f[3] != "-" || f[4] != "-" {
		t.Fatalf("row %q", lines[3])
	}
	out, _, err = runVPSCLI(t, "--host", f.srv.URL, "vps", "list", "--all", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var tasks []fsm.Task
	mustJSON(t, out, &tasks)
	if len(tasks) != 1 || tasks[0].TaskID != 3 || f.last(t, "/api/vps").Method != http.MethodGet {
		t.Fatalf("--all: %+v", tasks)
	}
}

func TestCLI_VPSStatusAndStop(t *testing.T) {
	f := newFakeHost(t)
	f.handle("GET /api/status/55", http.StatusOK, fsm.Task{TaskID: 55, TaskType: fsm.TaskVPS, Status: fsm.StatusRunning, AssignedNode: "n1", SSHPort: 40022})
	f.handle("GET /api/status/7", http.StatusOK, fsm.Task{TaskID: 7, TaskType: fsm.TaskCommand, Status: fsm.StatusRunning})
	f.handle("POST /api/kill/55", http.StatusAccepted, api.MessageResponse{Message: "Kill requested for task 55."})
	f.handle("POST /api/command/55/pause", http.StatusOK, api.MessageResponse{Message: "Pause sent."})
	out, _, err := runVPSCLI(t, "--host", f.srv.URL, "vps", "status", "55")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "SSH port:") || !strings.Contains(out, "40022") || !strings.Contains(out, "hakuriver ssh 55") {
		t.Fatalf("status output:\n%s", out)
	}
	out, _, err = runVPSCLI(t, "--host", f.srv.URL, "-o", "json", "vps", "status", "55")
	var tk fsm.Task
	mustJSON(t, out, &tk)
	if err != nil || tk.SSHPort != 40022 || !strings.Contains(out, `"ssh_port": 40022`) {
		t.Fatalf("json status: %v %s", err, out)
	}
	f.handle("POST /api/vps/55/stop", http.StatusOK, api.MessageResponse{Message: "VPS 55 stopped; its container is kept on n1."})
	f.handle("POST /api/vps/55/start", http.StatusAccepted, api.MessageResponse{Message: "VPS 55 is starting on n1."})
	for _, alias := range []string{"kill", "delete"} {
		if out, _, err = runVPSCLI(t, "--host", f.srv.URL, "vps", alias, "55"); err != nil || !strings.Contains(out, "Kill requested") {
			t.Fatalf("%s: %q %v", alias, out, err)
		}
	}
	if out, _, err = runVPSCLI(t, "--host", f.srv.URL, "vps", "stop", "55"); err != nil || !strings.Contains(out, "container is kept") {
		t.Fatalf("stop: %q %v", out, err)
	}
	if out, _, err = runVPSCLI(t, "--host", f.srv.URL, "vps", "start", "55"); err != nil || !strings.Contains(out, "starting on n1") {
		t.Fatalf("start: %q %v", out, err)
	}
	if _, _, err = runVPSCLI(t, "--host", f.srv.URL, "vps", "pause", "55"); err != nil {
		t.Fatalf("pause: %v", err)
	}
	for _, cmd := range []string{"stop", "start", "kill", "status", "pause"} {
		if _, _, err := runVPSCLI(t, "--host", f.srv.URL, "vps", cmd, "7"); err == nil || !strings.Contains(err.Error(), "not a VPS") {
			t.Fatalf("vps %s of a command task: %v", cmd, err)
		}
	}
	for _, r := range f.requests() {
		if r.Path == "/api/kill/7" || r.Path == "/api/command/7/pause" || strings.HasPrefix(r.Path, "/api/vps/7/") {
			t.Fatalf("a command task was controlled through vps: %s", r.Path)
		}
	}
}
