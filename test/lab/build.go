package lab

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// BuildAgent builds the rampart binary from the module at moduleDir into
// dir/rampart for lab hosts to run as their OCF agents. dir is made
// world-readable: the pgsql agent re-executes itself as the postgres user.
func BuildAgent(moduleDir, dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "rampart")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/rampart")
	cmd.Dir = moduleDir
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build rampart: %w\n%s", err, out)
	}
	return bin, nil
}
