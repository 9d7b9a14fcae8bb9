package main

import (
	"io"
	"log/slog"
	"log/syslog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// agentLogger is where an agent's log goes. Pacemaker records an agent's
// stderr only for one-shot actions and for a recurring monitor whose
// result changed, so what a monitor decides (a new synchronous standby, a
// replication slot) would be lost there. Like resource-agents' ocf_log, the
// agent appends to the cluster's log file when Pacemaker names one
// (HA_LOGFILE, PCMK_logfile), else logs to syslog (the journal), else to
// stderr.
func agentLogger(name string, environ []string, stderr io.Writer) *slog.Logger {
	env := map[string]string{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	tag := "rampart-" + name
	if rsc := env["OCF_RESOURCE_INSTANCE"]; rsc != "" {
		tag += "(" + rsc + ")"
	}
	tag += "[" + strconv.Itoa(os.Getpid()) + "]"
	for _, file := range []string{env["HA_LOGFILE"], env["PCMK_logfile"]} {
		if file == "" || file == "none" || file == "/dev/null" || !filepath.IsAbs(file) {
			continue
		}
		if f, err := os.OpenFile(file, os.O_WRONLY|os.O_APPEND, 0); err == nil {
			host, _ := os.Hostname()
			return newLogger(&lineWriter{w: f, prefix: func() string {
				return time.Now().Format("Jan 02 15:04:05.000") + " " + host + " " + tag + " "
			}}, env["HA_debug"] == "1")
		}
	}
	if env["HA_LOGFACILITY"] != "none" && env["PCMK_logfacility"] != "none" {
		if w, err := syslog.New(syslog.LOG_DAEMON|syslog.LOG_INFO, tag); err == nil {
			return newLogger(w, env["HA_debug"] == "1")
		}
	}
	return newLogger(stderr, false)
}

// lineWriter writes each record as one line with a prefix, in one write
// (appends of lines up to PIPE_BUF do not interleave with other writers').
type lineWriter struct {
	mu     sync.Mutex
	w      io.Writer
	prefix func() string
}

func (l *lineWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	line := append([]byte(l.prefix()), b...)
	if _, err := l.w.Write(line); err != nil {
		return 0, err
	}
	return len(b), nil
}
