//go:build integration

package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/fsm"
)

// devRun is one running `hakuriver dev` process.
type devRun struct {
	cmd  *exec.Cmd
	dir  string
	host string
	c    *api.Client
	out  *syncLines
	done chan struct{}
}

// syncLines collects a process's output lines.
type syncLines struct {
	ch    chan string
	lines []string
}

// startDevProc starts `hakuriver dev --data-dir dir args...` and waits for
// its export line.
func startDevProc(t *testing.T, dir string, args ...string) *devRun {
	t.Helper()
	cmd := exec.Command(hostBin, append([]string{"dev", "--data-dir", dir}, args...)...)
	logf, err := os.OpenFile(filepath.Join(t.TempDir(), "dev.log"), os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = logf
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	// dev in its own process group, and dead with the test.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d := &devRun{cmd: cmd, dir: dir, out: &syncLines{ch: make(chan string, 100)}, done: make(chan struct{})}
	go func() {
		defer close(d.done)
		defer logf.Close()
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			d.out.ch <- sc.Text()
		}
		io.Copy(io.Discard, stdout) //nolint:errcheck // draining
		cmd.Wait()                  //nolint:errcheck // the exit status is checked by stop
		close(d.out.ch)
	}()
	t.Cleanup(func() {
		select {
		case <-d.done:
		default:
			cmd.Process.Signal(os.Interrupt) //nolint:errcheck // stopping
			select {
			case <-d.done:
			case <-time.After(60 * time.Second):
				cmd.Process.Kill() //nolint:errcheck // stopping
			}
		}
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("dev stdout:\n%s\ndev stderr (end):\n%s", strings.Join(d.out.lines, "\n"), tail(b, 4096))
		}
	})
	timeout := time.After(120 * time.Second)
	for {
		select {
		case line, ok := <-d.out.ch:
			if !ok {
				t.Fatalf("dev exited before its export line")
			}
			d.out.lines = append(d.out.lines, line)
			if m := exportLine.FindStringSubmatch(line); m != nil {
				d.host = m[1]
				cfg := api.DefaultClientConfig()
				cfg.Hosts = strings.Split(m[1], ",")
				cfg.Bearer = m[2]
				if d.c, err = api.NewClient(cfg); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(d.c.Close)
				if !strings.Contains(line, "HAKURIVER_DEV_DIR="+dir) {
					t.Errorf("export line without HAKURIVER_DEV_DIR: %s", line)
				}
				return d
			}
		case <-timeout:
			t.Fatal("dev printed no export line in 120s")
		}
	}
}

// stop sends SIGINT to dev and waits (bounded) for it to exit 0.
func (d *devRun) stop(t *testing.T) {
	t.Helper()
	if err := d.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case <-d.done:
	case <-time.After(90 * time.Second):
		t.Fatal("dev did not exit within 90s of SIGINT")
	}
	if !d.cmd.ProcessState.Success() {
		t.Fatalf("dev exited with %v", d.cmd.ProcessState)
	}
}

// devCLI runs `hakuriver dev <args> --data-dir dir` and returns its output.
func devCLI(t *testing.T, dir string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, hostBin, append(append([]string{"dev"}, args...), "--data-dir", dir)...).CombinedOutput()
	if err != nil {
		t.Fatalf("hakuriver dev %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// devStatus returns the running dev's state (`dev status -o json`).
func devStatus(t *testing.T, dir string) devStateJSON {
	t.Helper()
	var st devStateJSON
	if err := json.Unmarshal([]byte(devCLI(t, dir, "status", "-o", "json")), &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// devStateJSON is the part of dev.json the test reads.
type devStateJSON struct {
	PID     int `json:"pid"`
	Members []struct {
		Name   string `json:"name"`
		NodeID string `json:"node_id"`
		PID    int    `json:"pid"`
		State  string `json:"state"`
	} `json:"members"`
}

// procState returns a process's state letter (R, S, T, Z...), "" when it
// does not exist.
func procState(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && len(s) > i+2 {
		return s[i+2 : i+3]
	}
	return "?"
}

// assertNoProcess fails for each PID still alive (zombies count as gone)
// and for any process whose command line names dir.
func assertNoProcess(t *testing.T, dir string, pids map[string]int) {
	t.Helper()
	for what, pid := range pids {
		if st := procState(pid); st != "" && st != "Z" {
			b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
			t.Errorf("%s (pid %d, state %s) outlived dev: %q", what, pid, st, b)
		}
	}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline")); err == nil && strings.Contains(string(b), dir) {
			t.Errorf("pid %d outlived dev: %q", pid, strings.ReplaceAll(string(b), "\x00", " "))
		}
	}
}

// taskPIDs returns the native task's process and shim PIDs from the
// runner's state directory.
func taskPIDs(t *testing.T, dir, runner, id string) (task, shim int) {
	t.Helper()
	for _, f := range []struct {
		name string
		pid  *int
	}{{"task.json", &task}, {"shim.json", &shim}} {
		b, err := os.ReadFile(filepath.Join(dir, runner+"-state", "tasks", id, f.name))
		if err != nil {
			t.Fatal(err)
		}
		var rec struct {
			PID int `json:"pid"`
		}
		if err := json.Unmarshal(b, &rec); err != nil || rec.PID == 0 {
			t.Fatalf("%s of task %s: %v %s", f.name, id, err, b)
		}
		*f.pid = rec.PID
	}
	return task, shim
}

// submitNative submits a native task to dev-runner-1 and returns its ID.
func (d *devRun) submitNative(t *testing.T, command string, args ...string) string {
	t.Helper()
	null := "NULL"
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	resp, err := d.c.Submit(ctx, api.SubmitRequest{Command: command, Arguments: args, ContainerName: &null, Targets: []string{"dev-runner-1"}})
	if err != nil || len(resp.TaskIDs) != 1 {
		t.Fatalf("submit %s: %v %+v", command, err, resp)
	}
	return resp.TaskIDs[0]
}

// waitStatus waits (60s at most) until task id has status want.
func (d *devRun) waitStatus(t *testing.T, id string, want fsm.Status) fsm.Task {
	t.Helper()
	var last fsm.Task
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		task, err := d.c.Status(ctx, id)
		cancel()
		if err == nil {
			last = task
			if task.Status == want {
				return task
			}
		}
	}
	t.Fatalf("task %s: status %q, want %q", id, last.Status, want)
	return last
}

// waitRunnerOnline waits (60s at most) until dev-runner-1 is online.
func (d *devRun) waitRunnerOnline(t *testing.T) {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		nodes, err := d.c.Nodes(ctx)
		cancel()
		for _, n := range nodes {
			if err == nil && n.Hostname == "dev-runner-1" && n.Status == "online" {
				return
			}
		}
	}
	t.Fatal("dev-runner-1 not online in 60s")
}

var killedLine = regexp.MustCompile(`^(host-\d) \((dev-\d)\): killed`)

// TestDevProcesses runs `hakuriver dev --replicas 3 --runners 1` as real
// processes in a data dir that does not exist yet: the leader's process is
// killed and a new leader takes submits; the runner is paused and resumed
// by signal; SIGINT stops dev and leaves no process behind (every member,
// the task and its shim); dev started again on the same data dir (its
// ports kept) has every task and runs new ones; a second SIGINT again
// leaves nothing; a SIGKILLed dev takes its members with it.
func TestDevProcesses(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "missing", "data")
	d := startDevProc(t, dir, "--replicas", "3", "--runners", "1", "--api-port", fmt.Sprint(freeBase(t, 3)))
	d.waitRunnerOnline(t)
	long := d.submitNative(t, "sleep", "600")
	short := d.submitNative(t, "echo", "before")
	d.waitStatus(t, short, fsm.StatusCompleted)
	d.waitStatus(t, long, fsm.StatusRunning)
	taskPID, shimPID := taskPIDs(t, dir, "dev-runner-1", long)
	ids := []string{long, short}

	t.Run("kill leader", func(t *testing.T) {
		out := devCLI(t, dir, "kill", "leader")
		m := killedLine.FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("dev kill leader printed %q", out)
		}
		for _, mem := range devStatus(t, dir).Members {
			if mem.Name == m[1] && (mem.State != "killed" || mem.PID != 0) {
				t.Fatalf("after kill: %+v", mem)
			}
		}
		var newLeader string
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline) && (newLeader == "" || newLeader == m[2]); time.Sleep(200 * time.Millisecond) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			st, err := d.c.Cluster(ctx, false)
			cancel()
			if err == nil {
				newLeader = st.LeaderID
			}
		}
		if newLeader == "" || newLeader == m[2] {
			t.Fatalf("no new leader after killing %s (leader %q)", m[2], newLeader)
		}
		id := d.submitNative(t, "echo", "after the leader died")
		d.waitStatus(t, id, fsm.StatusCompleted)
		ids = append(ids, id)
		if out := devCLI(t, dir, "restart", m[1]); !strings.Contains(out, "running, pid") {
			t.Fatalf("dev restart %s printed %q", m[1], out)
		}
	})

	t.Run("unknown member", func(t *testing.T) {
		out, err := exec.Command(hostBin, "dev", "kill", "host-9", "--data-dir", dir).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "want one of host-1, host-2, host-3, runner-1, leader") {
			t.Fatalf("dev kill host-9: %v %s", err, out)
		}
	})

	t.Run("pause and resume the runner", func(t *testing.T) {
		devCLI(t, dir, "pause", "runner-1")
		var pid int
		for _, mem := range devStatus(t, dir).Members {
			if mem.Name == "runner-1" {
				pid = mem.PID
				if mem.State != "paused" {
					t.Errorf("runner-1 %s after pause", mem.State)
				}
			}
		}
		if st := procState(pid); st != "T" {
			t.Errorf("paused runner-1 (pid %d) in state %q, want T", pid, st)
		}
		devCLI(t, dir, "resume", "runner-1")
		if st := procState(pid); st == "T" || st == "" {
			t.Errorf("resumed runner-1 (pid %d) in state %q", pid, st)
		}
	})

	st := devStatus(t, dir)
	pids := map[string]int{"dev": st.PID, "task": taskPID, "shim": shimPID}
	for _, m := range st.Members {
		if m.PID == 0 {
			t.Fatalf("member %s not running before the stop: %+v", m.Name, m)
		}
		pids[m.Name] = m.PID
	}
	d.stop(t)
	assertNoProcess(t, dir, pids)

	d = startDevProc(t, dir, "--replicas", "3", "--runners", "1")
	for _, id := range ids {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		task, err := d.c.Status(ctx, id)
		cancel()
		if err != nil {
			t.Fatalf("task %s after the restart: %v", id, err)
		}
		if id != long && task.Status != fsm.StatusCompleted {
			t.Errorf("task %s: %s after the restart", id, task.Status)
		}
	}
	// The runner reports the task dev killed on its way out.
	d.waitStatus(t, long, fsm.StatusKilled)
	d.waitRunnerOnline(t)
	d.waitStatus(t, d.submitNative(t, "echo", "after the restart"), fsm.StatusCompleted)
	st = devStatus(t, dir)
	pids = map[string]int{"dev": st.PID}
	for _, m := range st.Members {
		pids[m.Name] = m.PID
	}
	d.stop(t)
	assertNoProcess(t, dir, pids)
	if out, err := exec.Command(hostBin, "dev", "status", "--data-dir", dir).CombinedOutput(); err == nil || !strings.Contains(string(out), "is not running") {
		t.Fatalf("dev status of a stopped dev: %v %s", err, out)
	}

	// A SIGKILLed dev takes its members with it (Pdeathsig).
	d = startDevProc(t, dir, "--replicas", "3", "--runners", "1")
	st = devStatus(t, dir)
	pids = map[string]int{}
	for _, m := range st.Members {
		pids[m.Name] = m.PID
	}
	d.cmd.Process.Kill() //nolint:errcheck // the point
	<-d.done
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		alive := 0
		for _, pid := range pids {
			if st := procState(pid); st != "" && st != "Z" {
				alive++
			}
		}
		if alive == 0 {
			break
		}
	}
	assertNoProcess(t, dir, pids)
}
