package web

import (
	"math"
	"sort"
	"strconv"
	"time"

	"github.com/mlbot/mlbot/jobs/report"
)

// chart is a line chart of one value over time, drawn on the server as
// SVG: the values as points joined by a line, events (deploys, rollbacks)
// as vertical markers, and thresholds (gates, verification bounds) as
// horizontal lines.
type chart struct {
	// ID names the chart in the page (for links and tests).
	ID    string
	Title string
	// Points are the values, in any order; they are drawn by time.
	Points  []chartPoint
	Markers []chartMarker
	Lines   []chartLine
}

// chartPoint is one value.
type chartPoint struct {
	At    time.Time
	Value float64
	// Label says what the point is ("abc1234, run of main"); Href is
	// where clicking it goes ("" for nowhere).
	Label, Href string
	// Bad marks a value that failed its gate or left its bounds.
	Bad bool
	// This marks the value the chart is about (a pull request's run among
	// the default branch's), drawn filled; it is not joined to the line.
	This bool
}

// chartMarker is an event on the time axis.
type chartMarker struct {
	At time.Time
	// Kind is "deploy" or "rollback", its CSS class.
	Kind  string
	Label string
	Href  string
}

// chartLine is a threshold.
type chartLine struct {
	Value float64
	Label string
}

// The size of a chart, in SVG units (the page scales it).
const (
	chartW, chartH                                 = 720, 220
	chartLeft, chartRight, chartTop, chartBottom   = 64, 16, 18, 28
	chartPlotW, chartPlotH                         = chartW - chartLeft - chartRight, chartH - chartTop - chartBottom
	chartPointR                                    = 4
	chartMaxXTicks, chartMaxYTicks, chartPadFactor = 5, 5, 0.08
)

// svgChart is a chart laid out: what the template draws, in SVG units.
type svgChart struct {
	ID, Title          string
	W, H               int
	PlotX, PlotY       float64
	PlotW, PlotH       float64
	PlotRight, PlotBot float64
	// Path is the line through the points, as SVG polyline points.
	Path    string
	Points  []svgPoint
	Markers []svgMarker
	Lines   []svgLine
	XTicks  []svgTick
	YTicks  []svgTick
	// Empty is set when there is nothing to draw.
	Empty bool
}

type svgPoint struct {
	X, Y        float64
	Title, Href string
	Bad, This   bool
}

type svgMarker struct {
	X, LabelY          float64
	Kind, Label, Title string
	Href               string
	// Left puts the label left of the line.
	Left bool
}

type svgLine struct {
	Y     float64
	Label string
}

type svgTick struct {
	Pos   float64
	Label string
}

// layout computes where everything of c goes. Time runs left to right
// from the first point to the last point or marker (markers before the
// first point are left out); values run bottom to top over the points and
// thresholds, padded a little.
func (c chart) layout() svgChart {
	out := svgChart{ID: c.ID, Title: c.Title, W: chartW, H: chartH,
		PlotX: chartLeft, PlotY: chartTop, PlotW: chartPlotW, PlotH: chartPlotH,
		PlotRight: chartLeft + chartPlotW, PlotBot: chartTop + chartPlotH}
	points := make([]chartPoint, 0, len(c.Points))
	for _, p := range c.Points {
		if !math.IsNaN(p.Value) && !math.IsInf(p.Value, 0) {
			points = append(points, p)
		}
	}
	if len(points) == 0 {
		out.Empty = true
		return out
	}
	sort.SliceStable(points, func(i, j int) bool { return points[i].At.Before(points[j].At) })

	t0, t1 := points[0].At, points[len(points)-1].At
	var markers []chartMarker
	for _, m := range c.Markers {
		if m.At.Before(t0) {
			continue
		}
		markers = append(markers, m)
		if m.At.After(t1) {
			t1 = m.At
		}
	}
	if !t1.After(t0) {
		t0, t1 = t0.Add(-30*time.Minute), t1.Add(30*time.Minute)
	}
	pad := time.Duration(float64(t1.Sub(t0)) * 0.03)
	t0, t1 = t0.Add(-pad), t1.Add(pad)
	x := func(t time.Time) float64 {
		return chartLeft + chartPlotW*float64(t.Sub(t0))/float64(t1.Sub(t0))
	}

	lo, hi := points[0].Value, points[0].Value
	for _, p := range points {
		lo, hi = math.Min(lo, p.Value), math.Max(hi, p.Value)
	}
	for _, l := range c.Lines {
		lo, hi = math.Min(lo, l.Value), math.Max(hi, l.Value)
	}
	lo, hi = padRange(lo, hi)
	y := func(v float64) float64 {
		return chartTop + chartPlotH*(1-(v-lo)/(hi-lo))
	}

	for _, p := range points {
		sp := svgPoint{X: x(p.At), Y: y(p.Value), Href: p.Href, Bad: p.Bad, This: p.This,
			Title: report.FormatNumber(p.Value) + " — " + p.Label + ", " + when(p.At)}
		out.Points = append(out.Points, sp)
		if p.This {
			continue
		}
		if out.Path != "" {
			out.Path += " "
		}
		out.Path += px(sp.X) + "," + px(sp.Y)
	}
	for i, m := range markers {
		// Labels step down a line each, so that close events stay
		// readable.
		mx := x(m.At)
		out.Markers = append(out.Markers, svgMarker{X: mx, Kind: m.Kind, Label: m.Label, Href: m.Href,
			Title: m.Label + ", " + when(m.At), LabelY: chartTop + 10 + float64(i%3)*12,
			// Labels of the right half read leftwards, inside the plot.
			Left: mx > chartLeft+chartPlotW/2})
	}
	for _, l := range c.Lines {
		out.Lines = append(out.Lines, svgLine{Y: y(l.Value), Label: l.Label})
	}
	for _, v := range niceTicks(lo, hi, chartMaxYTicks) {
		out.YTicks = append(out.YTicks, svgTick{Pos: y(v), Label: report.FormatNumber(v)})
	}
	layout := "15:04"
	switch span := t1.Sub(t0); {
	case span > 36*time.Hour:
		layout = "Jan 2"
	case t1.YearDay() != t0.YearDay():
		layout = "Jan 2 15:04"
	case span < 30*time.Minute:
		layout = "15:04:05"
	}
	for i := range chartMaxXTicks {
		t := t0.Add(time.Duration(float64(t1.Sub(t0)) * (float64(i) + 0.5) / chartMaxXTicks))
		label := t.UTC().Format(layout)
		if n := len(out.XTicks); n > 0 && out.XTicks[n-1].Label == label {
			continue // a short span says each time once
		}
		out.XTicks = append(out.XTicks, svgTick{Pos: x(t), Label: label})
	}
	return out
}

// padRange widens the value range [lo, hi] a chart axis runs over by
// chartPadFactor on each side, so that no point sits on the frame; a
// range of one value is first opened around it.
func padRange(lo, hi float64) (float64, float64) {
	if hi == lo {
		d := math.Max(math.Abs(lo)*0.05, 1e-3)
		lo, hi = lo-d, hi+d
	}
	d := (hi - lo) * chartPadFactor
	return lo - d, hi + d
}

// niceTicks returns at most about n round values between lo and hi.
func niceTicks(lo, hi float64, n int) []float64 {
	step := niceStep((hi - lo) / float64(n))
	if step <= 0 || math.IsNaN(step) || math.IsInf(step, 0) {
		return nil
	}
	decimals := max(0, int(-math.Floor(math.Log10(step))))
	var out []float64
	for k := math.Ceil(lo / step); k*step <= hi+step*1e-9; k++ {
		// Snap away float noise (0.30000000000000004) and -0.
		v, _ := strconv.ParseFloat(strconv.FormatFloat(k*step, 'f', decimals, 64), 64)
		out = append(out, v+0)
		if len(out) > 2*n {
			break
		}
	}
	return out
}

// niceStep rounds a tick step to 1, 2 or 5 times a power of ten.
func niceStep(raw float64) float64 {
	if raw <= 0 {
		return 0
	}
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	switch f := raw / mag; {
	case f <= 1:
		return mag
	case f <= 2:
		return 2 * mag
	case f <= 5:
		return 5 * mag
	default:
		return 10 * mag
	}
}

// px writes an SVG coordinate.
func px(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }
