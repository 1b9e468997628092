//go:build integration

package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster/backup"
	"github.com/hakuriver/hakuriver-ha/fsm"
	"github.com/hakuriver/hakuriver-ha/integration/harness"
)

// historyKeep is the history_keep_tasks the history section's states and
// replicas use (the default).
const historyKeep = 50000

// historyRow is one size of the history section.
type historyRow struct {
	tasks, archived      int
	fill                 time.Duration
	archiveMiB           float64
	backupMiB            float64
	restoreStart         time.Duration
	rss, rssAnon, rssF   int64
	rssSaved             int64
	save                 time.Duration
	savedMiB             float64
	list50, list50p99    time.Duration
	deep50, deep50p99    time.Duration
	status, statusP99    time.Duration
	restoredTasks        int
	restoredMatchesState bool    // the saved snapshot counts every task
	submit16             float64 // submits/s, 16 clients, into this state
	submitErr            string
}

// historySection measures a host replica with sizes[i] finished tasks in
// its history: the state is built in process (an fsm.Machine with an
// archive, filled by entries as the leader would write them: submits, their
// ends, and ArchiveTasks beyond the newest historyKeep), written as a backup
// file, restored with `cluster snapshot restore` and served by one real
// replica (Raft on boltdb). Filling through HTTP would take an hour at 1M.
func historySection(parent *scope, bin string, sizes []int) []historyRow {
	var out []historyRow
	for _, n := range sizes {
		sc := parent.child(fmt.Sprintf("history-%d", n))
		out = append(out, historyAt(sc, bin, n))
		sc.close()
	}
	return out
}

func historyAt(sc *scope, bin string, n int) historyRow {
	row := historyRow{tasks: n}
	dir := sc.TempDir()
	file := filepath.Join(dir, "history.snap")
	start := time.Now()
	archived, archBytes, err := buildHistory(filepath.Join(dir, "fill"), file, n)
	if err != nil {
		sc.Fatalf("build a state of %d tasks: %v", n, err)
	}
	row.fill, row.archived, row.archiveMiB = time.Since(start), archived, float64(archBytes)/(1<<20)
	if st, err := os.Stat(file); err == nil {
		row.backupMiB = float64(st.Size()) / (1 << 20)
	}

	start = time.Now()
	c := harness.StartCluster(sc, harness.Options{Bin: bin, Replicas: 1, RestoreFrom: file, LogLevel: "warn", RestoreTimeout: 30 * time.Minute, StartTimeout: 10 * time.Minute,
		Args: []string{"--history-keep-tasks", strconv.Itoa(historyKeep)}})
	row.restoreStart = time.Since(start)
	c.WaitLeader(harness.LeaderTimeout)
	row.rss, row.rssAnon, row.rssF = rssOf(c.Replica(0).PID())

	row.list50, row.list50p99 = timeGets(c, 200, func(int) string { return "/api/tasks?limit=50" })
	row.deep50, row.deep50p99 = timeGets(c, 100, func(int) string {
		return "/api/tasks?limit=50&after=" + strconv.FormatInt(historyID(n/2), 10)
	})
	row.status, row.statusP99 = timeGets(c, 200, func(i int) string {
		return "/api/status/" + strconv.FormatInt(historyID(i*(n/200)), 10)
	})
	saved := filepath.Join(dir, "saved.snap")
	start = time.Now()
	r := c.CLI("-o", "json", "cluster", "snapshot", "save", saved)
	if r.Code != 0 {
		sc.Fatalf("snapshot save: %s", r)
	}
	row.save = time.Since(start)
	var info struct {
		Header backup.Header `json:"header"`
	}
	if err := r.Decode(&info); err == nil {
		row.restoredTasks = info.Header.Counts.TasksTotal
	}
	if st, err := os.Stat(saved); err == nil {
		row.savedMiB = float64(st.Size()) / (1 << 20)
	}
	row.rssSaved, _, _ = rssOf(c.Replica(0).PID())
	row.restoredMatchesState = row.restoredTasks == n
	// Last: the submits add tasks to the state measured above.
	l := submitLoad(c, 0, 16, 2*time.Second, 10000, "history")
	row.submit16, row.submitErr = l.perSecond(), l.firstErr
	return row
}

// historyID returns the task ID of the i-th task of buildHistory.
func historyID(i int) int64 { return int64(i+1) << 22 }

// buildHistory fills a Machine (archive in dir) with n finished tasks, as a
// leader with history_keep_tasks = historyKeep would have left it, and
// writes it to file in the backup format.
func buildHistory(dir, file string, n int) (archived int, archiveBytes int64, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return 0, 0, err
	}
	a, err := fsm.OpenArchive(filepath.Join(dir, "archive.db"))
	if err != nil {
		return 0, 0, err
	}
	m := fsm.NewWithArchive(a)
	defer m.Close()
	var idx uint64
	apply := func(c fsm.Command) error {
		data, err := fsm.Encode(c)
		if err != nil {
			return err
		}
		idx++
		if r := m.Apply(idx, data); r.Err != nil {
			return fmt.Errorf("entry %d (%s): %w", idx, c.Type(), r.Err)
		}
		return nil
	}
	if err := apply(&fsm.SetClusterID{ID: "benchhistory"}); err != nil {
		return 0, 0, err
	}
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	id := historyID
	const chunk = 1000
	archive := func() error {
		for {
			cands := m.ArchiveCandidates(time.Time{}, historyKeep, fsm.MaxArchiveBatch)
			if len(cands) == 0 {
				return nil
			}
			if err := apply(&fsm.ArchiveTasks{TaskIDs: cands, At: base}); err != nil {
				return err
			}
		}
	}
	for first := 0; first < n; first += chunk {
		sub := &fsm.SubmitTasks{}
		ends := &fsm.UpdateTasks{}
		for i := first; i < min(first+chunk, n); i++ {
			tid := id(i)
			ids := strconv.FormatInt(tid, 10)
			at := base.Add(time.Duration(i) * time.Millisecond)
			sub.Tasks = append(sub.Tasks, &fsm.Task{
				TaskID: tid, TaskType: fsm.TaskCommand, BatchID: id(i - i%10), Command: "python",
				Arguments: []string{"train.py", "--seed", strconv.Itoa(i)}, EnvVars: map[string]string{},
				RequiredCores: 1, Status: fsm.StatusPending, ContainerName: "NULL", Owner: "alice",
				StdoutPath: "/shared/task_outputs/" + ids + ".out", StderrPath: "/shared/task_errors/" + ids + ".err",
				SystemdUnitName: "hakuriver-task-" + ids + ".scope", SubmittedAt: at,
			})
			status, code := fsm.StatusCompleted, 0
			if i%50 == 7 {
				status, code = fsm.StatusFailed, 1
			}
			started, ended := at.Add(time.Second), at.Add(3*time.Second)
			ends.Updates = append(ends.Updates, fsm.UpdateTask{TaskID: tid, Status: status, ExitCode: &code,
				StartedAt: &started, CompletedAt: &ended, At: ended})
		}
		if err := apply(sub); err != nil {
			return 0, 0, err
		}
		if err := apply(ends); err != nil {
			return 0, 0, err
		}
		if (first/chunk)%20 == 19 {
			if err := archive(); err != nil {
				return 0, 0, err
			}
		}
	}
	if err := archive(); err != nil {
		return 0, 0, err
	}
	st := m.ArchiveStats()
	f, err := os.Create(file)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	snap := m.Snapshot()
	hdr := backup.Header{Format: backup.FormatVersion, HakuriverVersion: "bench", SnapshotVersion: fsm.SnapshotVersion,
		ClusterID: "benchhistory", AppliedIndex: m.AppliedIndex(), Term: 1, CreatedAt: time.Now().UTC(), Leader: "bench",
		Counts: snap.Counts()}
	bw := bufio.NewWriterSize(f, 1<<20)
	if _, _, err := backup.Write(bw, hdr, snap.Write); err != nil {
		return 0, 0, err
	}
	if err := bw.Flush(); err != nil {
		return 0, 0, err
	}
	return st.Tasks, st.Bytes, f.Close()
}

// timeGets times k GETs of path(i) on replica 0 and returns p50 and p99.
func timeGets(c *harness.Cluster, k int, path func(i int) string) (p50, p99 time.Duration) {
	var lat []time.Duration
	for i := range k {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		start := time.Now()
		a, err := c.Call(ctx, 0, http.MethodGet, path(i), nil)
		d := time.Since(start)
		cancel()
		if err != nil || a.Status != http.StatusOK {
			continue
		}
		lat = append(lat, d)
	}
	if len(lat) == 0 {
		return 0, 0
	}
	slices.Sort(lat)
	return lat[len(lat)/2], lat[min(len(lat)-1, len(lat)*99/100)]
}

// rssOf reads VmRSS, RssAnon and RssFile of pid (bytes).
func rssOf(pid int) (rss, anon, file int64) {
	f, err := os.Open(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return 0, 0, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		fields := strings.Fields(v)
		if len(fields) == 0 {
			continue
		}
		kb, _ := strconv.ParseInt(fields[0], 10, 64) //nolint:errcheck // a figure or 0
		switch k {
		case "VmRSS":
			rss = kb << 10
		case "RssAnon":
			anon = kb << 10
		case "RssFile":
			file = kb << 10
		}
	}
	return rss, anon, file
}

// parseSizes reads -history-sizes.
func parseSizes(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("-history-sizes: %q is not a task count", f)
		}
		out = append(out, n)
	}
	return out, nil
}

// errNote is " (first error: e)", or "" without one.
func errNote(e string) string {
	if e == "" {
		return ""
	}
	return " (first error: " + e + ")"
}

func printHistory(out io.Writer, rows []historyRow) {
	fmt.Fprintf(out, "History at scale: one replica restored from a backup of N finished tasks (all but the newest %d archived, as history_keep_tasks does), Raft on boltdb\n", historyKeep)
	tw := table(out)
	fmt.Fprintln(tw, "tasks\tarchived\tfill s\tarchive.db MiB\tbackup MiB\trestore+start s\tRSS MiB\tanon MiB\tfile MiB\tlist?limit=50 p50/p99 ms\tdeep page p50/p99 ms\tstatus p50/p99 ms\tsave s\tsaved MiB\tRSS after save MiB\tall listed\tsubmit/s 16 clients\t")
	for _, r := range rows {
		fmt.Fprintf(tw, "%d\t%d\t%.1f\t%.1f\t%.1f\t%.1f\t%s\t%s\t%s\t%.1f/%.1f\t%.1f/%.1f\t%.1f/%.1f\t%.1f\t%.1f\t%s\t%v\t%.0f%s\t\n",
			r.tasks, r.archived, r.fill.Seconds(), r.archiveMiB, r.backupMiB, r.restoreStart.Seconds(),
			mib(r.rss), mib(r.rssAnon), mib(r.rssF), msf(r.list50), msf(r.list50p99), msf(r.deep50), msf(r.deep50p99),
			msf(r.status), msf(r.statusP99), r.save.Seconds(), r.savedMiB, mib(r.rssSaved), r.restoredMatchesState, r.submit16, errNote(r.submitErr))
	}
	tw.Flush() //nolint:errcheck // stdout
}
