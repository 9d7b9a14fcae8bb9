package seed

import (
	"encoding/xml"
	"strings"
	"testing"
	"time"
)

func TestSVG(t *testing.T) {
	c := &clock{time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)}
	r := NewRecorder(c.now)
	for i := 0; i < 400; i++ {
		r.Count(Write)
		if i%2 == 0 {
			r.Count(Read)
		}
		if i == 200 {
			r.Mark("primary frozen <n1>")
			r.Count(Error)
		}
		c.t = c.t.Add(50 * time.Millisecond)
	}
	svg := SVG("Experiment 1 & a hang", r.Snapshot())
	// Well-formed XML, with both lines, the mark and the error tick.
	d := xml.NewDecoder(strings.NewReader(svg))
	polylines := 0
	for {
		tok, err := d.Token()
		if err != nil {
			if err.Error() != "EOF" {
				t.Fatalf("not well-formed: %v", err)
			}
			break
		}
		if se, ok := tok.(xml.StartElement); ok {
			// XML forbids an attribute twice (Go's decoder lets it pass).
			seen := map[string]bool{}
			for _, a := range se.Attr {
				if seen[a.Name.Local] {
					t.Errorf("<%s> has %s twice", se.Name.Local, a.Name.Local)
				}
				seen[a.Name.Local] = true
			}
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "polyline" {
			polylines++
			for _, a := range se.Attr {
				if a.Name.Local == "points" && len(strings.Fields(a.Value)) < 70 {
					t.Errorf("a line of %d points; want one per bucket", len(strings.Fields(a.Value)))
				}
			}
		}
	}
	if polylines != 2 {
		t.Errorf("%d lines; want writes and reads", polylines)
	}
	for _, want := range []string{"primary frozen &lt;n1&gt;", "Experiment 1 &amp; a hang", `stroke="#d62728"`, "seconds since the load started"} {
		if !strings.Contains(svg, want) {
			t.Errorf("SVG lacks %q", want)
		}
	}
}

func TestNiceCeil(t *testing.T) {
	for in, want := range map[float64]float64{1: 1, 3: 5, 7: 10, 12: 20, 180: 200, 450: 500, 999: 1000} {
		if got := niceCeil(in); got != want {
			t.Errorf("niceCeil(%v) = %v; want %v", in, got, want)
		}
	}
}
