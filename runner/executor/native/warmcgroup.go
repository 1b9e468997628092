package native

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// shimCgroupEnv carries the Executor's cgroup layout (JSON) to a warm
// supervisor on cgroup v1, which then makes its task's cgroup ahead of
// the task (warmCgroup).
const shimCgroupEnv = "HAKURIVER_SHIM_CGROUP"

// warmCgroupPrefix begins the name of a warm supervisor's cgroup
// ("warm-<pid>"), under the Executor's parent beside the task cgroups.
const warmCgroupPrefix = "warm-"

// warmCgroup is the cgroup a warm supervisor makes, on cgroup v1, while it
// waits for its task, with one OS thread of its own already inside. The
// task's start renames it to the task's cgroup (a rename is cheap; the
// mkdir in every hierarchy and the thread's move in, which it saves, cost
// about a millisecond together), sets the task's limits and forks the task
// from that thread; the thread then moves to the shims cgroup. An unused
// one is removed (discard); one left by a supervisor that died is removed
// by the next Executor (removeStaleWarm).
type warmCgroup struct {
	cg   cgroupLayout
	name string
	// done is set once start or discard took it (the supervisor's main
	// goroutine alone uses it).
	done bool
	// fork hands the thread the command to start from inside the cgroup;
	// nil (or a close) makes it leave unused.
	fork chan *taskCommand
	// forked carries the result of the command's Start.
	forked chan error
	// left is closed once the thread has left the cgroup (or ended).
	left chan struct{}
	log  *slog.Logger
}

// newWarmCgroup makes the warm cgroup of layout cg (a v1 layout from
// shimCgroupEnv) and moves a locked OS thread into it. It returns nil when
// there is no v1 layout or any step fails: the task's start then makes
// its cgroup as a cold supervisor does.
func newWarmCgroup(layoutJSON string, log *slog.Logger) *warmCgroup {
	if layoutJSON == "" {
		return nil
	}
	var cg cgroupLayout
	if err := json.Unmarshal([]byte(layoutJSON), &cg); err != nil || cg.Version != 1 || !cg.isSetUp() {
		return nil
	}
	w := &warmCgroup{
		cg:     cg,
		name:   warmCgroupPrefix + strconv.Itoa(os.Getpid()),
		fork:   make(chan *taskCommand, 1),
		forked: make(chan error, 1),
		left:   make(chan struct{}),
		log:    log,
	}
	if !w.make() {
		return nil
	}
	ready := make(chan error, 1)
	go w.thread(ready)
	if err := <-ready; err != nil {
		<-w.left
		removeCgroup(&w.cg, w.name, log)
		return nil
	}
	return w
}

// make creates the warm cgroup in every hierarchy, each directory anew:
// one of that name that exists already (a supervisor of that PID in
// another PID namespace sharing the parent, or one that died) is removed
// when empty, else used by no one: make then removes what it made and
// reports false.
func (w *warmCgroup) make() bool {
	var made []string
	for _, d := range w.cg.dirs(w.name) {
		err := os.Mkdir(d, 0o755)
		if errors.Is(err, fs.ErrExist) && os.Remove(d) == nil {
			err = os.Mkdir(d, 0o755)
		}
		if err != nil {
			for _, m := range made {
				_ = os.Remove(m) // empty: ours, just made
			}
			return false
		}
		made = append(made, d)
	}
	if err := w.cg.applyV1(w.name, limits{}); err != nil {
		removeCgroup(&w.cg, w.name, w.log)
		return false
	}
	return true
}

// thread is the goroutine, locked to its OS thread, that waits inside the
// warm cgroup and forks the task from there. The supervisor's main thread
// is never that thread (init keeps the main goroutine on it); should it
// be, the thread refuses.
func (w *warmCgroup) thread(ready chan<- error) {
	defer close(w.left)
	runtime.LockOSThread()
	if syscall.Gettid() == os.Getpid() {
		runtime.UnlockOSThread()
		ready <- errors.New("the warm cgroup's thread would be the main thread")
		return
	}
	orig, err := threadCgroups()
	if err != nil {
		runtime.UnlockOSThread()
		ready <- err
		return
	}
	if err := w.cg.joinThread(w.name); err != nil {
		ready <- err
		return // maybe moved in part: the thread ends with its goroutine
	}
	ready <- nil
	if tc := <-w.fork; tc != nil {
		var err error
		if err = tc.cmd.Start(); err != nil {
			err = fmt.Errorf("start task: %w", err)
		}
		w.forked <- err
	}
	// To the shims cgroup, where the supervisor goes next, or else (it is
	// gone: a runner being removed) back where the thread came from. The
	// thread must not end: it is the task's parent in the kernel's eyes,
	// and a task that asked for a parent-death signal would get it.
	if err := w.cg.joinThread(shimsCgroup); err != nil {
		if err := w.cg.rejoinThread(orig); err != nil {
			// The supervisor goes on without this thread.
			w.log.Error("leave the task's cgroup", keyErr, err)
			return
		}
	}
	runtime.UnlockOSThread()
}

// fits reports whether a task launched with layout cg can use w.
func (w *warmCgroup) fits(cg *cgroupLayout) bool {
	return w != nil && cg != nil && reflect.DeepEqual(*cg, w.cg)
}

// discard moves the thread out and removes the warm cgroup, unless start
// or discard took it already; nil is valid.
func (w *warmCgroup) discard() {
	if w == nil || w.done {
		return
	}
	w.done = true
	w.drop()
}

// drop moves the thread out and removes the warm cgroup.
func (w *warmCgroup) drop() {
	close(w.fork)
	<-w.left
	removeCgroup(&w.cg, w.name, w.log)
}

// start renames the warm cgroup to name, sets lim and starts tc from the
// thread inside. With fallback true nothing was started and the warm
// cgroup is gone: the caller makes the cgroup and starts the task as a
// cold supervisor does. Otherwise it returns like startInCgroup (on an
// error, the cgroup name is the caller's to remove, the thread out of
// it).
func (w *warmCgroup) start(tc *taskCommand, name string, lim limits) (left <-chan struct{}, fallback bool, err error) {
	w.done = true
	parents := w.cg.dirs("")
	for i, parent := range parents {
		if err := os.Rename(filepath.Join(parent, w.name), filepath.Join(parent, name)); err != nil {
			// A cgroup of that name exists (EEXIST: left by an earlier
			// supervisor, or another task's): the thread leaves, what was
			// renamed so far (empty, ours) and the rest of the warm
			// cgroup go, and the cold path decides (prepareCgroup never
			// shares a cgroup with another task).
			w.drop()
			for _, p := range parents[:i] {
				_ = os.Remove(filepath.Join(p, name)) // best effort
			}
			return nil, true, nil
		}
	}
	if err := w.cg.applyV1(name, lim); err != nil {
		close(w.fork)
		<-w.left
		return w.left, false, err
	}
	w.fork <- tc
	if err := <-w.forked; err != nil {
		<-w.left
		return w.left, false, err
	}
	return w.left, false, nil
}

// staleWarmAge is how old an empty warm cgroup must be for
// removeStaleWarm to remove it: older than a supervisor may take to boot,
// so that it is not one being made (empty until its thread joins).
const staleWarmAge = warmBootTimeout

// removeStaleWarm removes the warm cgroups (v1) under the parent that no
// supervisor uses any more: empty ones (a live one's holds its thread:
// the removal fails, and the supervisor keeps it) older than
// staleWarmAge.
func (l cgroupLayout) removeStaleWarm(now time.Time) {
	if l.Version != 1 {
		return
	}
	for _, parent := range l.dirs("") {
		entries, err := os.ReadDir(parent)
		if err != nil {
			continue
		}
		for _, e := range entries {
			if !e.IsDir() || !strings.HasPrefix(e.Name(), warmCgroupPrefix) {
				continue
			}
			d := filepath.Join(parent, e.Name())
			var st syscall.Stat_t
			if syscall.Stat(d, &st) != nil || now.Sub(time.Unix(st.Ctim.Unix())) < staleWarmAge {
				continue
			}
			_ = os.Remove(d) // EBUSY: in use
		}
	}
}
