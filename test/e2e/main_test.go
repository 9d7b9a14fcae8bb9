package e2e

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/rampart-ha/rampart/test/lab"
)

// agentBinary is the rampart binary built for this run; the lab's hosts run
// it as ocf:rampart:pgsql. It lives where the postgres user can execute it
// (the agent re-executes itself as that user). With RAMPART_E2E_INSTALLED=1
// it is the installed package's, and the labs use its agent links
// (test/packages runs the failover tests that way).
var agentBinary string

// installed: the labs run the installed package (lab.Config.Installed).
var installed = os.Getenv("RAMPART_E2E_INSTALLED") == "1"

func TestMain(m *testing.M) {
	code := func() int {
		flag.Parse()
		if installed {
			agentBinary = lab.InstalledBinary
		} else if os.Geteuid() == 0 && !testing.Short() {
			dir := "/var/lib/rampart/e2e-bin"
			defer os.RemoveAll(dir)
			bin, err := lab.BuildAgent("../..", dir)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			agentBinary = bin
		}
		return m.Run()
	}()
	os.Exit(code)
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

// startAgentLab brings up a lab whose PostgreSQL is managed by
// ocf:rampart:pgsql, and removes it when the test ends.
func startAgentLab(t *testing.T, id string, opts lab.PgsqlOptions) *lab.Lab {
	t.Helper()
	c := lab.DefaultConfig()
	c.ID = id
	l := startLab(t, c)
	ctx := deadline(t, 4*time.Minute)
	if err := l.ManagePostgres(ctx, opts); err != nil {
		t.Fatalf("hand PostgreSQL to Pacemaker: %v", err)
	}
	return l
}

// startLab brings up lab c with this run's agent binary as its OCF provider
// "rampart" (PostgreSQL still run by the lab), and removes it when the test
// ends, showing the agent's log if the test failed.
func startLab(t *testing.T, c lab.Config) *lab.Lab {
	t.Helper()
	if testing.Short() {
		t.Skip("e2e: skipped with -short")
	}
	c.Agent, c.Installed = agentBinary, installed
	if missing := lab.Prerequisites(c); len(missing) > 0 {
		t.Skipf("e2e needs %s: run as root after `make deps`", strings.Join(missing, ", "))
	}
	log := slog.New(slog.NewTextHandler(testWriter{t}, nil))
	ctx := context.Background()
	if err := lab.Destroy(ctx, c.Root, c.ID, log); err != nil {
		t.Fatal(err)
	}
	upCtx, cancel := context.WithTimeout(ctx, 4*time.Minute)
	defer cancel()
	l, err := lab.Up(upCtx, c, log)
	t.Cleanup(func() {
		if t.Failed() && l != nil {
			for _, h := range l.DBHosts() {
				t.Logf("--- agent log of %s\n%s", h, l.AgentLog(h))
				t.Logf("--- postgres start-up log of %s\n%s", h, l.PostgresLog(h, 25))
				t.Logf("--- fencer log of %s\n%s", h, l.FenceLog(h))
			}
			if cmd, err := l.Exec(ctx, l.DBHosts()[0], "crm_mon", "-1A"); err == nil {
				out, _ := cmd.CombinedOutput()
				t.Logf("--- crm_mon -1A\n%s", out)
			}
		}
		if err := lab.Destroy(ctx, c.Root, c.ID, log); err != nil {
			t.Errorf("lab down: %v", err)
		}
	})
	if err != nil {
		t.Fatalf("lab up: %v", err)
	}
	return l
}

func deadline(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
