package fence

import (
	"encoding/xml"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/rampart-ha/rampart/internal/manpage"
)

// WriteMetadata writes a's metadata in fence-agents' format (valid against
// their metadata.rng; what stonith_admin --metadata and pcs read): new
// parameter names with obsoletes=, the old ones again with deprecated="1".
func (a *Agent) WriteMetadata(w io.Writer) error {
	var b strings.Builder
	esc := func(s string) string {
		var e strings.Builder
		_ = xml.EscapeText(&e, []byte(s))
		return strings.ReplaceAll(e.String(), `"`, "&quot;")
	}
	fmt.Fprintf(&b, "<?xml version=\"1.0\" ?>\n<resource-agent name=\"%s\" shortdesc=\"%s\" >\n", esc(a.Name), esc(a.Short))
	fmt.Fprintf(&b, "<longdesc>%s</longdesc>\n<vendor-url>%s</vendor-url>\n<parameters>\n", esc(a.Long), esc(a.VendorURL))
	params := a.params()
	slices.SortStableFunc(params, func(x, y Param) int { return strings.Compare(x.Name, y.Name) })
	for _, p := range params {
		if p.Hidden {
			continue
		}
		names := []string{p.Name}
		names = append(names, p.Deprecated...)
		for i, name := range names {
			required := p.Required
			fmt.Fprintf(&b, "\t<parameter name=\"%s\" unique=\"0\" required=\"%s\"", esc(name), zeroOne(required))
			switch {
			case i > 0:
				b.WriteString(` deprecated="1"`)
			case len(p.Deprecated) > 0:
				fmt.Fprintf(&b, ` obsoletes="%s"`, esc(p.Deprecated[0]))
			}
			b.WriteString(">\n")
			fmt.Fprintf(&b, "\t\t<getopt mixed=\"%s\" />\n", esc(p.getopt()))
			def := ""
			if p.Default != "" {
				def = fmt.Sprintf(` default="%s"`, esc(p.Default))
			}
			if p.Type == Select {
				fmt.Fprintf(&b, "\t\t<content type=\"select\"%s >\n", def)
				for _, c := range p.Choices {
					fmt.Fprintf(&b, "\t\t\t<option value=\"%s\" />\n", esc(c))
				}
				b.WriteString("\t\t</content>\n")
			} else {
				fmt.Fprintf(&b, "\t\t<content type=\"%s\"%s />\n", p.Type, def)
			}
			fmt.Fprintf(&b, "\t\t<shortdesc lang=\"en\">%s</shortdesc>\n\t</parameter>\n", esc(p.Desc))
		}
	}
	b.WriteString("</parameters>\n<actions>\n")
	for _, act := range []string{"on", "off", "reboot", "status", "list", "list-status", "monitor", "metadata", "manpage", "validate-all"} {
		if act == "on" {
			b.WriteString("\t<action name=\"on\" automatic=\"0\"/>\n")
			continue
		}
		fmt.Fprintf(&b, "\t<action name=\"%s\" />\n", act)
	}
	b.WriteString("</actions>\n</resource-agent>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func zeroOne(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// getopt is the parameter's usage in getopt terms: "-a, --ip=[ip]".
func (p Param) getopt() string {
	long := "--" + p.long()
	if p.Type != Boolean {
		long += "=[" + p.Value + "]"
	}
	if p.Short != 0 {
		return "-" + string(p.Short) + ", " + long
	}
	return long
}

// Usage is --help's text.
func (a *Agent) Usage() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Usage: %s [options]\n       (or the options as name=value lines on stdin, as Pacemaker passes them)\n\n%s\n\n%s\n\nOptions:\n",
		a.Name, a.Short, a.Long)
	params := a.params()
	slices.SortStableFunc(params, func(x, y Param) int { return strings.Compare(x.long(), y.long()) })
	for _, p := range params {
		if p.Hidden {
			continue
		}
		def := ""
		if p.Default != "" {
			def = " (default " + p.Default + ")"
		}
		if len(p.Choices) > 0 {
			def += " [" + strings.Join(p.Choices, "|") + "]"
		}
		fmt.Fprintf(&b, "  %-34s %s%s\n", p.getopt(), p.Desc, def)
	}
	b.WriteString("\nActions: on, off, reboot, status (exit 0 on, 2 off, 1 unknown), monitor, list, list-status,\n" +
		"metadata, validate-all, manpage. Exit 0 on success, 1 on failure.\n")
	return b.String()
}

// ManPage is the agent's manual page (section 8, as fence-agents' pages);
// source names the package and its version.
func (a *Agent) ManPage(source string) string {
	p := manpage.New(a.Name, "8", source, "Fence agents")
	p.Name(a.Name, a.Short)
	p.Section("Synopsis")
	p.Example(a.Name+" [OPTIONS]", a.Name+" < OPTIONS-AS-NAME=VALUE-LINES")
	p.Section("Description")
	p.Para(a.Long)
	p.Para("Pacemaker's fencer runs the agent with its options as name=value lines on standard input; " +
		"on the command line they are the getopt options below. " +
		"Exit status: 0 on success; 1 on failure; status exits 2 when the node is off.")
	p.Section("Options")
	params := a.params()
	slices.SortStableFunc(params, func(x, y Param) int { return strings.Compare(x.long(), y.long()) })
	for _, prm := range params {
		if prm.Hidden {
			continue
		}
		text := prm.Desc
		if prm.Default != "" {
			text += " (default " + prm.Default + ")"
		}
		if len(prm.Choices) > 0 {
			text += " One of: " + strings.Join(prm.Choices, ", ") + "."
		}
		names := prm.Name
		if len(prm.Deprecated) > 0 {
			names += "; formerly " + strings.Join(prm.Deprecated, ", ")
		}
		p.Item(prm.getopt(), strings.TrimSuffix(text, ".")+".\nOn standard input: "+names+".")
	}
	p.Section("Actions")
	for _, act := range [][2]string{
		{"on", "Power the node on."}, {"off", "Power the node off."},
		{"reboot", "Power the node off, then on (the default action)."},
		{"status", "Report the node's power state."}, {"monitor", "Check that the BMC answers."},
		{"list", "List the nodes this device controls."}, {"list-status", "List them with their power state."},
		{"metadata", "Print the agent's XML metadata."}, {"manpage", "Print the metadata (as fence-agents do)."},
		{"validate-all", "Check the options, change nothing."},
	} {
		p.Item(act[0], act[1])
	}
	p.Section("See also")
	p.Para("stonith_admin(8), pacemaker-fenced(7), rampart(1)")
	return p.String()
}
