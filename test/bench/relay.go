package bench

import (
	"context"
	"errors"
	"io"
	"net"
	"runtime"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// Byte-blind relays: each client gets its own server connection and every
// byte is copied as it comes, nothing parsed, nothing pooled. They are the
// floor under any pooler written in Go on this machine: what the runtime
// and the system calls cost per transaction before the pooler does any
// work of its own. One copies with two goroutines per client (Go's
// network poller, as rampart's sessions do); the other runs every
// connection from one epoll loop on one locked thread (PgBouncer's shape).

// dialFunc makes a server connection (a lab's namespace).
type dialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// goroutineRelay serves ln until ctx ends.
func goroutineRelay(ctx context.Context, ln net.Listener, dial dialFunc, server string) {
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			s, err := dial(ctx, "tcp", server)
			if err != nil {
				return
			}
			defer s.Close()
			go func() {
				io.Copy(s, c)
				s.Close()
			}()
			io.Copy(c, s)
		}()
	}
}

// epollRelay serves ln from one epoll loop on a locked thread until ctx
// ends: accepts, connects (through dial, then taken over by the loop) and
// copies, level-triggered, one read and one write per readable socket.
func epollRelay(ctx context.Context, ln net.Listener, dial dialFunc, server string) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	lf, err := ln.(*net.TCPListener).File()
	if err != nil {
		return err
	}
	defer lf.Close()
	ln.Close()
	lfd := int(lf.Fd())
	if err := unix.SetNonblock(lfd, true); err != nil {
		return err
	}
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return err
	}
	defer unix.Close(ep)
	if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, lfd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(lfd)}); err != nil {
		return err
	}
	var stopped atomic.Bool
	go func() {
		<-ctx.Done()
		stopped.Store(true)
	}()
	open := map[int]bool{}
	defer func() {
		for fd := range open {
			unix.Close(fd)
		}
	}()
	// take moves a Go connection's socket into the loop.
	take := func(c net.Conn) (int, error) {
		defer c.Close()
		f, err := c.(*net.TCPConn).File()
		if err != nil {
			return -1, err
		}
		fd, err := unix.Dup(int(f.Fd()))
		f.Close()
		if err != nil {
			return -1, err
		}
		return fd, unix.SetNonblock(fd, true)
	}
	buf := make([]byte, 64<<10)
	events := make([]unix.EpollEvent, 128)
	for !stopped.Load() {
		n, err := unix.EpollWait(ep, events, 100)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return err
		}
		for _, ev := range events[:n] {
			fd, peer := int(ev.Fd), int(ev.Pad)
			if fd == lfd {
				cfd, _, err := unix.Accept4(lfd, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
				if err != nil {
					continue
				}
				s, err := dial(ctx, "tcp", server)
				if err != nil {
					unix.Close(cfd)
					continue
				}
				sfd, err := take(s)
				if err != nil {
					unix.Close(cfd)
					continue
				}
				unix.SetsockoptInt(cfd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
				open[cfd], open[sfd] = true, true
				unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, cfd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(cfd), Pad: int32(sfd)})
				unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, sfd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(sfd), Pad: int32(cfd)})
				continue
			}
			if !open[fd] {
				continue // its peer ended it earlier in this batch
			}
			m, err := unix.Read(fd, buf)
			if errors.Is(err, unix.EAGAIN) {
				continue
			}
			if err != nil || m == 0 || writeAll(peer, buf[:m]) != nil {
				for _, x := range []int{fd, peer} {
					unix.EpollCtl(ep, unix.EPOLL_CTL_DEL, x, nil)
					unix.Close(x)
					delete(open, x)
				}
			}
		}
	}
	return nil
}

// writeAll writes b to the non-blocking socket fd, waiting in poll(2)
// when its buffer is full.
func writeAll(fd int, b []byte) error {
	for len(b) > 0 {
		n, err := unix.Write(fd, b)
		switch {
		case errors.Is(err, unix.EAGAIN):
			if _, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}, 1000); err != nil && !errors.Is(err, unix.EINTR) {
				return err
			}
		case err != nil:
			return err
		default:
			b = b[n:]
		}
	}
	return nil
}
