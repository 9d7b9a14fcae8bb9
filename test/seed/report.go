package seed

import (
	"fmt"
	"strings"
	"time"
)

// Result is one experiment's answer.
type Result struct {
	N        string // "1", "2b", …
	Title    string
	Question string
	Seed     string   // what happened in 2013
	Answers  []Answer // rampart's figures, for people
	// Figures are the same for programs: seconds, counts, CPU shares.
	Figures map[string]float64
	Verdict string // one line: the answer to the question
	Plot    string // the SVG's file name, beside the report
	Skipped string // why it did not run ("" = it ran)
	Err     string // why it failed to finish
	Series  Series `json:"-"`
	Took    time.Duration
}

// Answer is one figure of a result.
type Answer struct{ Label, Value string }

// Markdown is the report: a summary table with the 2013 figures, then a
// section per experiment with its figures and plot.
func Markdown(title string, results []Result, notes []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# %s\n\n", title)
	for _, n := range notes {
		fmt.Fprintf(&b, "%s\n", n)
	}
	b.WriteString("\n| # | experiment | 2013, pgpool-II + streaming replication | rampart, this run |\n|---|---|---|---|\n")
	for _, r := range results {
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", r.N, cell(r.Title), cell(r.Seed), cell(r.summary()))
	}
	for _, r := range results {
		fmt.Fprintf(&b, "\n## %s. %s\n\n*%s*\n\n", r.N, r.Title, r.Question)
		switch {
		case r.Skipped != "":
			fmt.Fprintf(&b, "Not run: %s\n", r.Skipped)
			continue
		case r.Err != "":
			fmt.Fprintf(&b, "**Did not finish**: %s\n\n", r.Err)
		}
		if r.Verdict != "" {
			fmt.Fprintf(&b, "**%s**\n\n", r.Verdict)
		}
		for _, a := range r.Answers {
			fmt.Fprintf(&b, "- %s: %s\n", a.Label, a.Value)
		}
		fmt.Fprintf(&b, "- 2013: %s\n", r.Seed)
		if r.Plot != "" {
			fmt.Fprintf(&b, "\n![%s](%s)\n", r.Title, r.Plot)
		}
	}
	return b.String()
}

func (r Result) summary() string {
	switch {
	case r.Skipped != "":
		return "not run: " + r.Skipped
	case r.Err != "":
		return "did not finish: " + r.Err
	}
	return r.Verdict
}

// cell keeps a table cell on one line.
func cell(s string) string {
	return strings.NewReplacer("|", "\\|", "\n", " ").Replace(s)
}

// Seconds writes d as seconds with a tenth ("3.2 s").
func Seconds(d time.Duration) string { return fmt.Sprintf("%.1f s", d.Seconds()) }
