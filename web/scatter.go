package web

import (
	"math"

	"github.com/mlbot/mlbot/jobs/report"
)

// scatter is a chart of one value against a number, drawn on the server
// as SVG: a sweep's metric against one of its parameters, a point per
// trial.
type scatter struct {
	ID, Title string
	// XLabel and YLabel name the axes.
	XLabel, YLabel string
	Points         []scatterPoint
}

// scatterPoint is one trial.
type scatterPoint struct {
	X, Y float64
	// Label says what the point is; Href is where clicking it goes.
	Label, Href string
	// Best marks the best trial, drawn filled.
	Best bool
}

// svgScatter is a scatter laid out in SVG units, what the template draws.
type svgScatter struct {
	ID, Title, XLabel, YLabel string
	W, H                      int
	PlotX, PlotY              float64
	PlotW, PlotH              float64
	PlotRight, PlotBot        float64
	Points                    []svgPoint
	XTicks, YTicks            []svgTick
	Empty                     bool
}

// layout places the points: the parameter left to right, the value
// bottom to top, each over its range, padded a little.
func (c scatter) layout() svgScatter {
	out := svgScatter{ID: c.ID, Title: c.Title, XLabel: c.XLabel, YLabel: c.YLabel, W: chartW, H: chartH,
		PlotX: chartLeft, PlotY: chartTop, PlotW: chartPlotW, PlotH: chartPlotH,
		PlotRight: chartLeft + chartPlotW, PlotBot: chartTop + chartPlotH}
	var pts []scatterPoint
	for _, p := range c.Points {
		if !math.IsNaN(p.X) && !math.IsInf(p.X, 0) && !math.IsNaN(p.Y) && !math.IsInf(p.Y, 0) {
			pts = append(pts, p)
		}
	}
	if len(pts) == 0 {
		out.Empty = true
		return out
	}
	span := func(get func(scatterPoint) float64) (float64, float64) {
		lo, hi := get(pts[0]), get(pts[0])
		for _, p := range pts {
			lo, hi = math.Min(lo, get(p)), math.Max(hi, get(p))
		}
		return padRange(lo, hi)
	}
	x0, x1 := span(func(p scatterPoint) float64 { return p.X })
	y0, y1 := span(func(p scatterPoint) float64 { return p.Y })
	x := func(v float64) float64 { return chartLeft + chartPlotW*(v-x0)/(x1-x0) }
	y := func(v float64) float64 { return chartTop + chartPlotH*(1-(v-y0)/(y1-y0)) }
	for _, p := range pts {
		out.Points = append(out.Points, svgPoint{X: x(p.X), Y: y(p.Y), Href: p.Href, This: p.Best,
			Title: p.Label + ": " + c.YLabel + " " + report.FormatNumber(p.Y) + " at " + c.XLabel + " " + report.FormatNumber(p.X)})
	}
	for _, v := range niceTicks(x0, x1, chartMaxXTicks) {
		out.XTicks = append(out.XTicks, svgTick{Pos: x(v), Label: report.FormatNumber(v)})
	}
	for _, v := range niceTicks(y0, y1, chartMaxYTicks) {
		out.YTicks = append(out.YTicks, svgTick{Pos: y(v), Label: report.FormatNumber(v)})
	}
	return out
}
