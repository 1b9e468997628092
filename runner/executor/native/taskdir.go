package native

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/hakuriver/hakuriver-ha/runner/executor"
)

// Files of a task directory <StateDir>/<task id>/. Records are written
// whole (temp file + rename), so a reader sees either none or all of one.
const (
	// fileSpec is the launch record, written by Start before the shim runs.
	fileSpec = "spec.json"
	// fileShim identifies the supervisor; written by the shim first thing.
	fileShim = "shim.json"
	// fileProc identifies the task process; written once it started.
	fileProc = "task.json"
	// fileExit is how the task ended; written last, by the shim, or by an
	// executor that found the shim gone.
	fileExit = "exit.json"
	// fileKill marks that Kill was asked, so the end counts as killed.
	fileKill = "kill"
	// filePaused marks a paused task.
	filePaused = "paused"
	// fileShimLog receives the shim's own stdout and stderr.
	fileShimLog = "shim.log"
)

// launchRecord is what the shim needs to run a task.
type launchRecord struct {
	Spec executor.Spec `json:"spec"`
	// Cgroup is where the task's cgroup goes, for the shim; nil runs it
	// without limits. The executor never acts on the layout recorded here
	// (it uses its own, from its Config): it only learns from it whether
	// the task has a cgroup at all.
	Cgroup    *cgroupLayout `json:"cgroup,omitempty"`
	CreatedAt time.Time     `json:"created_at"`
}

// shimRecord identifies the supervisor process.
type shimRecord struct {
	PID        int    `json:"pid"`
	StartTicks uint64 `json:"start_ticks"`
}

// procRecord identifies the task's main process, leader of its process
// group.
type procRecord struct {
	PID        int       `json:"pid"`
	PGID       int       `json:"pgid"`
	StartTicks uint64    `json:"start_ticks"`
	StartedAt  time.Time `json:"started_at"`
	// WarmCgroup says the task was forked in the cgroup its warm
	// supervisor made ahead (warmCgroup), not in one made at its start.
	WarmCgroup bool `json:"warm_cgroup,omitempty"`
}

// exitRecord is how a task ended.
type exitRecord struct {
	// Code is the exit status, or -1 for death by a signal (Signal says
	// which) and for a task that could not start or was lost.
	Code    int    `json:"code"`
	Signal  int    `json:"signal,omitempty"`
	OOM     bool   `json:"oom,omitempty"`
	Killed  bool   `json:"killed,omitempty"`
	Message string `json:"message,omitempty"`
	// Lost is set when the supervisor disappeared before recording the end.
	Lost      bool      `json:"lost,omitempty"`
	StartedAt time.Time `json:"started_at"`
	EndedAt   time.Time `json:"ended_at"`
	// Usage is what the task consumed (absent: not measured, or a record
	// of an earlier version).
	Usage *usageRecord `json:"usage,omitempty"`
}

// usageRecord is what a task consumed, as the shim measured it.
type usageRecord struct {
	UserNs    int64  `json:"user_ns"`
	SystemNs  int64  `json:"system_ns"`
	PeakBytes int64  `json:"peak_bytes"`
	Source    string `json:"source"`
}

// warmRecordCodecs encodes and decodes each record a supervisor reads or
// writes once, with its slices, maps and pointers set, so that
// encoding/json has built and cached their codecs (by reflection: the
// first use of a type costs about as much as the rest of the record's
// write) before a warm supervisor's task arrives. It touches no file.
func warmRecordCodecs() {
	one := []int{1}
	l := launchRecord{
		Spec: executor.Spec{TaskID: 1, Command: "c", Args: []string{"a"}, Env: map[string]string{"k": "v"},
			CPUs: one, Mems: one, GPUs: one, Mounts: []string{"m"}},
		Cgroup: &cgroupLayout{Version: 1, Controllers: map[string]string{"c": "d"}},
	}
	for _, v := range []any{&l, &shimRecord{}, &procRecord{}, &exitRecord{Usage: &usageRecord{}}} {
		if b, err := json.Marshal(v); err == nil {
			_ = json.Unmarshal(b, v) // its own encoding: cannot fail
		}
	}
}

// exit converts the record to the executor's type.
func (r exitRecord) exit() executor.Exit {
	ex := executor.Exit{
		Code: r.Code, OOM: r.OOM, Killed: r.Killed, Message: r.Message,
		StartedAt: r.StartedAt, EndedAt: r.EndedAt, Signal: r.Signal,
	}
	if u := r.Usage; u != nil {
		ex.Usage = &executor.Usage{UserNs: u.UserNs, SystemNs: u.SystemNs, PeakBytes: u.PeakBytes, Source: u.Source}
	}
	return ex
}

// taskFiles is a task directory's contents read at one moment.
type taskFiles struct {
	ID     int64
	Dir    string
	Launch launchRecord
	Shim   *shimRecord
	Proc   *procRecord
	Exit   *exitRecord
	// Paused and KillAsked mirror the marker files.
	Paused    bool
	KillAsked bool
}

// readTask reads task id's directory; a directory without a launch record
// is unknown (executor.ErrUnknownTask).
func readTask(dir string, id int64) (*taskFiles, error) {
	t := &taskFiles{ID: id, Dir: dir}
	ok, err := readJSON(filepath.Join(dir, fileSpec), &t.Launch)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("task %d: %w", id, executor.ErrUnknownTask)
	}
	var shim shimRecord
	if ok, err := readJSON(filepath.Join(dir, fileShim), &shim); err != nil {
		return nil, err
	} else if ok {
		t.Shim = &shim
	}
	var proc procRecord
	if ok, err := readJSON(filepath.Join(dir, fileProc), &proc); err != nil {
		return nil, err
	} else if ok {
		t.Proc = &proc
	}
	if t.Exit, err = readExit(dir); err != nil {
		return nil, err
	}
	t.Paused = fileExists(filepath.Join(dir, filePaused))
	t.KillAsked = fileExists(filepath.Join(dir, fileKill))
	return t, nil
}

// readExit reads the exit record, nil when there is none yet.
func readExit(dir string) (*exitRecord, error) {
	var r exitRecord
	ok, err := readJSON(filepath.Join(dir, fileExit), &r)
	if err != nil || !ok {
		return nil, err
	}
	return &r, nil
}

// state converts the files to the executor's view.
func (t *taskFiles) state() executor.State {
	s := executor.State{TaskID: t.ID, Running: t.Exit == nil, Started: t.Launch.CreatedAt}
	if t.Proc != nil {
		s.Started = t.Proc.StartedAt
	}
	if t.Exit != nil {
		ex := t.Exit.exit()
		s.Exit = &ex
	} else {
		s.Paused = t.Paused
		s.Starting = t.Proc == nil // the supervisor has not started it yet
	}
	return s
}

// writeJSONAtomic writes v as JSON to path through a synced temp file and
// a rename, so readers never see a partial record, and the record survives
// a crash of the machine.
func writeJSONAtomic(path string, v any) error { return writeJSON(path, v, true) }

// writeRecord is writeJSONAtomic without the fsync, for the records that
// mean nothing after a crash of the machine, which ends every task with
// it: the launch, supervisor and process records. Such a record may then
// read back empty, which counts as missing (readJSON); exit records, which
// the cluster needs after a reboot, are synced.
func writeRecord(path string, v any) error { return writeJSON(path, v, false) }

// writeNewRecord writes v to path, which must not exist, directly and
// unsynced: for a record in a directory no other process sees yet (a task
// directory before its rename into place), where writeRecord's temporary
// file and rename buy nothing.
func writeNewRecord(path string, v any) error {
	return writeRecordFile(path, os.O_CREATE|os.O_EXCL, v)
}

// fillRecord is writeNewRecord into the empty file path made ahead
// (makeSpare).
func fillRecord(path string, v any) error { return writeRecordFile(path, os.O_TRUNC, v) }

// writeRecordFile opens path write-only with flags (never following a
// symlink) and writes v to it, unsynced.
func writeRecordFile(path string, flags int, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s: %w", filepath.Base(path), err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|flags|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// aheadSuffix ends the name of an empty file a spare task directory holds
// for a record the supervisor writes (".<record>.ahead", makeSpare): the
// record is written into it and renamed in place, which spares the
// supervisor the inode allocation of a new temporary file on the task's
// start and end.
const aheadSuffix = ".ahead"

// aheadName is the name of the file made ahead for record (fileShim,
// fileProc or fileExit: the records the supervisor alone writes; the
// executor writes the exit record of a lost task through a temporary
// file of its own).
func aheadName(record string) string { return "." + record + aheadSuffix }

// aheadPath is the file made ahead for the record at path.
func aheadPath(path string) string {
	return filepath.Join(filepath.Dir(path), aheadName(filepath.Base(path)))
}

// stageRecordAhead is stageRecord through the file made ahead for path,
// or a new temporary file when there is none.
func stageRecordAhead(path string, v any) (*stagedRecord, error) {
	tmp := aheadPath(path)
	err := writeRecordFile(tmp, os.O_TRUNC, v)
	if errors.Is(err, fs.ErrNotExist) {
		return stageRecord(path, v)
	}
	if err != nil {
		return nil, err
	}
	return &stagedRecord{tmp: tmp, path: path}, nil
}

// writeRecordAhead is writeRecord through the file made ahead for path,
// when there is one.
func writeRecordAhead(path string, v any) error {
	r, err := stageRecordAhead(path, v)
	if err != nil {
		return err
	}
	return r.place()
}

func writeJSON(path string, v any, sync bool) error {
	r, err := stageJSON(path, v, sync)
	if err != nil {
		return err
	}
	return r.place()
}

// stagedRecord is a record written beside its place under a hidden
// temporary name, not yet in place.
type stagedRecord struct{ tmp, path string }

// stageRecord writes v aside for path, unsynced like writeRecord; place
// puts it in place. The record is readable at path only from then on.
func stageRecord(path string, v any) (*stagedRecord, error) { return stageJSON(path, v, false) }

func stageJSON(path string, v any, sync bool) (*stagedRecord, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", filepath.Base(path), err)
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return nil, fmt.Errorf("write %s: %w", path, err)
	}
	_, err = f.Write(b)
	if err == nil && sync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(f.Name()) // best effort: the temp name is hidden and unique
		return nil, fmt.Errorf("write %s: %w", path, err)
	}
	return &stagedRecord{tmp: f.Name(), path: path}, nil
}

// place renames the staged record to its path (atomically replacing
// what was there); on failure the staged file is removed.
func (r *stagedRecord) place() error {
	if err := os.Rename(r.tmp, r.path); err != nil {
		_ = os.Remove(r.tmp) // best effort: the temp name is hidden and unique
		return fmt.Errorf("write %s: %w", r.path, err)
	}
	return nil
}

// syncFile flushes path's data to disk. A file removed meanwhile (the
// task forgotten once its end was reported) needs no flush.
func syncFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("sync %s: %w", path, err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", path, err)
	}
	return nil
}

// readJSON decodes path into v; ok is false when the file does not exist
// or is empty (an unsynced record after a crash: see writeRecord).
func readJSON(path string, v any) (ok bool, err error) {
	b, err := readNoFollow(path)
	if errors.Is(err, fs.ErrNotExist) || err == nil && len(b) == 0 {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read %s: %w", path, err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return false, fmt.Errorf("decode %s: %w", path, err)
	}
	return true, nil
}

// writeMarker creates an empty marker file.
func writeMarker(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("create marker %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("create marker %s: %w", path, err)
	}
	return nil
}

// fileExists reports whether path exists (a symlink counts as itself).
func fileExists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// parseTaskDirName returns the task ID a state directory entry names.
func parseTaskDirName(name string) (int64, bool) {
	id, err := strconv.ParseInt(name, 10, 64)
	if err != nil || strconv.FormatInt(id, 10) != name {
		return 0, false
	}
	return id, true
}

// fileLock serialises the supervisor's "not ended yet, so start" decision
// with an executor's "never started, so record it lost" decision.
const fileLock = "start.lock"

// withDirLock runs f holding an exclusive flock on dir's lock file.
func withDirLock(dir string, f func() error) error {
	fh, err := os.OpenFile(filepath.Join(dir, fileLock), os.O_CREATE|os.O_RDWR|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("open task lock: %w", err)
	}
	defer fh.Close()
	if err := syscall.Flock(int(fh.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("lock task dir: %w", err)
	}
	defer syscall.Flock(int(fh.Fd()), syscall.LOCK_UN) //nolint:errcheck // closing releases it too
	return f()
}
