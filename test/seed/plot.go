package seed

import (
	"fmt"
	"html"
	"math"
	"strings"
	"time"
)

// Plot geometry, in SVG user units.
const (
	plotW, plotH          = 960, 360
	marginL, marginR      = 60, 20
	marginT, marginB      = 40, 50
	innerW, innerH        = plotW - marginL - marginR, plotH - marginT - marginB
	smoothing             = time.Second // each point is the rate over this window
	writeColor, readColor = "#1f77b4", "#2ca02c"
	errorColor, markColor = "#d62728", "#555555"
	plotFont              = "font-family=\"sans-serif\" font-size=\"12\""
)

// SVG draws writes/s and reads/s over time (each point the rate over the
// second before it), client errors as red ticks along the bottom, and a
// dashed line per mark with its label.
func SVG(title string, s Series) string {
	end := max(s.End(), 10*time.Second)
	window := int(smoothing / Bucket)
	rate := func(kind Kind, i int) float64 {
		from := time.Duration(max(i-window+1, 0)) * Bucket
		return s.Rate(kind, from, time.Duration(i+1)*Bucket)
	}
	top := 1.0
	for i := 0; i < s.Len(); i++ {
		top = max(top, rate(Write, i), rate(Read, i))
	}
	top = niceCeil(top)
	x := func(d time.Duration) float64 { return marginL + float64(innerW)*d.Seconds()/end.Seconds() }
	y := func(v float64) float64 { return marginT + float64(innerH)*(1-v/top) }

	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d">`+"\n", plotW, plotH, plotW, plotH)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", plotW, plotH)
	fmt.Fprintf(&b, `<text x="%d" y="24" font-family="sans-serif" font-size="15" font-weight="bold">%s</text>`+"\n", marginL, html.EscapeString(title))
	// Axes, ticks and grid.
	fmt.Fprintf(&b, `<g stroke="#ccc" stroke-width="1">`)
	for _, v := range ticks(top) {
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f"/>`, marginL, y(v), marginL+innerW, y(v))
	}
	b.WriteString("</g>\n")
	fmt.Fprintf(&b, `<g %s fill="#333">`, plotFont)
	for _, v := range ticks(top) {
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end">%g</text>`, marginL-6, y(v)+4, v)
	}
	step := tickStep(end.Seconds())
	for t := 0.0; t <= end.Seconds()+1e-9; t += step {
		d := time.Duration(t * float64(time.Second))
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%gs</text>`, x(d), marginT+innerH+18, t)
	}
	fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle">seconds since the load started</text>`, marginL+innerW/2, plotH-8)
	fmt.Fprintf(&b, `<text x="14" y="%d" transform="rotate(-90 14 %d)" text-anchor="middle">per second</text>`, marginT+innerH/2, marginT+innerH/2)
	b.WriteString("</g>\n")
	fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#999"/>`+"\n", marginL, marginT, innerW, innerH)
	// Marks.
	for i, m := range s.Marks {
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s" stroke-dasharray="4 3"/>`, x(m.At), marginT, x(m.At), marginT+innerH, markColor)
		// Near the right edge a label reads leftwards from its line.
		lx, anchor := x(m.At)+3, "start"
		if lx > marginL+innerW-200 {
			lx, anchor = x(m.At)-3, "end"
		}
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="%s" %s fill="%s">%s</text>`+"\n", lx, marginT+12+14*(i%4), anchor, plotFont, markColor, html.EscapeString(m.Label))
	}
	// Series.
	// Reads dashed: where both rates are equal the writes still show.
	for _, line := range []struct {
		kind         Kind
		color, style string
	}{{Write, writeColor, ""}, {Read, readColor, ` stroke-dasharray="6 3"`}} {
		var pts []string
		for i := 0; i < s.Len(); i++ {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(time.Duration(i+1)*Bucket), y(rate(line.kind, i))))
		}
		if len(pts) > 0 {
			fmt.Fprintf(&b, `<polyline fill="none" stroke="%s"%s stroke-width="1.8" points="%s"/>`+"\n", line.color, line.style, strings.Join(pts, " "))
		}
	}
	for i, n := range s.Counts[Error] {
		if n > 0 {
			fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s" stroke-width="2"/>`, x(time.Duration(i)*Bucket), marginT+innerH, x(time.Duration(i)*Bucket), marginT+innerH-8, errorColor)
		}
	}
	// Legend.
	fmt.Fprintf(&b, "\n<g %s>", plotFont)
	// In the top margin, right of the title: the marks' labels sit inside.
	lx := marginL + innerW - 470
	for _, l := range []struct{ color, text string }{{writeColor, "writes/s (commits acknowledged)"}, {readColor, "reads/s"}, {errorColor, "client errors"}} {
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="10" height="10" fill="%s"/><text x="%d" y="%d">%s</text>`, lx, 15, l.color, lx+14, 24, l.text)
		lx += 30 + 7*len(l.text)
	}
	b.WriteString("</g>\n</svg>\n")
	return b.String()
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}

func ticks(top float64) []float64 {
	var out []float64
	for i := 0; i <= 4; i++ {
		out = append(out, top*float64(i)/4)
	}
	return out
}

// tickStep is a round number of seconds giving 5 to 12 ticks over end.
func tickStep(end float64) float64 {
	for _, s := range []float64{1, 2, 5, 10, 15, 30, 60, 120, 300} {
		if end/s <= 12 {
			return s
		}
	}
	return 600
}
