package ocf

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Type is a parameter's content type in meta-data (ra-api-1.dtd knows
// string, integer, boolean and time).
type Type string

// Parameter types.
const (
	String  Type = "string"
	Integer Type = "integer"
	Boolean Type = "boolean"
	Time    Type = "time" // a duration: "10s", "500ms", "2min"; a bare number is seconds
)

// Param describes one parameter: meta-data is generated from it and values
// are validated against it.
type Param struct {
	Name     string
	Type     Type
	Default  string // "" for none
	Required bool
	Unique   bool // must differ between resources of this agent
	Short    string
	Long     string
	// Choices, when set, are the only values allowed (listed in Long too).
	Choices []string
	// Min and Max bound an integer (both zero: unbounded).
	Min, Max int64
	// Check validates further; its error message names no parameter (the
	// caller adds it).
	Check func(value string) error
}

// Values are validated parameter values, defaults applied.
type Values map[string]string

// String returns the value of name.
func (v Values) String(name string) string { return v[name] }

// Int returns the integer value of name (validated already).
func (v Values) Int(name string) int64 {
	n, _ := strconv.ParseInt(v[name], 10, 64)
	return n
}

// Bool returns the boolean value of name (validated already).
func (v Values) Bool(name string) bool {
	b, _ := ParseBool(v[name])
	return b
}

// Duration returns the time value of name (validated already).
func (v Values) Duration(name string) time.Duration {
	d, _ := ParseTime(v[name])
	return d
}

// ParseBool accepts the spellings resource agents accept (ocf_is_true).
func ParseBool(s string) (bool, error) {
	switch strings.ToLower(s) {
	case "1", "true", "yes", "on", "y":
		return true, nil
	case "0", "false", "no", "off", "n":
		return false, nil
	}
	return false, fmt.Errorf("%q is not a boolean (use true or false)", s)
}

// ParseTime parses a Pacemaker time: a bare number is seconds; units ms,
// s, sec, m, min, h, hr.
func ParseTime(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	i := strings.IndexFunc(s, func(r rune) bool { return r < '0' || r > '9' })
	num, unit := s, ""
	if i >= 0 {
		num, unit = s[:i], strings.TrimSpace(s[i:])
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 || n > 1e9 {
		return 0, fmt.Errorf("%q is not a time (use e.g. 10s, 500ms, 2min)", s)
	}
	units := map[string]time.Duration{
		"": time.Second, "ms": time.Millisecond, "msec": time.Millisecond, "s": time.Second, "sec": time.Second,
		"m": time.Minute, "min": time.Minute, "h": time.Hour, "hr": time.Hour,
	}
	u, ok := units[strings.ToLower(unit)]
	if !ok {
		return 0, fmt.Errorf("%q: unknown unit %q (use ms, s, min or h)", s, unit)
	}
	return time.Duration(n) * u, nil
}

// Pacemaker passes this one to every agent; it is no parameter of ours.
const featureSetKey = "crm_feature_set"

// Validate checks raw values (from OCF_RESKEY_*) against params and returns
// them with defaults applied. The error names the first bad parameter and
// has status ErrConfigured; it is a pure function of its arguments.
func Validate(params []Param, raw map[string]string) (Values, error) {
	v, errs := ValidateEach(params, raw)
	if len(errs) > 0 {
		return nil, errs[0]
	}
	return v, nil
}

// ValidateEach checks raw values as Validate does without stopping at the
// first bad one: it returns the values of the good parameters, defaults
// applied, and an error (status ErrConfigured) for each bad one, unknown
// names first, in the order Validate finds them. A bad parameter is left
// out of the values, not given its default: this is for showing a
// configuration an agent would refuse (rampart status), not for running
// with it.
func ValidateEach(params []Param, raw map[string]string) (Values, []error) {
	known := map[string]Param{}
	for _, p := range params {
		known[p.Name] = p
	}
	var errs []error
	var unknown []string
	for name := range raw {
		if _, ok := known[name]; !ok && name != featureSetKey {
			unknown = append(unknown, name)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		errs = append(errs, Errorf(ErrConfigured, "unknown parameter %s: see meta-data for the parameters of this agent", strings.Join(unknown, ", ")))
	}
	v := Values{}
	for _, p := range params {
		value, set := raw[p.Name]
		if !set || value == "" {
			if p.Required {
				errs = append(errs, Errorf(ErrConfigured, "parameter %s is required: %s", p.Name, p.Short))
				continue
			}
			value = p.Default
		}
		if value != "" {
			if err := checkValue(p, value); err != nil {
				errs = append(errs, Errorf(ErrConfigured, "parameter %s=%q: %v", p.Name, value, err))
				continue
			}
		}
		v[p.Name] = value
	}
	return v, errs
}

func checkValue(p Param, value string) error {
	switch p.Type {
	case Integer:
		n, err := strconv.ParseInt(value, 10, 64)
		if err != nil {
			return fmt.Errorf("not an integer")
		}
		if (p.Min != 0 || p.Max != 0) && (n < p.Min || n > p.Max) {
			return fmt.Errorf("out of range %d to %d", p.Min, p.Max)
		}
	case Boolean:
		if _, err := ParseBool(value); err != nil {
			return err
		}
	case Time:
		if _, err := ParseTime(value); err != nil {
			return err
		}
	}
	if len(p.Choices) > 0 && !slices.Contains(p.Choices, value) {
		return fmt.Errorf("use one of %s", strings.Join(p.Choices, ", "))
	}
	if p.Check != nil {
		return p.Check(value)
	}
	return nil
}
