package executor

import (
	"os"
	"strconv"
	"syscall"
)

// CloseInheritedOnExec marks every open descriptor above standard error
// close-on-exec. Go opens its own descriptors so; one the process
// inherited without it (from a shell redirection or whatever started the
// runner) would otherwise pass to every process it starts, down to the
// tasks, which run as other users. It is best effort: a descriptor that
// cannot be listed or marked is left as it is.
func CloseInheritedOnExec() {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return
	}
	for _, e := range entries {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd > 2 {
			syscall.CloseOnExec(fd) // EBADF for the listing's own, closed since
		}
	}
}
