package pgsql

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/user"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rampart-ha/rampart/ra/ocf"
	"github.com/rampart-ha/rampart/ra/pacemaker"
)

// reexecMarker keeps a re-executed agent from re-executing again.
const reexecMarker = "RAMPART_AGENT_AS_USER=1"

// clusterGroup may use Pacemaker's tools (crm_attribute, attrd_updater).
const clusterGroup = "haclient"

// Main runs the agent as Pacemaker calls it and returns the exit code.
// Pacemaker runs agents as root; for every action that touches PostgreSQL
// the agent re-executes itself as the PostgreSQL system user, with the
// haclient group for Pacemaker's tools, so that pg_ctl runs as the owner of
// the data directory and the agent connects with peer authentication: no
// su, no shell, no password. Around the actions root keeps the postmaster
// watcher (watch.go) in step.
func Main(ctx context.Context, args, environ []string, stdout, stderr io.Writer, log *slog.Logger) int {
	agent := New(pacemaker.Local, time.Now)
	action := ""
	if len(args) > 1 {
		action = args[1]
	}
	switch action {
	case "", "meta-data", "usage", "help", "--help", "-h", "validate-all":
		return int(ocf.Run(ctx, agent, args, environ, stdout, stderr, log))
	case watchAction:
		// A log file of its own: clock times matter there.
		return runWatcher(ctx, args, pacemaker.Local, slog.New(slog.NewTextHandler(stderr, nil)).With("agent", "rampart-pgsql"))
	}
	if os.Geteuid() != 0 || hasEnv(environ, reexecMarker) {
		return int(ocf.Run(ctx, agent, args, environ, stdout, stderr, log))
	}
	// The postmaster watcher is root's business: it runs as Pacemaker's
	// user, which the system user cannot switch to.
	env, eerr := ocf.ParseEnv(environ)
	values, verr := ocf.Validate(Params, env.Params)
	watch := eerr == nil && verr == nil && env.Resource != ""
	if action == "notify" && watch && env.OnNode != "" && NotifyTaskOf(env.Notify, env.OnNode) == NoTask {
		// Most notifications ask nothing of this node; answering here saves
		// the re-execution, on every node, in every round of a failover.
		log.Debug("notify: nothing to do here", "resource", env.Instance, "what", env.Notify.String())
		return int(ocf.Success)
	}
	if stopBefore, _ := WatcherStep(action, 0); watch && stopBefore {
		if err := stopWatcher(watchLockPath(env.Resource), log); err != nil {
			fmt.Fprintf(stderr, "ocf-exit-reason:%s %s: %v\n", action, env.Resource, err)
			return int(ocf.ErrGeneric)
		}
	}
	code := runAs(ctx, args, environ, stdout, stderr)
	if _, ensure := WatcherStep(action, ocf.Status(code)); watch && ensure {
		if err := ensureWatcher(newConfig(values), env.Resource, env.OnNode, args[0], log); err != nil {
			log.Warn("no postmaster watcher: Pacemaker learns of a postmaster's death at the next monitor", "err", err)
		}
	}
	return code
}

// runAs runs the action as the PostgreSQL system user.
func runAs(ctx context.Context, args, environ []string, stdout, stderr io.Writer) int {
	name := "postgres"
	for _, kv := range environ {
		if v, ok := strings.CutPrefix(kv, "OCF_RESKEY_system_user="); ok && v != "" {
			name = v
		}
	}
	code, err := reexecAs(ctx, name, args, environ, stdout, stderr)
	var unknown user.UnknownUserError
	if errors.As(err, &unknown) {
		fmt.Fprintf(stderr, "ocf-exit-reason:parameter system_user=%q: no such OS user (is PostgreSQL installed?)\n", name)
		return int(ocf.ErrInstalled)
	}
	if err != nil {
		fmt.Fprintf(stderr, "ocf-exit-reason:run the agent as %s: %v\n", name, err)
		return int(ocf.ErrGeneric)
	}
	return code
}

func hasEnv(environ []string, kv string) bool {
	for _, e := range environ {
		if e == kv {
			return true
		}
	}
	return false
}

// groupsOf are the groups the agent runs with as u: u's own, primary and
// supplementary, as a login gives them (Debian's postgres reads the
// snakeoil TLS key through its ssl-cert group; PostgreSQL refuses to start
// without it), and the cluster's group, which may read the CIB.
func groupsOf(u *user.User) []uint32 {
	ids, _ := u.GroupIds()
	ids = append([]string{u.Gid}, ids...)
	if g, err := user.LookupGroup(clusterGroup); err == nil {
		ids = append(ids, g.Gid)
	}
	return groupIDs(ids)
}

// groupIDs parses group ids, each once, in their order.
func groupIDs(ids []string) []uint32 {
	var groups []uint32
	for _, s := range ids {
		id, err := strconv.ParseUint(s, 10, 32)
		if err != nil || slices.Contains(groups, uint32(id)) {
			continue
		}
		groups = append(groups, uint32(id))
	}
	return groups
}

func reexecAs(ctx context.Context, name string, args, environ []string, stdout, stderr io.Writer) (int, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return 0, err
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	groups := groupsOf(u)
	cmd := exec.CommandContext(ctx, "/proc/self/exe", args[1:]...)
	cmd.Args[0] = args[0] // the agent is chosen by the name it runs under
	cmd.Env = append(append([]string{}, environ...), reexecMarker, "HOME="+u.HomeDir, "USER="+name, "LOGNAME="+name)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.Dir = u.HomeDir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: groups}}
	err = cmd.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode(), nil
	}
	if err != nil {
		return 0, err
	}
	return 0, nil
}
