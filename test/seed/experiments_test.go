package seed

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

func TestPgbenchTPS(t *testing.T) {
	out := `transaction type: /var/lib/rampart/seed-reads-1/read.sql
scaling factor: 1
query mode: prepared
number of clients: 80
number of threads: 2
maximum number of tries: 1
duration: 6 s
number of transactions actually processed: 17838
number of failed transactions: 0 (0.000%)
latency average = 26.810 ms
initial connection time = 310.205 ms
tps = 2983.940125 (without initial connection time)
`
	tps, failed, err := pgbenchTPS(out)
	if err != nil || tps != 2983.940125 || failed != 0 {
		t.Errorf("got %v tps, %d failed, %v", tps, failed, err)
	}
	if _, failed, _ := pgbenchTPS("number of failed transactions: 12 (0.1%)\ntps = 5.0 (without initial connection time)\n"); failed != 12 {
		t.Errorf("failed %d, want 12", failed)
	}
	if _, _, err := pgbenchTPS("pgbench: error: connection to server failed\n"); err == nil {
		t.Error("no tps line: want an error")
	}
}

// pgbench's per-transaction log lines land in the buckets of their end.
func TestCountLogged(t *testing.T) {
	start := time.Unix(1_800_000_000, 0)
	dir := t.TempDir()
	log := "0 0 20163 0 1800000000 100000\n1 0 20170 0 1800000000 300000\n0 1 20104 0 1800000001 0\ngarbage\n"
	if err := os.WriteFile(filepath.Join(dir, "step1.4242.1"), []byte(log), 0o644); err != nil {
		t.Fatal(err)
	}
	rec := NewRecorder(func() time.Time { return start.Add(2 * time.Second) })
	rec.s.Start = start
	if err := countLogged(rec, Read, filepath.Join(dir, "step1")); err != nil {
		t.Fatal(err)
	}
	s := rec.Snapshot()
	if got := s.Counts[Read][:5]; got[0] != 1 || got[1] != 1 || got[4] != 1 || s.Total(Read, 0, s.End()) != 3 {
		t.Errorf("read counts %v", s.Counts[Read])
	}
	if err := countLogged(rec, Read, filepath.Join(dir, "none")); err == nil {
		t.Error("no logs: want an error")
	}
}

// What the clients were told: one line each, most frequent first, SQLSTATE
// and message for a server's error.
func TestLoadErrors(t *testing.T) {
	ld := &Load{rec: NewRecorder(time.Now), errs: map[string]int{}}
	multi := errors.New("failed to connect:\n\t10.0.0.1:5432: dial error\n\t10.0.0.2:5432: dial error")
	ld.failed("connect", multi)
	ld.failed("connect", multi)
	ld.failed("write", fmt.Errorf("exec: %w", &pgconn.PgError{Code: "57P01", Message: "terminating connection due to administrator command"}))
	want := []string{"connect: failed to connect: 10.0.0.1:5432: dial error 10.0.0.2:5432: dial error (2)",
		"write: 57P01 terminating connection due to administrator command (1)"}
	if got := ld.Errors(); !slices.Equal(got, want) {
		t.Errorf("Errors() = %q\nwant %q", got, want)
	}
	if s := ld.rec.Snapshot(); s.Total(Error, 0, s.End()+Bucket) != 3 {
		t.Errorf("%d errors counted, want 3", s.Total(Error, 0, s.End()+Bucket))
	}
}
