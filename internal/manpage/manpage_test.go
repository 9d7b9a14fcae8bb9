package manpage

import (
	"strings"
	"testing"
)

func TestPage(t *testing.T) {
	p := New("fence_x", "8", "rampart 1.0", "rampart manual")
	p.Name("fence_x", "fence a node")
	p.Section("Options")
	p.Item("-a, --ip=[ip]", `the BMC's address\n`+"\n\nmore")
	p.Para(".starts with a dot\n\nsecond \"paragraph\"")
	p.Example("fence_x -o status", "'quoted")
	got := p.String()
	for _, want := range []string{
		".TH \"FENCE_X\" 8 \"\" \"rampart 1.0\" \"rampart manual\"\n",
		".SH \"NAME\"\nfence_x \\- fence a node\n",
		".TP\n.B \"\\-a, \\-\\-ip=[ip]\"\nthe BMC's address\\en\n.IP\nmore\n",
		".PP\n\\&.starts with a dot\n.PP\nsecond \"paragraph\"\n",
		".nf\n.RS 4\nfence_x \\-o status\n\\&'quoted\n.RE\n.fi\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("page lacks %q:\n%s", want, got)
		}
	}
}
