package native

import (
	"errors"
	"os"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// A supervisor forks its task from an OS thread that it moved into the
// task's cgroup (cgroup v1). That thread must be out of the cgroup before
// the task's process is recorded: Pause freezes, and Kill signals,
// whatever the cgroup holds. Moving the thread to another cgroup writes to
// every hierarchy's tasks file, each write taking the kernel's cgroup
// lock for writing (about 0.7 ms for seven hierarchies on the 2-core VM
// this was measured on). A thread that ends leaves every cgroup on its
// way out without that lock, so where the kernel can say when a thread
// has ended (a pidfd of a thread: Linux 6.9), the forking thread ends
// instead; the Go runtime ends the OS thread of a goroutine that returns
// while locked to it.

// threadExitWatch tells when the OS thread that made it has ended.
type threadExitWatch struct {
	fd  int
	tid int
}

// watchThisThread returns a watch of the calling OS thread (the caller
// must hold it with runtime.LockOSThread); ok is false when this kernel
// has no pidfds of threads, and on the process's main thread, which Go
// never ends (it wedges it instead).
func watchThisThread() (w threadExitWatch, ok bool) {
	tid := syscall.Gettid()
	if tid == os.Getpid() {
		return threadExitWatch{}, false
	}
	fd, err := unix.PidfdOpen(tid, unix.PIDFD_THREAD)
	if err != nil {
		return threadExitWatch{}, false
	}
	syscall.CloseOnExec(fd)
	return threadExitWatch{fd: fd, tid: tid}, true
}

// threadExitTimeout bounds the wait for a thread to end in the unlikely
// case that its pidfd cannot be polled; then its /proc entry decides.
const threadExitTimeout = 5 * time.Second

// await blocks until the thread has ended (its pidfd is readable: the
// kernel notifies it after the thread left its cgroups) and releases the
// watch.
func (w threadExitWatch) await() {
	defer unix.Close(w.fd) //nolint:errcheck // a pidfd: nothing to flush
	fds := []unix.PollFd{{Fd: int32(w.fd), Events: unix.POLLIN}}
	for {
		_, err := unix.Poll(fds, -1)
		if err == nil && fds[0].Revents != 0 {
			return
		}
		if err != nil && !errors.Is(err, unix.EINTR) {
			break
		}
	}
	// Poll failed: wait until the thread is gone from /proc.
	path := "/proc/self/task/" + strconv.Itoa(w.tid)
	for deadline := time.Now().Add(threadExitTimeout); time.Now().Before(deadline); time.Sleep(50 * time.Microsecond) {
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			return
		}
	}
}
