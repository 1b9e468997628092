//go:build integration

package integration

import (
	"os"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/integration/harness"
)

// TestHangupWithoutLogFile sends SIGHUP, as the README's logrotate recipe
// does to both services, to a replica and a runner that log to standard
// error: each logs it and goes on (a replica or runner that stopped on it
// would stay down under systemd's Restart=on-failure), and a task still
// runs to completion.
func TestHangupWithoutLogFile(t *testing.T) {
	if signal.Ignored(syscall.SIGHUP) {
		t.Log("SIGHUP is ignored here (nohup), and so in the processes started: this run checks the log lines only")
	}
	c := startCluster(t, harness.Options{Replicas: 1, HeartbeatInterval: hbInterval, HeartbeatTimeoutFactor: hbFactor})
	r := c.StartRunner("hup-r1", twoCores)
	c.WaitNodeStatus("hup-r1", "online", 30*time.Second)
	for name, pid := range map[string]int{"replica": c.Replica(0).PID(), "runner": r.PID()} {
		if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
			t.Fatalf("SIGHUP to the %s: %v", name, err)
		}
	}
	const said = "SIGHUP ignored: there is no log file to reopen"
	for name, path := range map[string]string{"replica": c.Replica(0).LogPath(), "runner": r.LogPath()} {
		c.Poll(10*time.Second, "the "+name+" logs the SIGHUP", func() (bool, string) {
			b, _ := os.ReadFile(path)
			return strings.Contains(string(b), said), tailOf(string(b))
		})
	}
	id := submitOne(t, c, 0, native("true"))
	if tk := c.WaitFinal(id, taskTimeout); tk.Status != "completed" {
		t.Fatalf("task after the SIGHUPs: %+v", tk)
	}
	for name, pid := range map[string]int{"replica": c.Replica(0).PID(), "runner": r.PID()} {
		if st, err := harness.ReadProcStat(pid); err != nil || st.State == 'Z' {
			t.Fatalf("the %s did not survive SIGHUP: %+v, %v", name, st, err)
		}
	}
}

// tailOf is the last few lines of a log, for a failure message.
func tailOf(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-5):], "\n")
}
