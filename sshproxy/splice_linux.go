package sshproxy

import (
	"errors"
	"net"
	"sync/atomic"
	"syscall"
)

// spliceChunk is the most one splice(2) call moves, and the size asked for
// the pipe between the two sockets (the default maximum pipe size).
const spliceChunk = 1 << 20

// spliceNonblock is SPLICE_F_NONBLOCK: the pipe side never blocks; the
// sockets' readiness is waited for through the runtime's poller.
const spliceNonblock = 0x2

// spliceCopy copies src to dst in the kernel (splice(2) through a pipe of
// its own, so that no byte passes through user space), adding what each
// call moved to counted (when not nil) at once: the counters stay live
// without the user-space copy a counting io.Writer would force. handled
// is false when splice is not available for these sockets and nothing was
// read yet; the caller then copies in user space.
func spliceCopy(dst, src *net.TCPConn, counted *atomic.Int64) (written int64, handled bool, err error) {
	rc, err := src.SyscallConn()
	if err != nil {
		return 0, false, nil
	}
	wc, err := dst.SyscallConn()
	if err != nil {
		return 0, false, nil
	}
	var p [2]int
	if err := syscall.Pipe2(p[:], syscall.O_CLOEXEC|syscall.O_NONBLOCK); err != nil {
		return 0, false, nil
	}
	defer syscall.Close(p[0]) //nolint:errcheck // a pipe of our own
	defer syscall.Close(p[1]) //nolint:errcheck // see above
	// A smaller pipe works too, with more calls.
	syscall.Syscall(syscall.SYS_FCNTL, uintptr(p[0]), syscall.F_SETPIPE_SZ, spliceChunk) //nolint:errcheck // see above

	for {
		// The pipe is empty here, so EAGAIN means src has nothing to read.
		var n int64
		var serr error
		if err := rc.Read(func(fd uintptr) bool {
			n, serr = splice(int(fd), p[1], spliceChunk)
			return serr != syscall.EAGAIN
		}); err != nil {
			return written, true, err
		}
		switch {
		case serr == nil && n == 0:
			return written, true, nil // EOF
		case errors.Is(serr, syscall.EINVAL) && written == 0:
			return 0, false, nil // no splice for this socket
		case serr != nil:
			return written, true, serr
		}
		// Everything in the pipe goes out before the next read, so EAGAIN
		// means dst cannot take more yet.
		for n > 0 {
			var m int64
			if err := wc.Write(func(fd uintptr) bool {
				m, serr = splice(p[0], int(fd), int(n))
				return serr != syscall.EAGAIN
			}); err != nil {
				return written, true, err
			}
			if serr != nil {
				return written, true, serr
			}
			n -= m
			written += m
			if counted != nil {
				counted.Add(m)
			}
		}
	}
}

// splice moves up to max bytes from in to out, retrying when interrupted.
// Neither end blocks (the pipe by SPLICE_F_NONBLOCK, the socket by
// O_NONBLOCK), so it is a raw system call: the runtime's bookkeeping of a
// blocking one (handing the P off, waking sysmon) would cost more than the
// call itself, once per chunk.
func splice(in, out, max int) (int64, error) {
	for {
		n, _, errno := syscall.RawSyscall6(syscall.SYS_SPLICE, uintptr(in), 0, uintptr(out), 0, uintptr(max), spliceNonblock)
		switch errno {
		case 0:
			return int64(n), nil
		case syscall.EINTR:
			continue
		}
		return 0, errno
	}
}
