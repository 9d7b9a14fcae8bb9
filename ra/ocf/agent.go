package ocf

import (
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/rampart-ha/rampart/internal/manpage"
)

// Agent is a resource agent: its description, its parameter table and its
// actions.
type Agent struct {
	Name    string // the type in ocf:PROVIDER:NAME
	Version string // the agent's own version
	Short   string
	Long    string
	Params  []Param
	// Ops are the actions meta-data advertises, with default timeouts and
	// intervals. Every monitor op needs an interval of its own.
	Ops []Op
	// Actions implement the actions Pacemaker calls; meta-data, usage and
	// parameter validation are the framework's. validate-all, when present
	// here, runs after parameter validation.
	Actions map[string]Action
}

// Op is one action entry of meta-data.
type Op struct {
	Name     string
	Timeout  time.Duration
	Interval time.Duration // recurring monitors only
	Role     Role          // monitor of one role only
	Depth    int
}

// Action runs one action. It returns the status to exit with (Success,
// NotRunning, RunningPromoted, …) or an error, whose status StatusOf tells
// (an *Error sets both status and exit reason).
type Action func(ctx context.Context, r *Request) (Status, error)

// Request is what an action gets.
type Request struct {
	Action string
	Env    Env
	Values Values
	Log    *slog.Logger
}

// deadlineMargin leaves time, before Pacemaker's own timeout kills the
// agent, to report the reason.
func deadlineMargin(timeout time.Duration) time.Duration {
	return min(timeout/10, 2*time.Second)
}

// Run runs the action named by args[1] (args[0] is the program) with the
// environment environ, and returns the exit code. It is the one place where
// an agent's errors become exit codes and exit reasons.
func Run(ctx context.Context, a *Agent, args, environ []string, stdout, stderr io.Writer, log *slog.Logger) Status {
	if len(args) < 2 {
		fmt.Fprint(stderr, a.Usage())
		return ErrArgs
	}
	action := args[1]
	switch action {
	case "meta-data":
		if err := a.WriteMetaData(stdout); err != nil {
			fmt.Fprintln(stderr, "meta-data:", err)
			return ErrGeneric
		}
		return Success
	case "usage", "help", "--help", "-h":
		fmt.Fprint(stdout, a.Usage())
		return Success
	}
	log = log.With("action", action)
	env, err := ParseEnv(environ)
	if err != nil {
		return fail(stderr, environ, log, err)
	}
	log = log.With("resource", env.Instance)
	values, err := Validate(a.Params, env.Params)
	if err != nil {
		return fail(stderr, environ, log, err)
	}
	fn, ok := a.Actions[action]
	if !ok {
		if action == "validate-all" {
			return Success
		}
		return fail(stderr, environ, log, Errorf(ErrUnimplemented, "action %q is not implemented by %s", action, a.Name))
	}
	if env.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, env.Timeout-deadlineMargin(env.Timeout))
		defer cancel()
	}
	start := time.Now()
	status, err := fn(ctx, &Request{Action: action, Env: env, Values: values, Log: log})
	if err != nil {
		return fail(stderr, environ, log, err)
	}
	log.Debug("action done", "status", status.String(), "elapsed", time.Since(start).Round(time.Millisecond).String())
	return status
}

// fail reports err as the exit reason and returns its status.
func fail(stderr io.Writer, environ []string, log *slog.Logger, err error) Status {
	status := StatusOf(err)
	prefix := "ocf-exit-reason:"
	for _, kv := range environ {
		if p, ok := strings.CutPrefix(kv, "OCF_EXIT_REASON_PREFIX="); ok && p != "" {
			prefix = p
		}
	}
	reason := strings.ReplaceAll(err.Error(), "\n", " ")
	// Pacemaker cuts an exit reason at its first backquote (crm_mon showed
	// "rejoin it with `"): commands in the reason are quoted with ' there;
	// the log keeps them as written.
	fmt.Fprintln(stderr, prefix+strings.ReplaceAll(reason, "`", "'"))
	log.Error("action failed", "status", status.String(), "reason", reason)
	return status
}

// Usage is the usage text.
func (a *Agent) Usage() string {
	names := []string{"meta-data", "validate-all"}
	for _, op := range a.Ops {
		if !slices.Contains(names, op.Name) {
			names = append(names, op.Name)
		}
	}
	return fmt.Sprintf("usage: %s {%s}\n\n%s\nThis is an OCF resource agent: Pacemaker runs it with its parameters in OCF_RESKEY_* variables.\nSee `%s meta-data` for the parameters.\n",
		a.Name, strings.Join(names, "|"), a.Short, a.Name)
}

// Meta-data XML, in the shape of resource-agents' ra-api-1.dtd.
type xmlAgent struct {
	XMLName    xml.Name   `xml:"resource-agent"`
	Name       string     `xml:"name,attr"`
	Version    string     `xml:"version,attr,omitempty"`
	APIVersion string     `xml:"version"`
	Long       xmlDesc    `xml:"longdesc"`
	Short      xmlDesc    `xml:"shortdesc"`
	Params     []xmlParam `xml:"parameters>parameter"`
	Actions    []xmlOp    `xml:"actions>action"`
}

type xmlDesc struct {
	Lang string `xml:"lang,attr"`
	Text string `xml:",chardata"`
}

type xmlParam struct {
	Name     string     `xml:"name,attr"`
	Unique   string     `xml:"unique,attr"`
	Required string     `xml:"required,attr"`
	Long     xmlDesc    `xml:"longdesc"`
	Short    xmlDesc    `xml:"shortdesc"`
	Content  xmlContent `xml:"content"`
}

type xmlContent struct {
	Type    string `xml:"type,attr"`
	Default string `xml:"default,attr,omitempty"`
}

type xmlOp struct {
	Name     string `xml:"name,attr"`
	Timeout  string `xml:"timeout,attr"`
	Interval string `xml:"interval,attr,omitempty"`
	Role     string `xml:"role,attr,omitempty"`
	Depth    string `xml:"depth,attr,omitempty"`
}

func xmlFlag(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// FormatTime writes a duration the way Pacemaker reads it: "500ms", "20s".
func FormatTime(d time.Duration) string {
	if d%time.Second != 0 {
		return fmt.Sprintf("%dms", d.Milliseconds())
	}
	return fmt.Sprintf("%ds", int64(d/time.Second))
}

// WriteMetaData writes the agent's meta-data XML.
func (a *Agent) WriteMetaData(w io.Writer) error {
	x := xmlAgent{
		Name: a.Name, Version: a.Version, APIVersion: "1.1",
		Long: xmlDesc{"en", a.Long}, Short: xmlDesc{"en", a.Short},
	}
	for _, p := range a.Params {
		long := p.Long
		if len(p.Choices) > 0 {
			long += " Allowed values: " + strings.Join(p.Choices, ", ") + "."
		}
		x.Params = append(x.Params, xmlParam{
			Name: p.Name, Unique: xmlFlag(p.Unique), Required: xmlFlag(p.Required),
			Long: xmlDesc{"en", long}, Short: xmlDesc{"en", p.Short},
			Content: xmlContent{Type: string(p.Type), Default: p.Default},
		})
	}
	ops := append([]Op{}, a.Ops...)
	for _, name := range []string{"meta-data", "validate-all"} {
		if !a.hasOp(name) {
			ops = append(ops, Op{Name: name, Timeout: 5 * time.Second})
		}
	}
	for _, op := range ops {
		xo := xmlOp{Name: op.Name, Timeout: FormatTime(op.Timeout), Role: string(op.Role)}
		if op.Interval > 0 {
			xo.Interval = FormatTime(op.Interval)
		}
		if op.Name == "monitor" {
			xo.Depth = fmt.Sprint(op.Depth)
		}
		x.Actions = append(x.Actions, xo)
	}
	b, err := xml.MarshalIndent(x, "", "  ")
	if err != nil {
		return err
	}
	// encoding/xml never self-closes; empty elements read better that way.
	text := strings.NewReplacer("></content>", "/>", "></action>", "/>").Replace(string(b))
	_, err = fmt.Fprintf(w, "<?xml version=\"1.0\"?>\n<!DOCTYPE resource-agent SYSTEM \"ra-api-1.dtd\">\n%s\n", text)
	return err
}

func (a *Agent) hasOp(name string) bool {
	for _, op := range a.Ops {
		if op.Name == name {
			return true
		}
	}
	return false
}

// ManPage is the agent's manual page, ocf_PROVIDER_NAME(7) as
// resource-agents name theirs; source names the package and its version.
func (a *Agent) ManPage(provider, source string) string {
	name := "ocf_" + provider + "_" + a.Name
	p := manpage.New(name, "7", source, "OCF resource agents")
	p.Name(name, a.Short)
	p.Section("Synopsis")
	p.Example(a.Usage()[:strings.IndexByte(a.Usage(), '\n')])
	p.Section("Description")
	p.Para(a.Long)
	p.Section("Supported parameters")
	for _, prm := range a.Params {
		text := strings.TrimSuffix(prm.Short, ".") + ".\n\n" + prm.Long
		if len(prm.Choices) > 0 {
			text += "\n\nAllowed values: " + strings.Join(prm.Choices, ", ") + "."
		}
		var facts []string
		facts = append(facts, "type "+string(prm.Type))
		if prm.Default != "" {
			facts = append(facts, "default "+prm.Default)
		}
		if prm.Required {
			facts = append(facts, "required")
		}
		if prm.Unique {
			facts = append(facts, "unique")
		}
		p.Item(prm.Name, text+"\n\n("+strings.Join(facts, ", ")+")")
	}
	p.Section("Supported actions")
	for _, op := range a.Ops {
		text := "timeout " + FormatTime(op.Timeout)
		if op.Interval > 0 {
			text += ", interval " + FormatTime(op.Interval)
		}
		if op.Role != "" {
			text += ", role " + string(op.Role)
		}
		p.Item(op.Name, text)
	}
	if !a.hasOp("meta-data") {
		p.Item("meta-data", "Print the agent's meta-data XML.")
	}
	if !a.hasOp("validate-all") {
		p.Item("validate-all", "Check the parameters, change nothing.")
	}
	p.Section("Example")
	p.Example("crm configure primitive p_"+a.Name+" ocf:"+provider+":"+a.Name+" params ...",
		"crm ra info ocf:"+provider+":"+a.Name)
	p.Section("See also")
	p.Para("crm(8), pcs(8), crm_resource(8), rampart(1)")
	return p.String()
}
