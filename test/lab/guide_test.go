package lab

import (
	"os"
	"reflect"
	"strings"
	"testing"
)

func TestParseGuide(t *testing.T) {
	text := "# Title\n\n```sh db1 db2\necho one\necho two\n```\n\n```\nnot run\n```\n\n" +
		"<!-- copy db1:/etc/x db2 db3:/etc/y -->\n\n````sh p1\necho ```\n````\n```ini\n[a]\n```\n"
	steps, err := ParseGuide(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	want := []Step{
		{Line: 3, Hosts: []string{"db1", "db2"}, Script: "echo one\necho two\n"},
		{Line: 12, From: "db1:/etc/x", To: []string{"db2:/etc/x", "db3:/etc/y"}},
		{Line: 14, Hosts: []string{"p1"}, Script: "echo ```\n"},
	}
	if !reflect.DeepEqual(steps, want) {
		t.Errorf("got  %+v\nwant %+v", steps, want)
	}
	for _, bad := range []string{
		"```sh\necho no host\n```\n",
		"```sh db1\n```\n",
		"```sh db1\necho never closed\n",
		"<!-- copy db1 db2 -->\n",
		"<!-- copy db1:/x db2:relative -->\n",
		"<!-- copy db1:/x -->\n",
	} {
		if _, err := ParseGuide(strings.NewReader(bad)); err == nil {
			t.Errorf("ParseGuide(%q): no error", bad)
		}
	}
}

// The guide in the repository parses, runs on the hosts its table names,
// and reads as Debian 12's with PostgreSQL 15.
func TestTheGuideParses(t *testing.T) {
	f, err := os.Open("../../docs/deploy.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	steps, err := ParseGuide(f)
	if err != nil {
		t.Fatal(err)
	}
	known := map[string]bool{}
	for _, h := range GuideHosts() {
		known[h.Name] = true
	}
	blocks := 0
	for _, s := range steps {
		hosts := s.Hosts
		if s.Script == "" {
			hosts = nil
			for _, d := range append([]string{s.From}, s.To...) {
				h, _, _ := strings.Cut(d, ":")
				hosts = append(hosts, h)
			}
		} else {
			blocks++
		}
		for _, h := range hosts {
			if !known[h] {
				t.Errorf("%s: host %q is not one of the guide's", s, h)
			}
		}
	}
	if blocks < 10 {
		t.Errorf("the guide has %d sh blocks; it should have the whole deployment", blocks)
	}
	for _, s := range ForRelease(steps, 15) {
		if strings.Contains(s.Script, "17") {
			t.Errorf("%s: still says 17 for Debian 12:\n%s", s, s.Script)
		}
	}
}
