package lab

import (
	"context"
	"fmt"
	"net"
	"runtime"

	"golang.org/x/sys/unix"
)

// BridgeHost names the lab's network itself in InNetwork: the namespace
// that holds the bridge every host is plugged into.
const BridgeHost = "net"

// InNetwork runs fn inside host's network namespace (BridgeHost: the
// bridge's), so that sockets fn opens (a dial, a capture) belong to the
// lab. The namespace is entered on a locked OS thread that goes back to the
// machine's namespace afterwards, or is thrown away if it cannot.
func (l *Lab) InNetwork(host string, fn func() error) error {
	ns := l.cfg.netNamespace()
	if host != BridgeHost {
		if _, err := l.host(host); err != nil {
			return err
		}
		ns = l.cfg.hostNamespace(host)
	}
	if err := InNamespace(ns, fn); err != nil {
		return fmt.Errorf("in %s: %w", host, err)
	}
	return nil
}

// InNamespace runs fn inside network namespace ns (/run/netns/ns) on a
// locked OS thread that goes back to the machine's namespace afterwards,
// or is thrown away if it cannot.
func InNamespace(ns string, fn func() error) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			done <- fmt.Errorf("enter %s: %w", ns, err)
			return
		}
		defer unix.Close(orig)
		// Were this the main thread left in the lab, the whole process
		// would count as the lab's.
		defer func() {
			if unix.Setns(orig, unix.CLONE_NEWNET) == nil {
				runtime.UnlockOSThread()
			}
		}()
		fd, err := unix.Open("/run/netns/"+ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			done <- fmt.Errorf("enter %s: %w", ns, err)
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			done <- fmt.Errorf("enter %s: setns: %w", ns, err)
			return
		}
		done <- fn()
	}()
	return <-done
}

// NamespaceDialer returns a dial function whose connections start inside
// network namespace ns.
func NamespaceDialer(ns string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		var c net.Conn
		err := InNamespace(ns, func() error {
			var d net.Dialer
			var err error
			c, err = d.DialContext(ctx, network, addr)
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("dial from %s: %w", ns, err)
		}
		return c, nil
	}
}

// Dialer returns a dial function whose connections start inside host's
// network namespace, so that a Go client (pgx, a load generator) in this
// process talks to the lab as that host would. The socket stays in the
// namespace it was made in.
func (l *Lab) Dialer(host string) (func(ctx context.Context, network, addr string) (net.Conn, error), error) {
	if _, err := l.host(host); err != nil {
		return nil, err
	}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		var c net.Conn
		err := l.InNetwork(host, func() error {
			var d net.Dialer
			var err error
			c, err = d.DialContext(ctx, network, addr)
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("dial from %s: %w", host, err)
		}
		return c, nil
	}, nil
}

// Listen opens a TCP listener at addr inside host's network namespace, so
// that a server in this process (a pooler under test) serves the lab as
// that host would.
func (l *Lab) Listen(host, addr string) (net.Listener, error) {
	var ln net.Listener
	err := l.InNetwork(host, func() (err error) {
		ln, err = net.Listen("tcp", addr)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("listen on %s in %s: %w", addr, host, err)
	}
	return ln, nil
}
