package manpage

import (
	"fmt"
	"strings"
)

// Page is a manual page under construction.
type Page struct {
	b strings.Builder
}

// New starts the page NAME(section); source is the package and version
// ("rampart 1.2.0") and manual the manual's title. No date: pages built
// twice from the same source are the same bytes.
func New(name, section, source, manual string) *Page {
	p := &Page{}
	fmt.Fprintf(&p.b, ".TH %s %s \"\" %s %s\n", quote(strings.ToUpper(name)), section, quote(source), quote(manual))
	return p
}

// Name writes the NAME section: what whatis and apropos read.
func (p *Page) Name(name, summary string) {
	p.Section("NAME")
	fmt.Fprintf(&p.b, "%s \\- %s\n", Escape(name), Escape(summary))
}

// Section starts a section (.SH).
func (p *Page) Section(title string) {
	fmt.Fprintf(&p.b, ".SH %s\n", quote(strings.ToUpper(title)))
}

// Para writes a paragraph; blank lines in text start new ones.
func (p *Page) Para(text string) {
	for _, para := range strings.Split(strings.TrimSpace(text), "\n\n") {
		if para = strings.TrimSpace(para); para != "" {
			p.b.WriteString(".PP\n")
			p.text(para)
		}
	}
}

// Item writes a tagged paragraph: tag in bold, text indented below it
// (blank lines in text start new indented paragraphs).
func (p *Page) Item(tag, text string) {
	fmt.Fprintf(&p.b, ".TP\n.B %s\n", quote(tag))
	for i, para := range strings.Split(strings.TrimSpace(text), "\n\n") {
		if i > 0 {
			p.b.WriteString(".IP\n")
		}
		p.text(para)
	}
}

// Example writes lines as they are, unfilled.
func (p *Page) Example(lines ...string) {
	p.b.WriteString(".PP\n.nf\n.RS 4\n")
	for _, l := range lines {
		p.b.WriteString(Escape(l) + "\n")
	}
	p.b.WriteString(".RE\n.fi\n")
}

// String is the page's roff text.
func (p *Page) String() string { return p.b.String() }

// text writes filled text, a source line per input line.
func (p *Page) text(s string) {
	for _, line := range strings.Split(s, "\n") {
		if line = strings.TrimSpace(line); line != "" {
			p.b.WriteString(Escape(line) + "\n")
		}
	}
}

// Escape makes s plain text to roff: backslashes printed, hyphens as
// minus signs (what options are typed with), and a leading dot or quote
// not read as a request.
func Escape(s string) string {
	s = strings.NewReplacer(`\`, `\e`, "-", `\-`).Replace(s)
	if strings.HasPrefix(s, ".") || strings.HasPrefix(s, "'") {
		s = `\&` + s
	}
	return s
}

// quote is one macro argument.
func quote(s string) string {
	return `"` + strings.ReplaceAll(Escape(s), `"`, `\(dq`) + `"`
}
