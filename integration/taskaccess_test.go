//go:build integration

package integration

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/fsm"
	"github.com/hakuriver/hakuriver-ha/integration/harness"
)

// Bounds of the task access tests.
const (
	// accessTimeout bounds one forwarded exchange or one copy.
	accessTimeout = 60 * time.Second
	// forwardCLILife bounds a background `hakuriver forward`.
	forwardCLILife = 5 * time.Minute
)

// accessUnixUser is the Unix account (no passwd entry) alice's tasks run
// as.
const accessUnixUser = 4242

// accessCluster is 3 replicas and one runner with Docker (which also runs
// native tasks), the busybox environment, and two users: alice, whose
// tasks run as uid 4242, and bob.
type accessCluster struct {
	c          *harness.Cluster
	runner     string
	env        string
	alice, bob string
	// workDir is a directory owned by alice's Unix user, the working
	// directory of her native tasks.
	workDir string
}

func startAccessCluster(t *testing.T) *accessCluster {
	t.Helper()
	return startAccessClusterWith(t, busyboxImage)
}

// startAccessClusterWith is startAccessCluster with the environment made
// from image.
func startAccessClusterWith(t *testing.T, image string) *accessCluster {
	t.Helper()
	requireDocker(t, image)
	c := startCluster(t, harness.Options{HeartbeatInterval: hbInterval, HeartbeatTimeoutFactor: hbFactor})
	name := "hkt-access-" + uniqueSuffix()
	t.Cleanup(func() { harness.RemoveRunnerContainers(t, name) })
	c.StartRunner(name, dockerRunner)
	env := envName("hkt-access")
	createEnvironment(t, c, image, env)
	createTar(t, c, env)
	a := &accessCluster{c: c, runner: name, env: env}
	a.alice = createRunAsAccount(t, c, api.UserRequest{Name: "alice", Role: fsm.RoleUser, UnixUser: fmt.Sprintf("%d:%d", accessUnixUser, accessUnixUser)})
	a.bob = createRunAsAccount(t, c, api.UserRequest{Name: "bob", Role: fsm.RoleUser})
	a.workDir = accessibleDir(t, "work")
	if err := os.Chown(a.workDir, accessUnixUser, accessUnixUser); err != nil {
		t.Fatal(err)
	}
	return a
}

// accessibleDir makes a directory every user can reach (t.TempDir is
// under a directory only root may enter), removed at cleanup.
func accessibleDir(t *testing.T, name string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "hkt-access-"+name+"-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// freeTCPPort returns a loopback port that was free a moment ago.
func freeTCPPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// httpdScript serves dir's index.html, holding text, on port with
// busybox httpd (in the foreground).
func httpdScript(bb, dir, text string, ports ...int) string {
	s := fmt.Sprintf("mkdir -p %s && echo %s > %s/index.html || exit 1; ", dir, text, dir)
	for i, p := range ports {
		if i > 0 {
			s += " & "
		}
		s += fmt.Sprintf("%s httpd -f -p 127.0.0.1:%d -h %s", bb, p, dir)
	}
	return s
}

// dockerTask submits a running Docker task of alice's (sh -c script).
func (a *accessCluster) dockerTask(t *testing.T, script string) string {
	t.Helper()
	id := submitAs(t, a.c, a.alice, api.SubmitRequest{Command: "sh", Arguments: []string{"-c", script}, ContainerName: &a.env, Targets: []string{a.runner}})
	a.waitRunning(t, id, dockerTaskTimeout)
	t.Cleanup(func() { a.c.CallAs(context.Background(), 0, http.MethodPost, "/api/kill/"+id, a.c.AdminToken(), nil) })
	return id
}

// nativeTask submits a running native task of alice's in her workDir.
func (a *accessCluster) nativeTask(t *testing.T, script string) string {
	t.Helper()
	req := onTarget(shell(script), a.runner)
	req.WorkDir = a.workDir
	id := submitAs(t, a.c, a.alice, req)
	a.waitRunning(t, id, taskTimeout)
	t.Cleanup(func() { a.c.CallAs(context.Background(), 0, http.MethodPost, "/api/kill/"+id, a.c.AdminToken(), nil) })
	return id
}

// waitRunning waits for task id to run; a task that ended fails t with
// its stderr.
func (a *accessCluster) waitRunning(t *testing.T, id string, timeout time.Duration) {
	t.Helper()
	task := a.c.WaitTask(id, timeout, "running or ended", func(task api.Task) bool {
		return task.Status == "running" || task.CompletedAt != nil
	})
	if task.Status != "running" {
		b, _ := os.ReadFile(filepath.Join(a.c.SharedDir(), "task_errors", id+".err"))
		t.Fatalf("task %s: %s, stderr %q", id, task.Status, b)
	}
}

// startForward runs `hakuriver forward` as alice through replicas idxs
// and returns its printed mapping.
func (a *accessCluster) startForward(t *testing.T, idxs []int, id string, maps ...string) (*harness.Background, forwardOut) {
	t.Helper()
	args := append([]string{"--token", a.alice, "-o", "json", "forward", id}, maps...)
	b := a.c.StartCLIVia(idxs, forwardCLILife, args...)
	var out forwardOut
	err := harness.Eventually(accessTimeout, func() (bool, string) {
		if r, done := b.Done(); done {
			t.Fatalf("forward ended: %s\nstderr: %s", r, r.Stderr)
		}
		s := b.Stdout()
		return json.Unmarshal([]byte(s), &out) == nil && len(out.Forwards) == len(maps), "forward printed " + s
	})
	if err != nil {
		t.Fatal(err)
	}
	return b, out
}

type forwardOut struct {
	TaskID   string `json:"task_id"`
	Forwards []struct {
		LocalPort  int    `json:"local_port"`
		RemotePort int    `json:"remote_port"`
		URL        string `json:"url"`
	} `json:"forwards"`
}

// httpGet fetches url, trying again while the server in the task is not
// up yet (the forward answers by closing the connection then).
func httpGet(t *testing.T, url string) string {
	t.Helper()
	var body string
	err := harness.Eventually(accessTimeout, func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		// No idle connections: each stream ends with its exchange.
		hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
		resp, err := hc.Do(req)
		if err != nil {
			return false, err.Error()
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != http.StatusOK {
			return false, fmt.Sprintf("HTTP %d %q %v", resp.StatusCode, b, err)
		}
		body = string(b)
		return true, ""
	})
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return body
}

// TestForwardReachesTasksThroughAFollower: `hakuriver forward` through a
// follower reaches busybox httpd inside a Docker task on two ports at once
// and inside a native task; a connection open while the leader is
// SIGKILLed completes afterwards and new connections work; the sessions
// are in the audit log; bob may not forward alice's task.
func TestForwardReachesTasksThroughAFollower(t *testing.T) {
	a := startAccessCluster(t)
	c := a.c
	p1, p2, p3 := freeTCPPort(t), freeTCPPort(t), freeTCPPort(t)
	dockerID := a.dockerTask(t, httpdScript("", "/tmp/www", "docker-hello", p1, p2))
	nativeID := a.nativeTask(t, httpdScript("/bin/busybox", "www", "native-hello", p3))

	leader := c.WaitLeader(harness.LeaderTimeout)
	f := c.Followers()[0]
	_, dfw := a.startForward(t, []int{f}, dockerID, fmt.Sprintf("0:%d", p1), fmt.Sprintf("0:%d", p2))
	_, nfw := a.startForward(t, []int{f}, nativeID, fmt.Sprintf("0:%d", p3))
	for i, fw := range dfw.Forwards {
		if got := httpGet(t, fw.URL); got != "docker-hello\n" {
			t.Errorf("docker port %d (#%d): got %q", fw.RemotePort, i, got)
		}
	}
	if got := httpGet(t, nfw.Forwards[0].URL); got != "native-hello\n" {
		t.Errorf("native port: got %q", got)
	}

	// A connection opened before the leader dies, its request finished after.
	conn, err := net.DialTimeout("tcp", strings.TrimPrefix(dfw.Forwards[0].URL, "http://"), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "GET /index.html HTTP/1.0\r\n"); err != nil {
		t.Fatal(err)
	}
	c.Kill(leader)
	c.WaitNewLeader(leader, harness.LeaderTimeout)
	conn.SetDeadline(time.Now().Add(accessTimeout))
	if _, err := io.WriteString(conn, "Host: x\r\n\r\n"); err != nil {
		t.Fatalf("the open connection broke with the leader: %v", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("the open connection broke with the leader: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || string(b) != "docker-hello\n" {
		t.Errorf("through the open connection: HTTP %d %q", resp.StatusCode, b)
	}
	conn.Close() // its session can end
	// New connections after the leader changed.
	if got := httpGet(t, dfw.Forwards[1].URL); got != "docker-hello\n" {
		t.Errorf("new connection after the leader died: got %q", got)
	}
	if got := httpGet(t, nfw.Forwards[0].URL); got != "native-hello\n" {
		t.Errorf("new native connection after the leader died: got %q", got)
	}

	// Every session is recorded: who, which task and port, through f.
	want := fmt.Sprintf("task %s port %d", dockerID, p1)
	c.Poll(accessTimeout, "forward sessions in the audit log", func() (bool, string) {
		recs := auditOf(t, c, f, "alice")
		for _, r := range recs {
			if r.Action == "forward" && strings.HasPrefix(r.Target, want+", ") && strings.Contains(r.Target, "connection(s)") &&
				r.Via == c.Replica(f).ID && r.User == "alice" {
				return true, ""
			}
		}
		return false, fmt.Sprintf("records %+v", recs)
	})

	// bob may not: 403, checked before anything listens or connects.
	r := c.CLIVia([]int{f}, accessTimeout, "", "--token", a.bob, "forward", dockerID, fmt.Sprintf("0:%d", p1))
	if r.Code == 0 || !strings.Contains(r.Stderr, "HTTP 403") {
		t.Errorf("bob's forward: want HTTP 403, got %s", r)
	}
	if st := rawForward(t, c.Replica(f).API, a.bob, dockerID, p1); st != http.StatusForbidden {
		t.Errorf("bob's raw stream request: HTTP %d, want 403", st)
	}
	if st := rawForward(t, c.Replica(f).API, a.alice, dockerID, p1); st != http.StatusSwitchingProtocols {
		t.Errorf("alice's raw stream request: HTTP %d, want 101", st)
	}
}

// rawForward sends a stream request for port of task id with bearer and
// returns the answer's status.
func rawForward(t *testing.T, base, bearer, id string, port int) int {
	t.Helper()
	d := api.StreamDialer{Bearer: bearer}
	conn, err := d.DialStream(context.Background(), base, fmt.Sprintf("/api/task/%s/forward?port=%d", id, port))
	if err == nil {
		conn.Close()
		return http.StatusSwitchingProtocols
	}
	return api.StatusCode(err)
}

// auditOf reads user's audit records from replica i (as the admin).
func auditOf(t *testing.T, c *harness.Cluster, i int, user string) []fsm.AuditRecord {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a, err := c.CallAs(ctx, i, http.MethodGet, "/api/audit?user="+user, c.AdminToken(), nil)
	if err != nil || a.Status != http.StatusOK {
		return nil
	}
	var out struct {
		Records []fsm.AuditRecord `json:"records"`
	}
	if err := a.Decode(&out); err != nil {
		var list []fsm.AuditRecord
		if a.Decode(&list) == nil {
			return list
		}
	}
	return out.Records
}

// copyTree is the tree the copy tests send: files of mode 0755 and 0600
// and a subdirectory.
func copyTree(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(accessibleDir(t, "src"), "tree")
	for _, f := range []struct {
		name string
		mode os.FileMode
		data string
	}{{"run.sh", 0o755, "#!/bin/sh\necho hi\n"}, {"secret", 0o600, "s3cret\n"}, {"sub/deep.txt", 0o644, "deep\n"}} {
		p := filepath.Join(dir, f.name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(f.data), f.mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, f.mode); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// sameTree fails t unless got holds want's files with the same modes and
// contents.
func sameTree(t *testing.T, want, got string) {
	t.Helper()
	n := 0
	err := filepath.Walk(want, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(want, p)
		gi, err := os.Lstat(filepath.Join(got, rel))
		if err != nil {
			return fmt.Errorf("%s: %w", rel, err)
		}
		if gi.Mode() != fi.Mode() {
			t.Errorf("%s: mode %v, want %v", rel, gi.Mode(), fi.Mode())
		}
		if fi.Mode().IsRegular() {
			wb, _ := os.ReadFile(p)
			gb, _ := os.ReadFile(filepath.Join(got, rel))
			if !bytes.Equal(wb, gb) {
				t.Errorf("%s: content %q, want %q", rel, gb, wb)
			}
		}
		n++
		return nil
	})
	if err != nil || n < 5 {
		t.Errorf("compare %s with %s: %v (%d entries)", want, got, err, n)
	}
}

// cpAs runs `hakuriver cp src dst` as bearer.
func (a *accessCluster) cpAs(bearer, src, dst string) harness.CLIResult {
	return a.c.CLIVia(nil, accessTimeout, "", "--token", bearer, "cp", src, dst)
}

// TestCopyRoundTripsDockerAndNative: `hakuriver cp` puts a directory and
// single files (0755, 0600) into a Docker task and a native task and gets
// them back with their modes and contents; a native task's copies belong
// to its user, who cannot write where that user may not; bob can copy
// neither into nor out of alice's tasks (403, nothing written); archives
// with ".." entries or absolute links are refused (400, nothing written).
func TestCopyRoundTripsDockerAndNative(t *testing.T) {
	a := startAccessCluster(t)
	src := copyTree(t)
	dockerID := a.dockerTask(t, "sleep 600")
	nativeID := a.nativeTask(t, "sleep 600")
	for _, tc := range []struct {
		name, id, dir string
	}{{"docker", dockerID, "/tmp/in"}, {"native", nativeID, "in"}} {
		t.Run(tc.name, func(t *testing.T) {
			if r := a.cpAs(a.alice, src, tc.id+":"+tc.dir); r.Code != 0 {
				t.Fatalf("cp into the task: %s", r)
			}
			// into an existing directory: under its own name
			if r := a.cpAs(a.alice, filepath.Join(src, "secret"), tc.id+":"+tc.dir); r.Code != 0 {
				t.Fatalf("cp a file into the task: %s", r)
			}
			out := accessibleDir(t, "out")
			if r := a.cpAs(a.alice, tc.id+":"+tc.dir, filepath.Join(out, "back")); r.Code != 0 {
				t.Fatalf("cp out of the task: %s", r)
			}
			sameTree(t, src, filepath.Join(out, "back"))
			if fi, err := os.Stat(filepath.Join(out, "back", "secret")); err != nil || fi.Mode().Perm() != 0o600 {
				t.Errorf("back/secret: %v %v, want mode 0600", fi, err)
			}
			for _, f := range []string{"run.sh", "secret"} {
				if r := a.cpAs(a.alice, tc.id+":"+tc.dir+"/"+f, out); r.Code != 0 {
					t.Fatalf("cp a file out of the task: %s", r)
				}
				wi, _ := os.Stat(filepath.Join(src, f))
				gi, err := os.Stat(filepath.Join(out, f))
				if err != nil || gi.Mode() != wi.Mode() {
					t.Errorf("%s: got %v %v, want mode %v", f, gi, err, wi.Mode())
				}
			}
			// bob: 403 both ways, nothing written.
			r := a.cpAs(a.bob, filepath.Join(src, "run.sh"), tc.id+":"+tc.dir+"/bob.sh")
			if r.Code == 0 || !strings.Contains(r.Stderr, "HTTP 403") {
				t.Errorf("bob's cp into alice's task: want HTTP 403, got %s", r)
			}
			if r := a.cpAs(a.bob, tc.id+":"+tc.dir, filepath.Join(out, "bob")); r.Code == 0 || !strings.Contains(r.Stderr, "HTTP 403") {
				t.Errorf("bob's cp out of alice's task: want HTTP 403, got %s", r)
			}
			if _, err := os.Stat(filepath.Join(out, "bob")); err == nil {
				t.Errorf("bob's refused copy wrote %s", filepath.Join(out, "bob"))
			}
			if r := a.cpAs(a.alice, tc.id+":"+tc.dir+"/bob.sh", out); r.Code == 0 || !strings.Contains(r.Stderr, "HTTP 404") {
				t.Errorf("bob's refused copy left bob.sh in the task: %s", r)
			}
			// hostile archives: 400, nothing written
			for _, bad := range []struct {
				name string
				tar  []byte
			}{
				{"dotdot", tarOf(t, tar.Header{Name: "x/../../escaped", Typeflag: tar.TypeReg, Mode: 0o644, Size: 3})},
				{"absolute link", tarOf(t, tar.Header{Name: "escaped", Typeflag: tar.TypeSymlink, Linkname: "/etc/passwd", Mode: 0o777})},
			} {
				st, msg := putTar(t, a.c.Replica(0).API, a.alice, tc.id, tc.dir+"/sub", bad.tar)
				if st != http.StatusBadRequest {
					t.Errorf("%s archive: HTTP %d %s, want 400", bad.name, st, msg)
				}
			}
			if r := a.cpAs(a.alice, tc.id+":"+tc.dir+"/escaped", out); r.Code == 0 {
				t.Errorf("a refused archive wrote %s/escaped", tc.dir)
			}
			if r := a.cpAs(a.alice, tc.id+":escaped", out); r.Code == 0 {
				t.Errorf("a refused archive wrote escaped in the working directory")
			}
		})
	}
	// A native task's copies belong to its user; it cannot write where
	// that user may not.
	in := filepath.Join(a.workDir, "in", "run.sh")
	if uid, gid := ownerOf(t, in); uid != accessUnixUser || gid != accessUnixUser {
		t.Errorf("%s owned by %d:%d, want %d", in, uid, gid, accessUnixUser)
	}
	rootOnly := accessibleDir(t, "rootonly")
	r := a.cpAs(a.alice, filepath.Join(src, "run.sh"), nativeID+":"+rootOnly+"/x")
	if r.Code == 0 || !strings.Contains(r.Stderr, "HTTP 403") {
		t.Errorf("cp into a directory alice's user may not write: want HTTP 403, got %s", r)
	}
	if _, err := os.Stat(filepath.Join(rootOnly, "x")); err == nil {
		t.Errorf("the native copy wrote into a root-owned directory")
	}
	// The copies are in the audit log.
	a.c.Poll(accessTimeout, "copy sessions in the audit log", func() (bool, string) {
		seen := map[string]bool{}
		recs := auditOf(t, a.c, 0, "alice")
		for _, rec := range recs {
			seen[rec.Action] = true
		}
		return seen["cp-to"] && seen["cp-from"], fmt.Sprintf("records %+v", recs)
	})
}

// tarOf is a tar stream of one entry h (a regular file's content is
// h.Size bytes of 'x').
func tarOf(t *testing.T, h tar.Header) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	if err := tw.WriteHeader(&h); err != nil {
		t.Fatal(err)
	}
	if h.Typeflag == tar.TypeReg {
		tw.Write(bytes.Repeat([]byte("x"), int(h.Size)))
	}
	tw.Close()
	return b.Bytes()
}

// putTar sends body as a copy into task id at path, as bearer.
func putTar(t *testing.T, base, bearer, id, path string, body []byte) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), accessTimeout)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPut, base+"/api/task/"+id+"/files?path="+path, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+bearer)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("PUT files: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strconv.Quote(string(b))
}

// TestForwardAndCopyReachAVPS: a VPS runs on a bridge network, so the
// runner dials its container's own address: forwarding its port 22
// through a follower gives sshd's banner; a 0600 file copied into root's
// home comes back with its mode.
func TestForwardAndCopyReachAVPS(t *testing.T) {
	a := startAccessClusterWith(t, sshdImage)
	c := a.c
	key := filepath.Join(t.TempDir(), "vps_ed25519")
	f := c.Followers()[0]
	r := c.CLIVia([]int{f}, vpsStartTimeout, "", "--token", a.alice, "-o", "json", "vps", "create", "--wait", "--poll-interval", "200ms",
		"--container", a.env, "--cores", "1", "--target", a.runner, "--gen-ssh-key", "--key-out", key)
	if r.Code != 0 {
		t.Fatalf("vps create: %s", r)
	}
	var vps vpsCreated
	if err := r.Decode(&vps); err != nil || vps.Task == nil || vps.Task.Status != "running" {
		t.Fatalf("vps create --wait: %s (%v)", r.Stdout, err)
	}
	t.Cleanup(func() {
		c.CLI("vps", "stop", vps.TaskID)
		harness.RemoveContainers(t, "hakuriver-vps-"+vps.TaskID)
	})
	_, fw := a.startForward(t, []int{f}, vps.TaskID, "0:22")
	var banner string
	err := harness.Eventually(accessTimeout, func() (bool, string) {
		conn, err := net.DialTimeout("tcp", strings.TrimPrefix(fw.Forwards[0].URL, "http://"), 10*time.Second)
		if err != nil {
			return false, err.Error()
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		banner, err = bufio.NewReader(conn).ReadString('\n')
		return strings.HasPrefix(banner, "SSH-2.0-"), fmt.Sprintf("banner %q, %v", banner, err)
	})
	if err != nil {
		t.Fatalf("sshd through the forward: %v", err)
	}
	src := copyTree(t)
	if r := a.cpAs(a.alice, filepath.Join(src, "secret"), vps.TaskID+":/root/secret"); r.Code != 0 {
		t.Fatalf("cp into the VPS: %s", r)
	}
	out := accessibleDir(t, "vpsout")
	if r := a.cpAs(a.alice, vps.TaskID+":/root/secret", filepath.Join(out, "back")); r.Code != 0 {
		t.Fatalf("cp out of the VPS: %s", r)
	}
	if fi, err := os.Stat(filepath.Join(out, "back")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("back: %v %v, want mode 0600", fi, err)
	}
	if r := a.cpAs(a.bob, vps.TaskID+":/root/secret", filepath.Join(out, "bob")); r.Code == 0 || !strings.Contains(r.Stderr, "HTTP 403") {
		t.Errorf("bob's cp out of alice's VPS: want HTTP 403, got %s", r)
	}
}
