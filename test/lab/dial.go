package lab

import (
	"context"
	"fmt"
	"net"
	"runtime"

	"golang.org/x/sys/unix"
)

// Dialer returns a dial function whose connections start inside host's
// network namespace, so that a Go client (pgx, a load generator) in this
// process talks to the lab as that host would. The namespace is entered on
// a locked OS thread that is thrown away afterwards; the socket stays in
// the namespace it was made in.
func (l *Lab) Dialer(host string) (func(ctx context.Context, network, addr string) (net.Conn, error), error) {
	if _, err := l.host(host); err != nil {
		return nil, err
	}
	path := "/run/netns/" + l.cfg.hostNamespace(host)
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		type result struct {
			conn net.Conn
			err  error
		}
		ch := make(chan result, 1)
		go func() {
			runtime.LockOSThread()
			orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
			if err != nil {
				ch <- result{nil, fmt.Errorf("dial from %s: %w", host, err)}
				return
			}
			defer unix.Close(orig)
			// The thread goes back to the machine's namespace before other
			// goroutines may use it; if it cannot, it stays locked and ends
			// with this goroutine. (Were it the main thread, the whole
			// process would count as the lab's.)
			defer func() {
				if unix.Setns(orig, unix.CLONE_NEWNET) == nil {
					runtime.UnlockOSThread()
				}
			}()
			fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
			if err != nil {
				ch <- result{nil, fmt.Errorf("dial from %s: %w", host, err)}
				return
			}
			defer unix.Close(fd)
			if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
				ch <- result{nil, fmt.Errorf("dial from %s: setns: %w", host, err)}
				return
			}
			var d net.Dialer
			c, err := d.DialContext(ctx, network, addr)
			ch <- result{c, err}
		}()
		r := <-ch
		return r.conn, r.err
	}, nil
}
