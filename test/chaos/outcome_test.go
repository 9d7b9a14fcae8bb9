package chaos

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rampart-ha/rampart/ops"
	"github.com/rampart-ha/rampart/test/chaos/history"
)

func TestClassify(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want history.Outcome
	}{
		{"no error is ok", nil, history.OK},
		{"a unique violation is a definite failure", &pgconn.PgError{Code: "23505"}, history.Failed},
		{"a read-only transaction is a definite failure", fmt.Errorf("append: %w", &pgconn.PgError{Code: "25006"}), history.Failed},
		{"a serialization failure is a definite failure", &pgconn.PgError{Code: "40001"}, history.Failed},
		{"a backend terminated by the administrator may have committed", &pgconn.PgError{Code: "57P01"}, history.Unknown},
		{"a connection failure reported by the server may have committed", &pgconn.PgError{Code: "08006"}, history.Unknown},
		{"durable_reads could not confirm the answer: unknown", &pgconn.PgError{Code: "40003"}, history.Unknown},
		{"a timeout after sending may have committed", fmt.Errorf("append: %w", context.DeadlineExceeded), history.Unknown},
		{"a connection lost mid-statement may have committed", io.ErrUnexpectedEOF, history.Unknown},
		{"a failed connect never sent anything", &pgconn.ConnectError{}, history.Failed},
		{"an error pgx marks safe to retry never sent anything", safeToRetry{}, history.Failed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Classify(tt.err); got != tt.want {
				t.Errorf("Classify(%v) = %s, want %s", tt.err, got, tt.want)
			}
		})
	}
}

type safeToRetry struct{}

func (safeToRetry) Error() string     { return "write failed before sending" }
func (safeToRetry) SafeToRetry() bool { return true }
func (safeToRetry) Unwrap() error     { return errors.ErrUnsupported }

// Marks read a pooler's /health the way its router does: a node down,
// drained or past max_lag_bytes takes no reads.
func TestMarks(t *testing.T) {
	pv := ops.PoolerView{Member: "p1", Leader: true, Nodes: []ops.PoolerNode{
		{Name: "n1", Role: "primary", Up: true},
		{Name: "n2", Role: "standby", Up: false},
		{Name: "n3", Role: "standby", Up: true, Drained: true},
		{Name: "n4", Role: "standby", Up: true, LagBytes: poolerMaxLag + 1},
	}}
	got := Marks(pv, time.Second)
	want := map[string]string{"n1": "", "n2": "down", "n3": "drained", "n4": "lagging 16777217 bytes"}
	if len(got) != len(want) {
		t.Fatalf("marks %+v", got)
	}
	for _, m := range got {
		if m.Why != want[m.Node] || m.Usable != (want[m.Node] == "") || m.Pooler != "p1" || m.At != time.Second {
			t.Errorf("mark %+v; want why %q", m, want[m.Node])
		}
	}
}
