package fence

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Type is a parameter's content type in metadata.rng.
type Type string

// Content types.
const (
	String  Type = "string"
	Boolean Type = "boolean"
	Integer Type = "integer"
	Second  Type = "second"
	Select  Type = "select"
)

// Param is one option of an agent.
type Param struct {
	Name       string   // the stdin name (ip, username, …)
	Deprecated []string // older stdin names still accepted (ipaddr, login, …)
	Short      byte     // getopt letter, 0 for none
	Long       string   // getopt long name; "" is Name with _ as -
	Value      string   // getopt value placeholder ("ip" in --ip=[ip]); "" for booleans
	Type       Type
	Default    string
	Required   bool
	Choices    []string // Select
	Secret     bool     // never printed, never logged
	Desc       string
	// Hidden parameters are accepted but not in the metadata (nodename).
	Hidden bool
}

func (p Param) long() string {
	if p.Long != "" {
		return p.Long
	}
	return strings.ReplaceAll(p.Name, "_", "-")
}

// Common parameters every agent has, as fencing.py names them.
var Common = []Param{
	{Name: "action", Short: 'o', Value: "action", Type: String, Default: "reboot", Required: true, Desc: "Fencing action"},
	{Name: "plug", Deprecated: []string{"port"}, Short: 'n', Value: "id", Type: String,
		Desc: "The node to act on (Pacemaker passes the target's name or its alias from pcmk_host_map)"},
	{Name: "nodename", Type: String, Hidden: true, Desc: "The target's node name (Pacemaker passes it always)"},
	{Name: "nodeid", Type: String, Hidden: true, Desc: "The target's node id"},
	{Name: "delay", Value: "seconds", Type: Second, Default: "0", Desc: "Wait X seconds before fencing is started"},
	{Name: "power_timeout", Value: "seconds", Type: Second, Default: "20", Desc: "Test X seconds for status change after ON/OFF"},
	{Name: "power_wait", Value: "seconds", Type: Second, Default: "2", Desc: "Wait X seconds after issuing ON/OFF"},
	{Name: "verbose", Short: 'v', Type: Boolean, Desc: "Verbose mode: say what is done on stderr"},
}

// Options are the parsed options, by stdin name; booleans hold "1" or "0".
type Options map[string]string

// Bool returns a boolean option.
func (o Options) Bool(name string) bool { return o[name] == "1" }

// Duration returns a Second option.
func (o Options) Duration(name string) time.Duration {
	f, _ := strconv.ParseFloat(o[name], 64)
	return time.Duration(f * float64(time.Second))
}

// Int returns an Integer option.
func (o Options) Int(name string) int {
	n, _ := strconv.Atoi(o[name])
	return n
}

// byName finds a parameter by its stdin name, a deprecated name, or its
// long option with - for _ (fencing.py accepts all three on stdin).
func byName(params []Param, name string) (Param, bool) {
	for _, p := range params {
		if p.Name == name || slices.Contains(p.Deprecated, name) || p.long() == strings.ReplaceAll(name, "_", "-") {
			return p, true
		}
	}
	return Param{}, false
}

// normalize checks one value against its parameter and returns the stored
// form (booleans as "1"/"0").
func normalize(p Param, v string) (string, error) {
	switch p.Type {
	case Boolean:
		switch strings.ToLower(v) {
		case "", "1", "yes", "on", "true":
			return "1", nil
		case "0", "no", "off", "false":
			return "0", nil
		}
		return "", fmt.Errorf("%s=%q: not a boolean (use 1/0, yes/no, on/off, true/false)", p.Name, v)
	case Integer:
		if _, err := strconv.Atoi(v); err != nil {
			return "", fmt.Errorf("%s=%q: not an integer", p.Name, v)
		}
	case Second:
		if f, err := strconv.ParseFloat(v, 64); err != nil || f < 0 || f > 86400 {
			return "", fmt.Errorf("%s=%q: not a number of seconds", p.Name, v)
		}
	case Select:
		if !slices.Contains(p.Choices, v) {
			return "", fmt.Errorf("%s=%q: not one of %s", p.Name, v, strings.Join(p.Choices, ", "))
		}
	}
	if strings.ContainsAny(v, "\x00\n") {
		return "", fmt.Errorf("%s: value contains a newline or NUL", p.Name)
	}
	return v, nil
}
