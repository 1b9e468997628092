package native

import (
	"errors"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// TestThreadExitWatch: a watch of an OS thread does not report while the
// thread lives, and reports once the goroutine locked to it returned
// (which ends the thread): the thread is gone from /proc by then.
func TestThreadExitWatch(t *testing.T) {
	t.Parallel()
	type watched struct {
		w   threadExitWatch
		ok  bool
		tid int
	}
	got := make(chan watched, 1)
	release := make(chan struct{})
	go lockedOffMain(func() {
		w, ok := watchThisThread()
		got <- watched{w: w, ok: ok, tid: syscall.Gettid()}
		<-release
		// Returning locked ends the thread.
	})
	wt := <-got
	if wt.tid == os.Getpid() {
		t.Fatal("lockedOffMain ran on the main thread")
	}
	if !wt.ok {
		close(release)
		t.Skip("this kernel has no pidfds of threads (Linux 6.9); supervisors move the forking thread instead")
	}
	ended := make(chan struct{})
	go func() {
		wt.w.await()
		close(ended)
	}()
	select {
	case <-ended:
		t.Fatal("the watch reported the end of a thread that still runs")
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	select {
	case <-ended:
	case <-time.After(10 * time.Second):
		t.Fatal("the watch did not report the end of the thread")
	}
	if _, err := os.Stat("/proc/self/task/" + strconv.Itoa(wt.tid)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("thread %d still in /proc after its watch reported its end (%v)", wt.tid, err)
	}
}
