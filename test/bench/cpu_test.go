package bench

import (
	"os"
	"testing"
	"time"
)

// The CPU clocks count: a process tree that spins for 300 ms has used
// about that much, and this process's clock moves while it spins.
func TestCPUClocks(t *testing.T) {
	spin := func(d time.Duration) {
		for end := time.Now().Add(d); time.Now().Before(end); {
		}
	}
	before, err := treeCPU(os.Getpid())()
	if err != nil {
		t.Fatal(err)
	}
	self0, err := selfCPU()
	if err != nil {
		t.Fatal(err)
	}
	spin(300 * time.Millisecond)
	after, err := treeCPU(os.Getpid())()
	if err != nil {
		t.Fatal(err)
	}
	self1, _ := selfCPU()
	if d := after - before; d < 200*time.Millisecond || d > 2*time.Second {
		t.Errorf("treeCPU moved %s over a 300 ms spin", d)
	}
	if d := self1 - self0; d < 200*time.Millisecond || d > 2*time.Second {
		t.Errorf("selfCPU moved %s over a 300 ms spin", d)
	}
	if _, err := treeCPU(1 << 30)(); err == nil {
		t.Error("treeCPU of a process that does not exist: no error")
	}
}
