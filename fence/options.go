package fence

import (
	"bufio"
	"fmt"
	"io"
	"strings"
)

// maxStdin bounds what an agent reads from stdin: options are a few
// hundred bytes.
const maxStdin = 64 << 10

// ParseStdin reads options as Pacemaker's fencer writes them: one
// name=value per line, in any order; blank lines and lines starting with #
// ignored; one pair of surrounding double quotes stripped; the last value
// of a name wins. Unknown names are returned as warnings (named, never
// with their value: it could be a password) and ignored.
func ParseStdin(r io.Reader, params []Param) (Options, []string, error) {
	o := Options{}
	var warnings []string
	sc := bufio.NewScanner(io.LimitReader(r, maxStdin))
	sc.Buffer(make([]byte, 4096), maxStdin)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, value, ok := strings.Cut(line, "=")
		name = strings.TrimSpace(name)
		if !ok || name == "" || strings.ContainsAny(name, " \t") {
			return nil, warnings, fmt.Errorf("stdin line %d: want name=value", n)
		}
		if len(value) >= 2 && value[0] == '"' && value[len(value)-1] == '"' {
			value = value[1 : len(value)-1]
		}
		p, known := byName(params, name)
		if !known {
			warnings = append(warnings, fmt.Sprintf("Parse error: Ignoring unknown option '%s'", name))
			continue
		}
		v, err := normalize(p, value)
		if err != nil {
			return nil, warnings, err
		}
		o[p.Name] = v
	}
	if err := sc.Err(); err != nil {
		return nil, warnings, fmt.Errorf("read options from stdin: %w", err)
	}
	return o, warnings, nil
}

// ParseArgs reads getopt-style options: -a VALUE, -aVALUE, --ip VALUE,
// --ip=VALUE, and booleans without a value (-v, --verbose). Unknown options
// are errors (fence-agents exit 1 on them).
func ParseArgs(args []string, params []Param) (Options, error) {
	o := Options{}
	for i := 0; i < len(args); i++ {
		a := args[i]
		var p Param
		var value string
		hasValue := false
		switch {
		case strings.HasPrefix(a, "--") && len(a) > 2:
			name, v, eq := strings.Cut(a[2:], "=")
			found := false
			for _, q := range params {
				if q.long() == name && !q.Hidden {
					p, found = q, true
				}
			}
			if !found {
				return nil, fmt.Errorf("unknown option --%s (see --help)", name)
			}
			value, hasValue = v, eq
		case strings.HasPrefix(a, "-") && len(a) > 1:
			found := false
			for _, q := range params {
				if q.Short == a[1] {
					p, found = q, true
				}
			}
			if !found {
				return nil, fmt.Errorf("unknown option %s (see --help)", a[:2])
			}
			if len(a) > 2 {
				value, hasValue = a[2:], true
			}
		default:
			return nil, fmt.Errorf("unexpected argument %q (options are -x VALUE or --name=VALUE; see --help)", a)
		}
		if p.Type == Boolean && !hasValue {
			value, hasValue = "1", true
		}
		if !hasValue {
			if i+1 >= len(args) {
				return nil, fmt.Errorf("option --%s needs a value", p.long())
			}
			i++
			value = args[i]
		}
		v, err := normalize(p, value)
		if err != nil {
			return nil, err
		}
		o[p.Name] = v
	}
	return o, nil
}

// withDefaults fills defaults and checks required options (action always
// has its default).
func withDefaults(o Options, params []Param) (Options, error) {
	out := Options{}
	for k, v := range o {
		out[k] = v
	}
	for _, p := range params {
		if _, set := out[p.Name]; !set && p.Default != "" {
			out[p.Name] = p.Default
		}
		if p.Required && out[p.Name] == "" {
			return nil, fmt.Errorf("required option %s (--%s) is missing", p.Name, p.long())
		}
	}
	return out, nil
}
