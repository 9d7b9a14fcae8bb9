package lab

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
)

// The guide's machine-readable parts are ones a reader sees as ordinary
// Markdown: a fenced block whose info string is "sh" followed by host
// names runs on those hosts; an HTML comment "<!-- copy HOST:PATH DEST… -->"
// (DEST: HOST, or HOST:PATH for another path) is a copy the text around it
// asks the operator to make, owner and mode kept.

// Step is one thing the guide has the operator do.
type Step struct {
	Line  int      // where it starts in the guide
	Hosts []string // a block's hosts
	// Script is a block's text; empty for a copy.
	Script string
	// A copy: From is HOST:PATH, To its destinations as HOST:PATH.
	From string
	To   []string
}

func (s Step) String() string {
	if s.Script != "" {
		return fmt.Sprintf("line %d on %s", s.Line, strings.Join(s.Hosts, " "))
	}
	return fmt.Sprintf("line %d copy %s to %s", s.Line, s.From, strings.Join(s.To, " "))
}

// ParseGuide reads the steps of a guide in order.
func ParseGuide(r io.Reader) ([]Step, error) {
	var steps []Step
	sc := bufio.NewScanner(r)
	n := 0
	var block *Step
	var fence string
	for sc.Scan() {
		n++
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		if block != nil || fence != "" {
			if trimmed == fence {
				if block != nil {
					if strings.TrimSpace(block.Script) == "" {
						return nil, fmt.Errorf("guide line %d: an empty sh block", block.Line)
					}
					steps = append(steps, *block)
				}
				block, fence = nil, ""
				continue
			}
			if block != nil {
				block.Script += line + "\n"
			}
			continue
		}
		if strings.HasPrefix(trimmed, "```") {
			fence = trimmed[:strings.LastIndex(trimmed, "`")+1]
			info := strings.Fields(strings.TrimPrefix(trimmed, fence))
			if len(info) > 0 && info[0] == "sh" {
				if len(info) == 1 {
					return nil, fmt.Errorf("guide line %d: an sh block names no host to run on (```sh HOST…)", n)
				}
				block = &Step{Line: n, Hosts: info[1:]}
			}
			continue
		}
		if rest, ok := strings.CutPrefix(trimmed, "<!-- copy "); ok {
			words := strings.Fields(strings.TrimSuffix(rest, "-->"))
			if len(words) < 2 || !strings.HasSuffix(rest, "-->") {
				return nil, fmt.Errorf("guide line %d: want <!-- copy HOST:PATH DEST… -->", n)
			}
			host, path, ok := strings.Cut(words[0], ":")
			if !ok || host == "" || !strings.HasPrefix(path, "/") {
				return nil, fmt.Errorf("guide line %d: copy from %q: want HOST:/PATH", n, words[0])
			}
			st := Step{Line: n, From: words[0]}
			for _, d := range words[1:] {
				if !strings.Contains(d, ":") {
					d += ":" + path
				}
				if h, p, _ := strings.Cut(d, ":"); h == "" || !strings.HasPrefix(p, "/") {
					return nil, fmt.Errorf("guide line %d: copy to %q: want HOST or HOST:/PATH", n, d)
				}
				st.To = append(st.To, d)
			}
			steps = append(steps, st)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if block != nil || fence != "" {
		return nil, fmt.Errorf("guide: a block opened and never closed")
	}
	return steps, nil
}

// ForRelease adapts the guide's steps, written for Debian 13's
// PostgreSQL 17, to a release whose PostgreSQL is major (the guide says:
// read 15 for 17 on Debian 12).
func ForRelease(steps []Step, major int) []Step {
	if major == 17 {
		return steps
	}
	v := fmt.Sprint(major)
	r := strings.NewReplacer("/17/", "/"+v+"/", " 17 main", " "+v+" main", "@17-", "@"+v+"-", "postgresql-17", "postgresql-"+v)
	out := make([]Step, len(steps))
	for i, s := range steps {
		s.Script = r.Replace(s.Script)
		out[i] = s
	}
	return out
}

// GuideHosts are the hosts docs/deploy.md deploys, with its addresses;
// each database host's BMC takes the guide's example password.
func GuideHosts() []SiteHost {
	db := func(n int) SiteHost {
		name := fmt.Sprintf("db%d", n)
		return SiteHost{Name: name, Addr: netip.MustParsePrefix(fmt.Sprintf("10.0.0.1%d/24", n)),
			Mgmt: netip.MustParsePrefix(fmt.Sprintf("10.1.0.1%d/24", n)), BMC: netip.MustParseAddr(fmt.Sprintf("10.1.0.11%d", n)),
			BMCPassword: "ipmi-pass-" + name}
	}
	return []SiteHost{
		db(1), db(2), db(3),
		{Name: "pooler1", Addr: netip.MustParsePrefix("10.0.0.21/24")},
		{Name: "pooler2", Addr: netip.MustParsePrefix("10.0.0.22/24")},
	}
}

// GuideClient is the address a site of GuideHosts gives its own namespace.
var GuideClient = netip.MustParsePrefix("10.0.0.2/24")

// PrepareForGuide makes each host what the guide starts from: deb in
// root's home folder; the poolers without the database services (a
// site's hosts share a root that has them).
func (s *Site) PrepareForGuide(ctx context.Context, deb string) error {
	b, err := os.ReadFile(deb)
	if err != nil {
		return err
	}
	for _, h := range s.cfg.Hosts {
		if err := s.WriteFile(ctx, h.Name, "/root/"+filepath.Base(deb), "root:root", "0644", b); err != nil {
			return err
		}
		if !h.BMC.IsValid() {
			if _, err := s.hosts[h.Name].Output(ctx, "systemctl", "disable", "--now", "corosync", "pacemaker", "postgresql"); err != nil {
				return err
			}
		}
	}
	return nil
}

// RootLogin is argv with a root login's environment (not the caller's).
func RootLogin(argv ...string) []string {
	return append([]string{"env", "-i", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "LANG=C.UTF-8",
		"DEBIAN_FRONTEND=noninteractive"}, argv...)
}

// WriteFile writes content to path on host, owned by owner (user:group)
// with mode, making its folder: commands run inside the host (its user
// names are its own), each an argument vector.
func (s *Site) WriteFile(ctx context.Context, host, path, owner, mode string, content []byte) error {
	h, err := s.hostNamed(host)
	if err != nil {
		return err
	}
	for _, argv := range [][]string{{"mkdir", "-p", filepath.Dir(path)}, {"tee", path}, {"chown", owner, path}, {"chmod", mode, path}} {
		cmd, err := h.Command(ctx, argv...)
		if err != nil {
			return err
		}
		if argv[0] == "tee" {
			cmd.Stdin = bytes.NewReader(content)
		}
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil { // tee's copy on stdout goes nowhere
			return fmt.Errorf("write %s on %s: %s: %w: %s", path, host, argv[0], err, stderr.String())
		}
	}
	return nil
}

// RunStep does one step of a guide on the site, as its operator would (a
// root login, in root's home folder), and returns what it printed.
func (s *Site) RunStep(ctx context.Context, st Step) (string, error) {
	if st.Script == "" {
		from, path, _ := strings.Cut(st.From, ":")
		h, err := s.hostNamed(from)
		if err != nil {
			return "", fmt.Errorf("guide %s: %w", st, err)
		}
		content, err := h.Output(ctx, "cat", path)
		if err != nil {
			return "", fmt.Errorf("guide %s: %w", st, err)
		}
		meta, err := h.Output(ctx, "stat", "-c", "%U:%G %a", path)
		if err != nil {
			return "", fmt.Errorf("guide %s: %w", st, err)
		}
		f := strings.Fields(meta)
		for _, to := range st.To {
			host, dest, _ := strings.Cut(to, ":")
			if err := s.WriteFile(ctx, host, dest, f[0], f[1], []byte(content)); err != nil {
				return "", fmt.Errorf("guide %s: %w", st, err)
			}
		}
		return "", nil
	}
	var all strings.Builder
	for _, host := range st.Hosts {
		h, err := s.hostNamed(host)
		if err != nil {
			return all.String(), fmt.Errorf("guide %s: %w", st, err)
		}
		cmd, err := h.Command(ctx, RootLogin("bash", "-euo", "pipefail", "-c", "cd /root\n"+st.Script)...)
		if err != nil {
			return all.String(), fmt.Errorf("guide %s: %w", st, err)
		}
		out, err := cmd.CombinedOutput()
		fmt.Fprintf(&all, "--- %s:\n%s", host, out)
		if err != nil {
			return all.String(), fmt.Errorf("guide %s failed on %s: %w", st, host, err)
		}
	}
	return all.String(), nil
}

// hostNamed is the named host, if the site has it.
func (s *Site) hostNamed(name string) (*SystemdHost, error) {
	if h := s.hosts[name]; h != nil {
		return h, nil
	}
	return nil, fmt.Errorf("site %s has no host %q", s.cfg.ID, name)
}
