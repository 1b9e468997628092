//go:build integration

package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/hakuriver/hakuriver-ha/integration/harness"
)

// backupResult is the outcome of the snapshot section.
type backupResult struct {
	tasks   int
	fill    load
	applied uint64
	saves   []cliRun // through the leader, through a follower
	size    int64
	// leaderRSS is the leader's RSS before the saves and the most seen
	// while they ran.
	leaderRSSBefore, leaderRSSMax int64
	inspect                       cliRun
	restore                       cliRun
	// restoredUp is how long StartCluster took on the restored file
	// (restore again, start, leader elected, admin token accepted).
	restoredUp    time.Duration
	restoredTasks int
	err           string
}

// cliRun is one timed CLI run.
type cliRun struct {
	what    string
	elapsed time.Duration
	maxRSS  int64
	out     string
}

// backupSection fills a 3-replica cluster with s.tasks tasks, saves a
// snapshot through the leader and through a follower, inspects it,
// restores it into a fresh data dir, and starts a one-replica cluster on
// it.
func backupSection(parent *scope, bin string, s settings) backupResult {
	sc := parent.child("snapshot")
	defer sc.close()
	c := startBenchCluster(sc, bin)
	leader := c.WaitLeader(harness.LeaderTimeout)
	res := backupResult{tasks: s.tasks}
	res.fill = submitLoad(c, leader, 16, 30*time.Minute, s.tasks, "fill")
	if res.fill.ok != s.tasks {
		sc.Fatalf("fill: %d of %d submits acknowledged; first error: %s", res.fill.ok, s.tasks, res.fill.firstErr)
	}
	res.applied = c.WaitSameApplied(5*time.Minute, 0, 1, 2)
	follower := c.Followers()[0]
	dir := sc.TempDir()
	env := c.CLIEnv()

	res.leaderRSSBefore, _ = c.RSS(leader) //nolint:errcheck // 0 is printed as such
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			if r, err := c.RSS(leader); err == nil && r > res.leaderRSSMax {
				res.leaderRSSMax = r
			}
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	var file string
	for _, via := range []struct {
		what string
		i    int
	}{{"save via leader", leader}, {"save via follower", follower}} {
		file = filepath.Join(dir, fmt.Sprintf("r%d.snap", via.i))
		run, err := timedCLI(bin, env, "--host", c.HostFlag(via.i), "cluster", "snapshot", "save", file)
		run.what = via.what
		if err != nil {
			res.err = err.Error()
			break
		}
		res.saves = append(res.saves, run)
	}
	close(stop)
	wg.Wait()
	if res.err != "" {
		return res
	}
	if st, err := os.Stat(file); err == nil {
		res.size = st.Size()
	}
	var err error
	if res.inspect, err = timedCLI(bin, nil, "cluster", "snapshot", "inspect", file); err != nil {
		res.err = err.Error()
		return res
	}
	res.inspect.what = "inspect (checksum + decode)"
	res.restore, err = timedCLI(bin, nil, "cluster", "snapshot", "restore", file, "--data-dir", filepath.Join(dir, "restored"),
		"--node-id", "r1", "--bind", "127.0.0.1", "--raft-port", "18999")
	if err != nil {
		res.err = err.Error()
		return res
	}
	res.restore.what = "restore into a new data dir"

	rs := sc.child("restored")
	defer rs.close()
	start := time.Now()
	b := harness.StartCluster(rs, harness.Options{Bin: bin, Replicas: 1, LogLevel: "warn", RestoreFrom: file,
		AdminToken: c.AdminToken(), Token: c.Token()})
	res.restoredUp = time.Since(start)
	tasks, err := b.AllTasks(0)
	if err != nil {
		res.err = err.Error()
		return res
	}
	res.restoredTasks = len(tasks)
	return res
}

// timedCLI runs the hakuriver CLI to its end (bounded by 30 minutes) and
// returns its wall time and peak RSS.
func timedCLI(bin string, env []string, args ...string) (cliRun, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return cliRun{}, err
	}
	timer := time.AfterFunc(30*time.Minute, func() { cmd.Process.Kill() }) //nolint:errcheck // best effort
	err := cmd.Wait()
	timer.Stop()
	run := cliRun{elapsed: time.Since(start), out: out.String()}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		run.maxRSS = ru.Maxrss << 10 // KiB on Linux
	}
	if err != nil {
		return run, fmt.Errorf("hakuriver %v: %w: %s", args, err, errOut.String())
	}
	return run, nil
}

func printBackup(out io.Writer, r backupResult) {
	fmt.Fprintf(out, "Snapshot save/restore at %d tasks (filled in %s, applied index %d; `hakuriver cluster snapshot`, 3 replicas)\n",
		r.tasks, r.fill.elapsed.Round(time.Millisecond), r.applied)
	if r.err != "" {
		fmt.Fprintf(out, "error: %s\n", r.err)
	}
	tw := table(out)
	fmt.Fprintln(tw, "step\tms\tCLI peak RSS MiB\t")
	for _, run := range append(append([]cliRun(nil), r.saves...), r.inspect, r.restore) {
		if run.what != "" {
			fmt.Fprintf(tw, "%s\t%s\t%s\t\n", run.what, ms(run.elapsed), mib(run.maxRSS))
		}
	}
	fmt.Fprintf(tw, "start a 1-replica cluster on the file (restore, start, leader, token)\t%s\t-\t\n", ms(r.restoredUp))
	tw.Flush() //nolint:errcheck // stdout
	fmt.Fprintf(out, "file %s MiB (%.0f bytes/task); leader RSS %s MiB before the saves, at most %s MiB during them; restored cluster serves %d tasks\n",
		mib(r.size), float64(r.size)/float64(max(r.tasks, 1)), mib(r.leaderRSSBefore), mib(r.leaderRSSMax), r.restoredTasks)
}
