package cluster

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"golang.org/x/crypto/ssh"

	"github.com/hakuriver/hakuriver-ha/fsm"
	"github.com/hakuriver/hakuriver-ha/sshproxy"
	"github.com/hakuriver/hakuriver-ha/sshproxy/sshtest"
)

// sshEcho sends msg through conn and expects it back.
func sshEcho(t *testing.T, conn net.Conn, msg string) {
	t.Helper()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, msg); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(conn, got); err != nil || string(got) != msg {
		t.Fatalf("echo = %q, %v; want %q", got, err, msg)
	}
}

// TestSSHProxy_ThroughFollower commits a running VPS (and a command task)
// on a 3-replica cluster and reaches the VPS through a follower's proxy with
// the line protocol and the jump host.
func TestSSHProxy_ThroughFollower(t *testing.T) {
	hosts := startCluster(t, 3)
	var leader, follower *Host
	for _, h := range hosts {
		if h.IsLeader() {
			leader = h
		} else if follower == nil {
			follower = h
		}
	}
	owner, other := sshtest.NewKey(t).Signer, sshtest.NewKey(t).Signer
	port := sshtest.EchoServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	applyOnLeader(t, hosts, &fsm.RegisterNode{Node: &fsm.Node{Hostname: "n1", URL: "http://127.0.0.1:8001", TotalCores: 4}, At: time.Now()})
	const vpsID, cmdID, unknownID = 101, 102, 999
	key := string(ssh.MarshalAuthorizedKey(owner.PublicKey()))
	leader = applyOnLeader(t, hosts, &fsm.SubmitTasks{RequestID: "vps-fixture", Tasks: []*fsm.Task{
		{TaskID: vpsID, TaskType: fsm.TaskVPS, Status: fsm.StatusRunning, AssignedNode: "n1", SSHPort: port, Command: key, RequiredCores: 1},
		{TaskID: cmdID, TaskType: fsm.TaskCommand, Status: fsm.StatusRunning, AssignedNode: "n1", Command: "sleep", RequiredCores: 1},
	}})
	deadline := time.Now().Add(10 * time.Second)
	for _, ok := follower.machine.Task(cmdID); !ok; _, ok = follower.machine.Task(cmdID) {
		if time.Now().After(deadline) {
			t.Fatal("the follower never applied the tasks")
		}
		time.Sleep(20 * time.Millisecond)
	}

	t.Run("LineProtocol", func(t *testing.T) {
		conn, err := sshproxy.DialTunnel(ctx, follower.SSHProxyAddr(), vpsID, 5*time.Second)
		if err != nil {
			t.Fatalf("tunnel through follower: %v", err)
		}
		defer conn.Close()
		sshEcho(t, conn, "hello vps\n")
		for id, want := range map[int64]string{unknownID: "Task 999 not found.", cmdID: "Task 102 is not a VPS task."} {
			_, err := sshproxy.DialTunnel(ctx, follower.SSHProxyAddr(), id, 5*time.Second)
			var te *sshproxy.TunnelError
			if !errors.As(err, &te) || te.Reason != want {
				t.Errorf("tunnel to %d = %v, want ERROR %s", id, err, want)
			}
		}
	})

	t.Run("JumpHost", func(t *testing.T) {
		hostKey, err := os.ReadFile(filepath.Join(follower.cfg.DataDir, sshproxy.HostKeyFile))
		if err != nil || !strings.Contains(string(hostKey), "OPENSSH PRIVATE KEY") {
			t.Fatalf("host key file: %v", err)
		}
		dial := func(s ssh.Signer) *ssh.Client {
			c, err := ssh.Dial("tcp", follower.SSHProxyAddr(), &ssh.ClientConfig{User: "proxy",
				Auth: []ssh.AuthMethod{ssh.PublicKeys(s)}, HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: 5 * time.Second})
			if err != nil {
				t.Fatalf("jump host: %v", err)
			}
			t.Cleanup(func() { c.Close() })
			return c
		}
		conn, err := dial(owner).Dial("tcp", "101:22")
		if err != nil {
			t.Fatalf("direct-tcpip with the VPS key: %v", err)
		}
		defer conn.Close()
		sshEcho(t, conn, "through the jump host\n")
		if _, err := dial(other).Dial("tcp", "101:22"); err == nil || !strings.Contains(err.Error(), "prohibited") {
			t.Fatalf("direct-tcpip with another key = %v", err)
		}
	})

	t.Run("LeaderFallback", func(t *testing.T) {
		r := sshResolver{h: follower}
		if _, err := r.Lookup(ctx, unknownID); !errors.Is(err, sshproxy.ErrTaskNotFound) {
			t.Fatalf("lookup of an unknown task = %v", err)
		}
		got, err := follower.leaderSSHTarget(ctx, vpsID)
		if err != nil {
			t.Fatalf("leader lookup: %v", err)
		}
		if addr, err := got.Address(); err != nil || addr != net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) {
			t.Fatalf("leader target address = %q, %v", addr, err)
		}
	})

	// The resolver never calls its own replica's API: the leader reads its
	// state in process, a follower asks the leader directly.
	t.Run("NoCallToItsOwnAPI", func(t *testing.T) {
		for _, h := range []*Host{leader, follower} {
			before := statusReads(h)
			if _, err := (sshResolver{h: h}).Lookup(ctx, unknownID); !errors.Is(err, sshproxy.ErrTaskNotFound) {
				t.Fatalf("lookup of an unknown task on %s = %v", h.cfg.NodeID, err)
			}
			got, err := h.leaderSSHTarget(ctx, vpsID)
			if err != nil || got.Task == nil || got.Task.TaskID != vpsID || got.Node == nil || got.Node.Hostname != "n1" {
				t.Fatalf("leader lookup on %s = %+v, %v", h.cfg.NodeID, got, err)
			}
			if n := statusReads(h) - before; n != 0 {
				t.Errorf("%s served %v status reads to its own SSH resolver", h.cfg.NodeID, n)
			}
		}
	})
}

// statusReads counts the GET /api/status/{id} answers h's API served.
func statusReads(h *Host) float64 {
	var n float64
	for _, route := range []string{"/api/status/{id}", "/status/{id}"} {
		for _, code := range []string{"200", "404", "503"} {
			var m dto.Metric
			if err := h.metrics.requests.WithLabelValues(route, "GET", code).Write(&m); err == nil {
				n += m.GetCounter().GetValue()
			}
		}
	}
	return n
}
