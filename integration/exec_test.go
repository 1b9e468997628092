//go:build integration

package integration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/gorilla/websocket"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/fsm"
	"github.com/hakuriver/hakuriver-ha/integration/harness"
)

// Bounds of the exec tests.
const (
	// execTimeout bounds one non-interactive exec.
	execTimeout = 30 * time.Second
	// expectTimeout bounds the wait for one expected piece of terminal
	// output; far below the 100 s sleep that Ctrl-C must interrupt.
	expectTimeout = 20 * time.Second
)

// execOut runs `hakuriver task exec` through replicas idxs and returns
// its result.
func execOut(c *harness.Cluster, idxs []int, id string, command ...string) harness.CLIResult {
	return c.CLIVia(idxs, execTimeout, "", append([]string{"task", "exec", id, "--"}, command...)...)
}

// checkSeparated runs a command that writes to both streams and exits 3:
// the CLI exits 3 with each stream on its own side.
func checkSeparated(t *testing.T, c *harness.Cluster, idxs []int, id string) {
	t.Helper()
	r := execOut(c, idxs, id, "sh", "-c", "echo to-out; echo to-err >&2; exit 3")
	if r.Code != 3 || r.Stdout != "to-out\n" || r.Stderr != "to-err\n" {
		t.Fatalf("exec: want exit 3, stdout %q, stderr %q; got %s", "to-out\n", "to-err\n", r)
	}
}

// ptySession is the real `hakuriver` CLI running on the slave side of a
// pseudo-terminal that the test drives from its master side.
type ptySession struct {
	f    *os.File
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  bytes.Buffer
	seen int // expect searches from here
	done chan struct{}
	err  error
}

// startPTY runs the CLI with args through replicas idxs on a terminal of
// rows×cols.
func startPTY(t *testing.T, c *harness.Cluster, idxs []int, rows, cols uint16, args ...string) *ptySession {
	t.Helper()
	cmd := exec.Command(c.Bin(), append([]string{"--host", c.HostFlag(idxs...)}, args...)...)
	cmd.Env = append(os.Environ(), c.CLIEnv()...)
	f, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: rows, Cols: cols})
	if err != nil {
		t.Fatalf("start %v on a pty: %v", args, err)
	}
	s := &ptySession{f: f, cmd: cmd, done: make(chan struct{})}
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := f.Read(buf)
			s.mu.Lock()
			s.out.Write(buf[:n])
			s.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	go func() { s.err = cmd.Wait(); close(s.done) }()
	t.Cleanup(func() {
		select {
		case <-s.done:
		default:
			cmd.Process.Kill() //nolint:errcheck // a failed test's session
			<-s.done
		}
		f.Close()
	})
	return s
}

func (s *ptySession) send(t *testing.T, keys string) {
	t.Helper()
	if _, err := s.f.WriteString(keys); err != nil {
		t.Fatalf("type %q: %v", keys, err)
	}
}

// expect waits for want in the output after the previous match.
func (s *ptySession) expect(t *testing.T, want string) {
	t.Helper()
	deadline := time.Now().Add(expectTimeout)
	for {
		s.mu.Lock()
		all := s.out.String()
		i := strings.Index(all[s.seen:], want)
		if i >= 0 {
			s.seen += i + len(want)
		}
		s.mu.Unlock()
		if i >= 0 {
			return
		}
		select {
		case <-s.done:
			t.Fatalf("the session ended (%v) without printing %q; it printed %q", s.err, want, all)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %q within %s; the terminal shows %q", want, expectTimeout, all)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// exitCode waits for the CLI to end and returns its exit code.
func (s *ptySession) exitCode(t *testing.T) int {
	t.Helper()
	select {
	case <-s.done:
	case <-time.After(expectTimeout):
		t.Fatalf("the session did not end; the terminal shows %q", s.out.String())
	}
	var ee *exec.ExitError
	if errors.As(s.err, &ee) {
		return ee.ExitCode()
	}
	if s.err != nil {
		t.Fatalf("session: %v", s.err)
	}
	return 0
}

// checkInteractive drives `hakuriver connect id` through replicas idxs: the
// terminal size, a resize, Ctrl-C of a sleep, and the exit code of exit 7.
func checkInteractive(t *testing.T, c *harness.Cluster, idxs []int, id string) {
	s := startPTY(t, c, idxs, 24, 80, "connect", id)
	s.send(t, "stty size\r")
	s.expect(t, "24 80\r\n")
	if err := pty.Setsize(s.f, &pty.Winsize{Rows: 40, Cols: 100}); err != nil {
		t.Fatal(err)
	}
	// The resize travels as a control frame, asynchronously: ask until
	// the command sees it, a bounded number of times.
	deadline := time.Now().Add(expectTimeout)
	for {
		s.send(t, "stty size\r")
		s.expect(t, "stty size\r\n")
		s.send(t, "echo mar''k\r")
		s.expect(t, "mark\r\n")
		s.mu.Lock()
		got := s.out.String()[:s.seen]
		s.mu.Unlock()
		if strings.Contains(got, "40 100\r\n") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the command never saw the resize to 40x100; terminal: %q", got)
		}
	}
	// Quotes split the marker in the typed (echoed) line, so only the
	// command's output matches. The marker and the sleep are one process
	// (exec), so once the marker shows, the sleep is the terminal's
	// foreground: Ctrl-C cannot land between them.
	s.send(t, "sh -c 'echo slee\"\"ping; exec sleep 100'\r")
	s.expect(t, "sleeping\r\n")
	s.send(t, "\x03")
	s.send(t, "echo interrup''ted-$((6*7))\r")
	s.expect(t, "interrupted-42\r\n")
	s.send(t, "exit 7\r")
	if code := s.exitCode(t); code != 7 {
		t.Fatalf("connect after exit 7: exit code %d; terminal: %q", code, s.out.String())
	}
}

// dialExecAs opens the exec WebSocket of task id on replica i with bearer
// (none when "") and origin (none when ""), and returns the handshake's
// HTTP status (101 once upgraded).
func dialExecAs(t *testing.T, c *harness.Cluster, i int, id, bearer, origin string) int {
	t.Helper()
	code, _ := dialExec(t, c, i, id, "cmd=true", bearer, origin)
	return code
}

// dialExec is dialExecAs with the upgrade's query; it also returns the
// body of a refusal.
func dialExec(t *testing.T, c *harness.Cluster, i int, id, query, bearer, origin string) (int, string) {
	t.Helper()
	hdr := http.Header{}
	if bearer != "" {
		hdr.Set("Authorization", "Bearer "+bearer)
	}
	if origin != "" {
		hdr.Set("Origin", origin)
	}
	u := "ws" + strings.TrimPrefix(c.Replica(i).API, "http") + "/api/task/" + id + "/exec?" + query
	ctx, cancel := context.WithTimeout(context.Background(), execTimeout)
	defer cancel()
	conn, resp, err := websocket.DefaultDialer.DialContext(ctx, u, hdr)
	if err == nil {
		conn.Close()
		return http.StatusSwitchingProtocols, ""
	}
	if resp == nil {
		t.Fatalf("dial %s: %v", u, err)
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10)) //nolint:errcheck // the status is the answer
	resp.Body.Close()
	if !errors.Is(err, websocket.ErrBadHandshake) {
		t.Fatalf("dial %s: %v", u, err)
	}
	return resp.StatusCode, string(body)
}

// waitAudit waits until replica i's audit log holds a record of user with
// action on target prefix, and returns it.
func waitAudit(t *testing.T, c *harness.Cluster, i int, user, action, target string) fsm.AuditRecord {
	t.Helper()
	var found fsm.AuditRecord
	c.Poll(harness.LeaderTimeout, "audit record "+action+" "+target, func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), harness.WriteTimeout)
		defer cancel()
		a, err := c.CallAs(ctx, i, http.MethodGet, "/api/audit?limit=1000&user="+user, c.AdminToken(), nil)
		var page api.AuditPage
		if err != nil || a.Status != http.StatusOK || a.Decode(&page) != nil {
			return false, fmt.Sprintf("audit: %v %s", err, a)
		}
		for _, r := range page.Records {
			if r.Action == action && strings.HasPrefix(r.Target, target) {
				found = r
				return true, ""
			}
		}
		return false, fmt.Sprintf("%d records of %s, none %s %s", len(page.Records), user, action, target)
	})
	return found
}

// TestExecNative runs commands inside a native task through the replicas:
// separate streams and the exit code through a follower, as the task's
// user in its cgroup, a full interactive terminal, the owner and origin
// checks before the upgrade, audit records, and a session that outlives
// the leader.
func TestExecNative(t *testing.T) {
	c := startWithRunners(t, runnerSpec{"ex1", twoCores})
	f := c.Followers()
	// carol's tasks run as uid 4242 (no passwd entry); the admin execs
	// into them as an operator may.
	carol := createRunAsAccount(t, c, api.UserRequest{Name: "carol", Role: fsm.RoleUser, UnixUser: "4242:4242"})
	req := inRoot(native("sleep", "600"))
	req.EnvVars = map[string]string{"HKT_EXEC_VAR": "from-the-task"}
	req.Name = "exec-target"
	id := submitAs(t, c, carol, req)
	killOnFailure(t, c, id)
	t.Cleanup(func() { c.CLI("task", "kill", id) })
	c.WaitStatus(id, "running", taskTimeout)

	t.Run("StreamsAndExitCodeThroughFollower", func(t *testing.T) {
		checkSeparated(t, c.For(t), f[:1], id)
		// As the task runs: its user, its working directory and
		// environment, its cgroup.
		r := execOut(c, f[:1], id, "sh", "-c", `id -u; pwd; echo "$HKT_EXEC_VAR"; grep -c "/task-`+id+`$" /proc/self/cgroup`)
		lines := strings.Split(strings.TrimSpace(r.Stdout), "\n")
		if r.Code != 0 || len(lines) != 4 {
			t.Fatalf("exec of the identity probe: %s", r)
		}
		if lines[0] != "4242" || lines[1] != "/" || lines[2] != "from-the-task" || lines[3] == "0" {
			t.Fatalf("exec ran as uid %s in %s with HKT_EXEC_VAR=%q in %s cgroups of the task; want the task's 4242, /, from-the-task, >0",
				lines[0], lines[1], lines[2], lines[3])
		}
		// By the task's name, as everywhere an ID is taken.
		if r := execOut(c, f[:1], "exec-target", "sh", "-c", "exit 5"); r.Code != 5 {
			t.Fatalf("exec by task name: want exit 5, got %s", r)
		}
		end := waitAudit(t, c, f[0], "admin", "exec_end", "task "+id)
		start := waitAudit(t, c, f[0], "admin", "exec_start", "task "+id)
		if start.Seq >= end.Seq || start.Via != c.Replica(f[0]).ID || !strings.Contains(end.Target, " after ") || !strings.HasSuffix(end.Target, "s") {
			t.Errorf("audit records of the first session: start %+v, end %+v; want the start first, both via %s, the end with its duration",
				start, end, c.Replica(f[0]).ID)
		}
	})
	t.Run("Interactive", func(t *testing.T) { checkInteractive(t, c.For(t), f[:1], id) })
	t.Run("ScriptIntoConnect", func(t *testing.T) {
		// Standard input that is not a terminal: the session is not raw,
		// and the end of the script ends the shell (Ctrl-D).
		r := c.CLIVia(f[1:2], execTimeout, "echo pi''ped-$((6*7))\n", "connect", id)
		if r.Code != 0 || !strings.Contains(r.Stdout, "piped-42") {
			t.Fatalf("a script piped into connect: want its output and exit 0, got %s", r)
		}
		r = c.CLIVia(f[1:2], execTimeout, "exit 3\n", "connect", id)
		if r.Code != 3 {
			t.Fatalf("exit 3 piped into connect: %s", r)
		}
	})
	t.Run("OwnerOriginAnonymous", func(t *testing.T) {
		alice := createRunAsAccount(t, c, api.UserRequest{Name: "alice", Role: fsm.RoleUser})
		bob := createRunAsAccount(t, c, api.UserRequest{Name: "bob", Role: fsm.RoleUser})
		mine := submitAs(t, c, alice, inRoot(native("sleep", "600")))
		killOnFailure(t, c, mine)
		t.Cleanup(func() { c.CLI("task", "kill", mine) })
		c.WaitStatus(mine, "running", taskTimeout)
		for _, i := range []int{f[0], f[1]} {
			if got := dialExecAs(t, c, i, mine, bob, ""); got != http.StatusForbidden {
				t.Errorf("bob's exec into alice's task on %s: HTTP %d, want 403 before any upgrade", c.Replica(i).ID, got)
			}
			if got := dialExecAs(t, c, i, mine, "", ""); got != http.StatusUnauthorized {
				t.Errorf("anonymous exec on %s: HTTP %d, want 401", c.Replica(i).ID, got)
			}
			if got := dialExecAs(t, c, i, mine, alice, "http://evil.example"); got != http.StatusForbidden {
				t.Errorf("cross-origin exec on %s: HTTP %d, want 403", c.Replica(i).ID, got)
			}
		}
		if got := dialExecAs(t, c, f[0], mine, alice, ""); got != http.StatusSwitchingProtocols {
			t.Fatalf("alice's exec into her own task: HTTP %d, want an upgrade", got)
		}
		r := harness.RunCLI(context.Background(), harness.CLICommand{Bin: c.Bin(), Timeout: execTimeout,
			Args: []string{"--host", c.HostFlag(f[0]), "--token", bob, "task", "exec", mine, "--", "true"}, Env: c.CLIEnv()})
		if r.Code == 0 || !strings.Contains(r.Stderr, "HTTP 403") {
			t.Fatalf("bob's CLI exec into alice's task: want HTTP 403, got %s", r)
		}
		waitAudit(t, c, f[1], "alice", "exec_end", "task "+mine)
	})
	t.Run("BadInput", func(t *testing.T) {
		for _, q := range []struct{ query, field string }{{"tty=maybe", "tty"}, {"rows=-3", "rows"}, {"cmd=", "cmd[0]"}} {
			if code, body := dialExec(t, c, f[1], id, q.query, c.AdminToken(), ""); code != http.StatusBadRequest || !strings.Contains(body, q.field+":") {
				t.Errorf("exec with ?%s: HTTP %d %s, want 400 naming %s", q.query, code, body, q.field)
			}
		}
		if code, body := dialExec(t, c, f[1], "123", "cmd=true", c.AdminToken(), ""); code != http.StatusNotFound {
			t.Errorf("exec into an unknown task: HTTP %d %s, want 404", code, body)
		}
		done := submitOne(t, c, f[1], inRoot(native("true")))
		c.WaitFinal(done, taskTimeout)
		if code, body := dialExec(t, c, f[1], done, "cmd=true", c.AdminToken(), ""); code != http.StatusConflict || !strings.Contains(body, "not running") {
			t.Errorf("exec into a finished task: HTTP %d %s, want 409 not running", code, body)
		}
	})
	t.Run("KillLeaderDuringSession", func(t *testing.T) {
		leader := c.WaitLeader(harness.LeaderTimeout)
		via := c.Followers()[0]
		s := startPTY(t, c.For(t), []int{via}, 24, 80, "connect", id)
		s.send(t, "echo befo''re\r")
		s.expect(t, "before\r\n")
		c.Kill(leader)
		s.send(t, "echo af''ter-kill\r")
		s.expect(t, "after-kill\r\n")
		s.send(t, "exit 7\r")
		if code := s.exitCode(t); code != 7 {
			t.Fatalf("exit code %d after the leader died, want 7", code)
		}
		c.WaitNewLeader(leader, harness.LeaderTimeout)
		rec := waitAudit(t, c, via, "admin", "exec_end", "task "+id+" (tty)")
		if rec.Via == "" {
			t.Errorf("audit record %+v names no replica", rec)
		}
		c.Restart(leader)
	})
	t.Run("KillTaskEndsSession", func(t *testing.T) {
		// The session's shell lives in the task's cgroup: killing the task
		// ends it (and the session), and nothing else: the runner, which
		// started it, runs on.
		s := startPTY(t, c.For(t), f[:1], 24, 80, "connect", id)
		s.send(t, "echo in''side\r")
		s.expect(t, "inside\r\n")
		runnerPID := c.Runner("ex1").PID()
		c.KillTask(f[0], id)
		if code := s.exitCode(t); code == 0 {
			t.Fatalf("the session of a killed task exited 0; terminal: %q", s.out.String())
		}
		c.WaitFinal(id, taskTimeout)
		if err := syscall.Kill(runnerPID, 0); err != nil {
			t.Fatalf("the runner (pid %d) after the kill of a task it exec'd into: %v", runnerPID, err)
		}
		if n := c.WaitNodeStatus("ex1", "online", hbTimeout*3); n.Status != "online" {
			t.Fatalf("runner ex1 is %s", n.Status)
		}
	})
}

// TestExecDocker runs commands inside a container task: separate streams,
// the exit code and a full interactive terminal (docker exec); and in a
// VPS, without its sshd.
func TestExecDocker(t *testing.T) {
	requireDocker(t, busyboxImage, sshdImage)
	c, runner := startDockerSingle(t, "hkt-exec")
	env := envName("hkt-exec")
	createEnvironment(t, c, busyboxImage, env)
	createTar(t, c, env)
	id := submitOne(t, c, 0, api.SubmitRequest{Command: "sleep", Arguments: []string{"600"}, ContainerName: &env, Targets: []string{runner}})
	killOnFailure(t, c, id)
	t.Cleanup(func() { c.CLI("task", "kill", id) })
	c.WaitStatus(id, "running", dockerTaskTimeout)
	checkSeparated(t, c, nil, id)
	r := execOut(c, nil, id, "cat", "/proc/1/cmdline")
	if r.Code != 0 || !strings.HasPrefix(r.Stdout, "sleep\x00600") {
		t.Fatalf("exec into the container: want its pid 1 to be the task (sleep 600), got %s", r)
	}
	checkInteractive(t, c, nil, id)
	waitAudit(t, c, 0, "admin", "exec_end", "task "+id+" (tty)")

	t.Run("VPS", func(t *testing.T) {
		c := c.For(t)
		vpsEnv := envName("hkt-exec-vps")
		createEnvironment(t, c, sshdImage, vpsEnv)
		createTar(t, c, vpsEnv)
		r := c.CLIVia(nil, vpsStartTimeout, "", "-o", "json", "vps", "create", "--wait", "--poll-interval", "200ms",
			"--container", vpsEnv, "--cores", "1", "--gen-ssh-key", "--key-out", filepath.Join(t.TempDir(), "vps_ed25519"))
		var created vpsCreated
		if r.Code != 0 || r.Decode(&created) != nil || created.TaskID == "" {
			t.Fatalf("vps create: %s", r)
		}
		vps := created.TaskID
		t.Cleanup(func() {
			c.CLI("vps", "stop", vps)
			harness.RemoveContainers(t, "hakuriver-vps-"+vps)
		})
		checkSeparated(t, c, nil, vps)
		if r := execOut(c, nil, vps, "id", "-u"); r.Code != 0 || r.Stdout != "0\n" {
			t.Fatalf("exec into the VPS: want root (0), got %s", r)
		}
		checkInteractive(t, c, nil, vps)
	})
}

// TestExecOverTLS: with TLS, the client reaches a follower over wss:// and
// the follower the runner over wss:// with the cluster CA.
func TestExecOverTLS(t *testing.T) {
	c := startCluster(t, harness.Options{TLS: true, HeartbeatInterval: hbInterval, HeartbeatTimeoutFactor: hbFactor})
	if r := c.StartRunner("ext1", twoCores); !strings.HasPrefix(r.API, "https://") {
		t.Fatalf("runner API %s, want https", r.API)
	}
	f := c.Followers()
	id := submitOne(t, c, f[0], inRoot(native("sleep", "600")))
	killOnFailure(t, c, id)
	t.Cleanup(func() { c.CLI("task", "kill", id) })
	c.WaitStatus(id, "running", taskTimeout)
	checkSeparated(t, c, f[:1], id)
	checkInteractive(t, c, f[1:2], id)
}
