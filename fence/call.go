package fence

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"sort"
	"strings"
	"syscall"
)

// Result is what an agent run by Call said.
type Result struct {
	Code           int
	Stdout, Stderr string
}

// Call runs the fence agent at path (ours or fence-agents') the way
// Pacemaker's fencer does: no arguments, the action and options as
// name=value lines on stdin (sorted, so runs are reproducible). The agent
// gets until ctx ends; then its process group is killed and Call fails.
// A value containing a newline is refused before anything runs.
func Call(ctx context.Context, path, action string, options map[string]string) (Result, error) {
	var in strings.Builder
	names := make([]string, 0, len(options))
	for k := range options {
		names = append(names, k)
	}
	sort.Strings(names)
	fmt.Fprintf(&in, "action=%s\n", action)
	for _, k := range names {
		if strings.ContainsAny(k+options[k], "\n\x00") || strings.Contains(k, "=") || k == "action" {
			return Result{}, fmt.Errorf("fence option %q: not allowed (newline, NUL, = or action)", k)
		}
		fmt.Fprintf(&in, "%s=%s\n", k, options[k])
	}
	cmd := exec.Command(path)
	cmd.Stdin = strings.NewReader(in.String())
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return Result{}, fmt.Errorf("run %s: %w", path, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		return Result{Code: -1, Stdout: out.String(), Stderr: errb.String()},
			fmt.Errorf("%s %s: %w (killed)", path, action, ctx.Err())
	}
	r := Result{Stdout: out.String(), Stderr: errb.String()}
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		r.Code = exit.ExitCode()
	default:
		return r, fmt.Errorf("run %s: %w", path, err)
	}
	return r, nil
}
