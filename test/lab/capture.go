package lab

import (
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/mdlayher/packet"
	"golang.org/x/sys/unix"
)

// Frame is one Ethernet frame seen on the lab's bridge.
type Frame struct {
	At   time.Time
	Data []byte
}

// Capture records every frame the lab's bridge sees (broadcasts and
// multicasts reach the bridge device itself: gratuitous ARP and neighbour
// advertisements do) until Stop.
type Capture struct {
	conn   *packet.Conn
	mu     sync.Mutex
	frames []Frame
	done   chan struct{}
}

// Capture starts a capture on the bridge.
func (l *Lab) Capture() (*Capture, error) {
	var c *packet.Conn
	err := l.InNetwork(BridgeHost, func() error {
		ifi, err := net.InterfaceByName(bridge)
		if err != nil {
			return err
		}
		c, err = packet.Listen(ifi, packet.Raw, unix.ETH_P_ALL, nil)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("capture on the lab bridge: %w", err)
	}
	cp := &Capture{conn: c, done: make(chan struct{})}
	go cp.read()
	return cp, nil
}

func (cp *Capture) read() {
	defer close(cp.done)
	buf := make([]byte, 65536)
	for {
		n, _, err := cp.conn.ReadFrom(buf)
		if err != nil {
			return // closed by Stop
		}
		f := Frame{At: time.Now(), Data: append([]byte(nil), buf[:n]...)}
		cp.mu.Lock()
		cp.frames = append(cp.frames, f)
		cp.mu.Unlock()
	}
}

// Frames returns what was captured so far.
func (cp *Capture) Frames() []Frame {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	return append([]Frame(nil), cp.frames...)
}

// Stop ends the capture and returns every frame.
func (cp *Capture) Stop() []Frame {
	cp.conn.Close()
	<-cp.done
	return cp.Frames()
}
