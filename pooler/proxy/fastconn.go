package proxy

import (
	"errors"
	"io"
	"net"
	"syscall"
	"unsafe"
)

// fastConn does a TCP connection's reads and writes with raw system calls
// (the socket is non-blocking; a read that would block still waits in
// Go's network poller). Go's ordinary path marks each read and write as a
// blocking system call; a write on loopback that wakes the reader often
// takes long enough for the runtime's monitor to hand the processor to
// another thread, and under a ping-pong load such as a pooler's that
// churn of threads costs more than the I/O itself (measured: 5 context
// switches per query at one client, against PgBouncer's 2).
type fastConn struct {
	net.Conn
	rc syscall.RawConn
}

// newFastConn wraps a TCP connection; anything else comes back as it is.
func newFastConn(c net.Conn) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return c
	}
	return &fastConn{Conn: c, rc: rc}
}

func (c *fastConn) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	var n int
	var errno syscall.Errno
	err := c.rc.Read(func(fd uintptr) bool {
		for {
			r, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
			switch e {
			case syscall.EINTR:
				continue
			case syscall.EAGAIN:
				return false // wait in the poller
			}
			n, errno = int(r), e
			return true
		}
	})
	switch {
	case err != nil:
		return 0, err
	case errno != 0:
		return 0, &net.OpError{Op: "read", Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: errno}
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

func (c *fastConn) Write(b []byte) (int, error) {
	written := 0
	var errno syscall.Errno
	err := c.rc.Write(func(fd uintptr) bool {
		for written < len(b) {
			p := b[written:]
			r, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
			switch e {
			case 0:
				written += int(r)
			case syscall.EINTR:
			case syscall.EAGAIN:
				return false // wait until the socket takes more
			default:
				errno = e
				return true
			}
		}
		return true
	})
	if err == nil && errno != 0 {
		err = &net.OpError{Op: "write", Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: errno}
	}
	if err == nil && written < len(b) {
		err = errors.New("short write")
	}
	return written, err
}

// quiet says whether an idle connection is still open with nothing to
// read: a server that ended the session (a shutdown's 57P01, an idle
// timeout) has sent a message or closed it. One non-blocking peek; a
// connection that cannot be peeked at (TLS, not TCP) counts as quiet.
func quiet(c net.Conn) bool {
	var rc syscall.RawConn
	switch c := c.(type) {
	case *fastConn:
		rc = c.rc
	case *net.TCPConn:
		var err error
		if rc, err = c.SyscallConn(); err != nil {
			return true
		}
	default:
		return true
	}
	ok := true
	var b [1]byte
	err := rc.Read(func(fd uintptr) bool {
		for {
			_, _, e := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
			if e == syscall.EINTR {
				continue
			}
			// Data or end of file (no error) or a socket error: not quiet.
			ok = e == syscall.EAGAIN
			return true
		}
	})
	return ok && err == nil
}
