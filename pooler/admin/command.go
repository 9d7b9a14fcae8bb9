package admin

import (
	"fmt"
	"strings"
	"time"
)

// Verb is what a console command does.
type Verb string

const (
	Show   Verb = "SHOW"
	Drain  Verb = "DRAIN"  // no new transactions to the node; running ones finish
	Detach Verb = "DETACH" // drained, then its server connections closed; out until ATTACH
	Attach Verb = "ATTACH" // back in rotation
	Pause  Verb = "PAUSE"  // hold new transactions (all nodes); returns once running ones finished
	Hold   Verb = "HOLD"   // PAUSE for a switchover: bounded, and released when the console session ends
	Resume Verb = "RESUME" // look at the nodes again, then let held transactions go on
	Reload Verb = "RELOAD"
)

// Shows are the SHOW subjects.
var Shows = []string{"NODES", "POOLS", "CLIENTS", "SERVERS", "STATS", "CONFIG", "WATCHDOG"}

// Command is one parsed console command.
type Command struct {
	Verb Verb
	Arg  string        // the SHOW subject (upper case) or the node name
	For  time.Duration // HOLD: how long running transactions may take to finish
}

// Parse parses one console command: case does not matter, a trailing ;
// is allowed, node names are as written.
func Parse(sql string) (Command, error) {
	f := strings.Fields(strings.TrimSuffix(strings.TrimSpace(sql), ";"))
	if len(f) == 0 {
		return Command{}, fmt.Errorf("empty command: try SHOW NODES")
	}
	v := Verb(strings.ToUpper(f[0]))
	switch v {
	case Show:
		if len(f) != 2 {
			return Command{}, fmt.Errorf("SHOW takes one of %s", strings.Join(Shows, ", "))
		}
		what := strings.ToUpper(f[1])
		for _, s := range Shows {
			if s == what {
				return Command{Verb: Show, Arg: what}, nil
			}
		}
		return Command{}, fmt.Errorf("SHOW %s: unknown; use one of %s", f[1], strings.Join(Shows, ", "))
	case Drain, Detach, Attach:
		if len(f) != 2 {
			return Command{}, fmt.Errorf("%s takes a node name, e.g. %s n2", v, v)
		}
		return Command{Verb: v, Arg: f[1]}, nil
	case Hold:
		if len(f) != 2 {
			return Command{}, fmt.Errorf("HOLD takes how long running transactions may take to finish, e.g. HOLD 10s")
		}
		d, err := time.ParseDuration(strings.Trim(f[1], "'"))
		if err != nil || d <= 0 || d > time.Hour {
			return Command{}, fmt.Errorf("HOLD %s: want a duration from 1ms to 1h, e.g. HOLD 10s", f[1])
		}
		return Command{Verb: Hold, For: d}, nil
	case Pause, Resume, Reload:
		if len(f) != 1 {
			return Command{}, fmt.Errorf("%s takes no argument", v)
		}
		return Command{Verb: v}, nil
	}
	return Command{}, fmt.Errorf("unknown command %q: use SHOW, DRAIN, DETACH, ATTACH, PAUSE, HOLD, RESUME or RELOAD", f[0])
}
