package bench

import (
	"bytes"
	"context"
	"io"
	"net"
	"testing"
	"time"
)

// Both relays carry bytes both ways, whole, and pass a server's end on to
// the client.
func TestRelays(t *testing.T) {
	echo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	go func() {
		for {
			c, err := echo.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 1<<20)
				n, _ := io.ReadFull(c, buf[:len("bye")])
				if string(buf[:n]) == "bye" {
					return // the server ends the connection
				}
				c.Write(buf[:n])
				io.Copy(c, c)
			}()
		}
	}()
	var d net.Dialer
	for name, relay := range map[string]func(context.Context, net.Listener, dialFunc, string){
		"goroutines": goroutineRelay,
		"epoll loop": func(ctx context.Context, ln net.Listener, dial dialFunc, server string) {
			if err := epollRelay(ctx, ln, dial, server); err != nil {
				t.Errorf("epoll relay: %v", err)
			}
		},
	} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan struct{})
			go func() {
				defer close(done)
				relay(ctx, ln, d.DialContext, echo.Addr().String())
			}()
			defer func() { cancel(); <-done }()
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB: more than a socket buffer
			go c.Write(big)
			got := make([]byte, len(big))
			if _, err := io.ReadFull(c, got); err != nil {
				t.Fatalf("read the echo: %v", err)
			}
			if !bytes.Equal(got, big) {
				t.Fatal("the echo differs from what was sent")
			}
			ended, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer ended.Close()
			ended.SetDeadline(time.Now().Add(10 * time.Second))
			ended.Write([]byte("bye"))
			if n, err := ended.Read(make([]byte, 1)); err != io.EOF {
				t.Errorf("after the server ended the connection the client read %d bytes, %v; want EOF", n, err)
			}
		})
	}
}
