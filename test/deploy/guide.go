package deploy

import (
	"bufio"
	"fmt"
	"io"
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
