package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// run runs argv on the machine and returns its standard output; a failure
// carries the command and the tail of its stderr.
func run(ctx context.Context, argv ...string) (string, error) {
	return runEnv(ctx, nil, argv...)
}

func runEnv(ctx context.Context, env []string, argv ...string) (string, error) {
	if len(argv) == 0 {
		return "", errors.New("run: empty argument vector")
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	// nsenter forks into the host's PID namespace: on timeout kill the whole
	// process group, not only nsenter, and stop waiting for its output.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, tail(stderr.String(), 400))
	}
	return string(out), nil
}

// tail returns the last n bytes of s, trimmed.
func tail(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		s = "…" + s[len(s)-n:]
	}
	return s
}

// inHost prefixes argv so that it runs in the namespaces of the host whose
// init is pid, as user (root when "").
func inHost(pid int, user string, argv []string) []string {
	full := []string{"nsenter", "--target", strconv.Itoa(pid), "--net", "--mount", "--uts", "--pid", "--"}
	if user != "" && user != "root" {
		// setpriv, not su or runuser: no PAM session, no shell; --reset-env
		// gives the user's own HOME (the host's private one) and a clean PATH.
		full = append(full, "setpriv", "--reuid="+user, "--regid="+user, "--init-groups", "--reset-env", "--")
	}
	return append(full, argv...)
}

// startDaemon starts argv in its own session with stdout and stderr appended
// to logPath, and returns its PID. The daemon outlives ctx and the caller.
func startDaemon(logPath string, env []string, argv ...string) (int, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return 0, fmt.Errorf("start %s: %w", argv[0], err)
	}
	defer logf.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("start %s: %w", strings.Join(argv, " "), err)
	}
	// Reap it if it dies while this process lives (tests); a CLI caller exits
	// first and the daemon is inherited by init.
	go func() { _ = cmd.Wait() }()
	return cmd.Process.Pid, nil
}
