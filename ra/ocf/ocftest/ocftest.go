package ocftest

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/rampart-ha/rampart/ra/ocf"
)

// DTD is resource-agents' meta-data DTD (Debian resource-agents).
const DTD = "/usr/share/resource-agents/ra-api-1.dtd"

// MetaData runs a's meta-data action.
func MetaData(t testing.TB, a *ocf.Agent) string {
	t.Helper()
	var out, errb bytes.Buffer
	st := ocf.Run(context.Background(), a, []string{a.Name, "meta-data"}, nil, &out, &errb, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if st != ocf.Success {
		t.Fatalf("meta-data: %v: %s", st, errb.String())
	}
	return out.String()
}

// Golden compares out with the file golden, rewriting it first when
// update is set (go test -update).
func Golden(t testing.TB, out, golden string, update bool) {
	t.Helper()
	if update {
		if err := os.WriteFile(golden, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if out != string(want) {
		t.Errorf("meta-data differs from %s (go test -update rewrites it):\n%s", golden, out)
	}
}

// ValidDTD checks meta-data against ra-api-1.dtd with xmllint; it skips
// when either is missing (make deps installs both).
func ValidDTD(t testing.TB, metaData string) {
	t.Helper()
	if _, err := exec.LookPath("xmllint"); err != nil {
		t.Skip("needs xmllint (Debian libxml2-utils; make deps installs it)")
	}
	if _, err := os.Stat(DTD); err != nil {
		t.Skipf("needs %s (Debian resource-agents; make deps installs it)", DTD)
	}
	cmd := exec.Command("xmllint", "--noout", "--dtdvalid", DTD, "-")
	cmd.Stdin = strings.NewReader(metaData)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("meta-data does not validate against ra-api-1.dtd: %v\n%s", err, b)
	}
}
