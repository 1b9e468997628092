package native

import (
	"os"
	"runtime"
	"sync"
	"syscall"
	"testing"
)

// offMainFromMain is the thread lockedOffMain ran f on when called from
// the main thread: package variables are initialized there (the runtime
// keeps initialization on the main thread).
var offMainFromMain = func() (tid int) {
	lockedOffMain(func() {
		tid = syscall.Gettid()
		runtime.UnlockOSThread()
	})
	return tid
}()

// TestLockedOffMain checks that lockedOffMain never runs f on the main
// thread: called from it (at initialization) and from many goroutines.
func TestLockedOffMain(t *testing.T) {
	if offMainFromMain == 0 || offMainFromMain == os.Getpid() {
		t.Errorf("called from the main thread, f ran on thread %d (the main thread is %d)", offMainFromMain, os.Getpid())
	}
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			lockedOffMain(func() {
				if tid := syscall.Gettid(); tid == os.Getpid() {
					t.Errorf("f ran on the main thread %d", tid)
				}
				runtime.UnlockOSThread()
			})
		})
	}
	wg.Wait()
}
