package lab

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rampart-ha/rampart/ops"
)

// PoolerPort is where the lab's poolers take clients, and poolerHTTP where
// each answers /health inside its host.
const (
	PoolerPort = 6432
	poolerHTTP = "127.0.0.1:9187"
)

// StartPoolerPair runs the pooler pair on the pooler hosts (p1 preferred)
// with the witness on w: the lab's rampart binary, every database host as
// a node, the app user in the auth file (and on the console), a 500 ms
// heartbeat, and the pair's address PoolerVIP. It returns once a pooler
// leads and answers there. The daemons end with the lab.
func (l *Lab) StartPoolerPair(ctx context.Context) error {
	if l.cfg.Poolers != 2 || !l.cfg.Witness || l.cfg.Agent == "" {
		return fmt.Errorf("lab %s: the pooler pair needs two pooler hosts, the witness and the rampart binary (--poolers 2 --witness)", l.cfg.ID)
	}
	dir := filepath.Join(l.cfg.Dir(), "poolers")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return err
	}
	var nodes, members strings.Builder
	for _, h := range l.cfg.Hosts() {
		switch h.Role {
		case RoleDatabase:
			fmt.Fprintf(&nodes, "%s = host=%s\n", h.Name, h.Addr)
		case RolePooler:
			prio := 50
			if h.Name == "p1" {
				prio = 100
			}
			fmt.Fprintf(&members, "%s = %s:7480 priority=%d\n", h.Name, h.Addr, prio)
		case RoleWitness:
			fmt.Fprintf(&members, "%s = %s:7480 witness\n", h.Name, h.Addr)
		}
	}
	files := map[string]string{
		"pair.key":     base64.StdEncoding.EncodeToString(secret),
		"userlist.txt": fmt.Sprintf("%q %q\n", AppUser, l.Password(AppUser)),
		"w.ini":        fmt.Sprintf("[watchdog]\nself = w\nkey_file = %s/pair.key\nheartbeat = 500ms\n[members]\n%s", dir, members.String()),
	}
	for _, p := range []string{"p1", "p2"} {
		files[p+".ini"] = fmt.Sprintf(`[pooler]
listen_addr = *
listen_port = %d
auth_file = %s/userlist.txt
health_check_user = %s
health_check_dbname = %s
admin_users = %s
http_listen = %s
durable_reads = %s
[nodes]
%s[watchdog]
self = %s
key_file = %s/pair.key
heartbeat = 500ms
vip = %s
[members]
%s`, PoolerPort, dir, AppUser, AppDatabase, AppUser, poolerHTTP, onOff(l.cfg.DurableReads), nodes.String(), p, dir, l.cfg.PoolerVIP(), members.String())
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			return err
		}
	}
	if err := l.startRampart("w", "witness", "run", "--config", filepath.Join(dir, "w.ini")); err != nil {
		return err
	}
	for _, p := range []string{"p1", "p2"} {
		if err := l.StartPooler(p); err != nil {
			return err
		}
	}
	return WaitFor(ctx, "a pooler leading the pair with a primary", 200*time.Millisecond, func(ctx context.Context) (bool, string, error) {
		leader, primary, err := l.PoolerLeader(ctx)
		return err == nil && leader != "" && primary != "", fmt.Sprintf("leader %q primary %q %v", leader, primary, err), nil
	})
}

// startRampart starts the lab's rampart with args as a daemon on host,
// logging to log/rampart-ARGS[0].log there (appended: a restart keeps the
// lines before it). Lab down ends it.
func (l *Lab) startRampart(host string, args ...string) error {
	cmd, err := l.Exec(context.Background(), host, append([]string{l.cfg.labBinary()}, args...)...)
	if err != nil {
		return err
	}
	// Not a context's: the daemon outlives this call.
	cmd = exec.Command(cmd.Args[0], cmd.Args[1:]...)
	cmd.Env = append(os.Environ(), "PGPASSFILE="+l.clientPgpass())
	logf, err := os.OpenFile(filepath.Join(l.cfg.hostDir(host), "log", "rampart-"+args[0]+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start rampart %s on %s: %w", args[0], host, err)
	}
	go func() { cmd.Wait(); logf.Close() }()
	return nil
}

// StartPooler starts the pooler of pooler host p (p1 or p2) with the
// pair's configuration StartPoolerPair wrote.
func (l *Lab) StartPooler(p string) error {
	if h, err := l.host(p); err != nil || h.Role != RolePooler {
		return fmt.Errorf("start pooler: %q is no pooler host of lab %s", p, l.cfg.ID)
	}
	return l.startRampart(p, "pooler", "run", "--config", filepath.Join(l.cfg.Dir(), "poolers", p+".ini"))
}

// KillPooler ends the pooler of host p with SIGKILL, a crash of the
// process (its host stays up), and returns once it is gone.
func (l *Lab) KillPooler(ctx context.Context, p string) error {
	if h, err := l.host(p); err != nil || h.Role != RolePooler {
		return fmt.Errorf("kill pooler: %q is no pooler host of lab %s", p, l.cfg.ID)
	}
	procs, err := procsInNamespace(l.cfg.hostNamespace(p))
	if err != nil {
		return err
	}
	var pids []int
	for _, pr := range procs {
		argv, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pr.PID))
		if pr.Comm == filepath.Base(l.cfg.labBinary()) && strings.Contains(string(argv), "\x00pooler\x00run\x00") {
			pids = append(pids, pr.PID)
		}
	}
	if len(pids) != 1 {
		return fmt.Errorf("kill pooler of %s: %d poolers run there, want 1", p, len(pids))
	}
	if err := syscall.Kill(pids[0], syscall.SIGKILL); err != nil {
		return fmt.Errorf("kill pooler of %s: %w", p, err)
	}
	return WaitFor(ctx, fmt.Sprintf("pooler %d of %s gone", pids[0], p), 10*time.Millisecond,
		func(context.Context) (bool, string, error) { return !alive(pids[0]), "", nil })
}

// PoolerLeader asks each pooler's /health which of them leads the pair
// (holds its address), and where it sends writes.
func (l *Lab) PoolerLeader(ctx context.Context) (leader, primary string, err error) {
	pv, err := l.PoolerView(ctx)
	if err != nil {
		return "", "", err
	}
	return pv.Member, pv.Primary, nil
}

// PoolerView is the /health of the pooler that leads the pair (Member ""
// when none does): its nodes as its health checks see them.
func (l *Lab) PoolerView(ctx context.Context) (ops.PoolerView, error) {
	for _, h := range l.cfg.Hosts() {
		if h.Role != RolePooler || l.Crashed(h.Name) {
			continue
		}
		dial, err := l.Dialer(h.Name)
		if err != nil {
			return ops.PoolerView{}, err
		}
		client := &http.Client{Timeout: time.Second, Transport: &http.Transport{
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) { return dial(ctx, network, addr) },
		}}
		// A frozen or starting pooler does not answer: the other may lead.
		if pv := ops.PoolerHealth(ctx, client, "http://"+poolerHTTP); pv.Error == "" && pv.Leader {
			pv.Member = h.Name
			return pv, nil
		}
	}
	return ops.PoolerView{}, nil
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

// PoolerConsoles are the pooler pair's consoles as rampart switchover's
// --pooler takes them (the app user is an admin user; its password is in
// the lab's client password file, which Exec hands over).
func (l *Lab) PoolerConsoles() []string {
	var out []string
	for _, h := range l.cfg.Hosts() {
		if h.Role == RolePooler {
			u := url.URL{Scheme: "postgres", User: url.User(AppUser), Host: net.JoinHostPort(h.Addr.String(), strconv.Itoa(PoolerPort)), Path: "/rampart"}
			out = append(out, u.String())
		}
	}
	return out
}
