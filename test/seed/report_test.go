package seed

import (
	"strings"
	"testing"
	"time"
)

func TestMarkdown(t *testing.T) {
	md := Markdown("The seed, again", []Result{
		{N: "1", Title: "Primary host hangs", Question: "Does service continue?", Seed: "about 1 minute",
			Verdict: "first write after 9.0 s | full after 10.2 s", Answers: []Answer{{"client errors", "3"}}, Plot: "exp1.svg", Took: time.Minute},
		{N: "4", Title: "Read scale-out", Skipped: "needs the pooler pair"},
	}, []string{"Lab: 3 database hosts."})
	for _, want := range []string{
		"# The seed, again\n",
		"| 1 | Primary host hangs | about 1 minute | first write after 9.0 s \\| full after 10.2 s |",
		"| 4 | Read scale-out |  | not run: needs the pooler pair |",
		"## 1. Primary host hangs\n\n*Does service continue?*",
		"- client errors: 3\n", "![Primary host hangs](exp1.svg)", "Not run: needs the pooler pair",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
}
