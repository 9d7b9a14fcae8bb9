package fencetest

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// RNG is fence-agents' metadata grammar (Debian fence-agents).
const RNG = "/usr/share/cluster/relaxng/metadata.rng"

// ValidMetadata checks metadata against RNG with xmllint; it skips when
// either is missing (make deps installs both).
func ValidMetadata(t testing.TB, metadata string) {
	t.Helper()
	if _, err := exec.LookPath("xmllint"); err != nil {
		t.Skip("needs xmllint (make deps)")
	}
	if _, err := os.Stat(RNG); err != nil {
		t.Skipf("needs %s (Debian fence-agents; make deps)", RNG)
	}
	cmd := exec.Command("xmllint", "--noout", "--relaxng", RNG, "-")
	cmd.Stdin = strings.NewReader(metadata)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("metadata does not validate against metadata.rng: %v\n%s", err, b)
	}
}
