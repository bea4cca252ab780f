package web

import (
	"bytes"
	"math"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// renderChart draws c as the pages do.
func renderChart(t *testing.T, c chart) string {
	t.Helper()
	var b bytes.Buffer
	if err := repoPageTemplate.ExecuteTemplate(&b, "chart", c.layout()); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

var circleRE = regexp.MustCompile(`<circle class="point( bad)?" cx="([0-9.]+)" cy="([0-9.]+)"`)

func TestChart(t *testing.T) {
	t0 := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	at := func(h int) time.Time { return t0.Add(time.Duration(h) * time.Hour) }
	tests := []struct {
		name        string
		c           chart
		wantPoints  int
		wantBad     int
		wantMarkers int
		wantLines   int
		// wantOrder is the values from left to right.
		wantOrder []float64
	}{
		{
			name: "metric history with a deploy, a rollback and a gate",
			c: chart{ID: "acc", Title: "accuracy", Points: []chartPoint{
				{At: at(2), Value: 0.93, Href: "/runs/b"}, {At: at(0), Value: 0.91, Href: "/runs/a"}, {At: at(5), Value: 0.79, Bad: true},
			}, Markers: []chartMarker{
				{At: at(3), Kind: "deploy", Label: "v2 → production"}, {At: at(6), Kind: "rollback", Label: "↩ v1 production"},
				{At: at(-10), Kind: "deploy", Label: "before the history"},
			}, Lines: []chartLine{{Value: 0.8, Label: "min 0.8"}}},
			wantPoints: 3, wantBad: 1, wantMarkers: 2, wantLines: 1, wantOrder: []float64{0.91, 0.93, 0.79},
		},
		{
			name:       "one point",
			c:          chart{ID: "one", Points: []chartPoint{{At: t0, Value: 1}}},
			wantPoints: 1, wantOrder: []float64{1},
		},
		{
			name:       "equal values",
			c:          chart{ID: "flat", Points: []chartPoint{{At: at(0), Value: 0.5}, {At: at(1), Value: 0.5}, {At: at(2), Value: 0.5}}},
			wantPoints: 3, wantOrder: []float64{0.5, 0.5, 0.5},
		},
		{
			name:       "values that are not numbers are left out",
			c:          chart{ID: "nan", Points: []chartPoint{{At: at(0), Value: math.NaN()}, {At: at(1), Value: 2}, {At: at(2), Value: math.Inf(1)}}},
			wantPoints: 1, wantOrder: []float64{2},
		},
		{name: "nothing", c: chart{ID: "empty"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			svg := renderChart(t, tc.c)
			circles := circleRE.FindAllStringSubmatch(svg, -1)
			if len(circles) != tc.wantPoints {
				t.Fatalf("%d points drawn, want %d:\n%s", len(circles), tc.wantPoints, svg)
			}
			if tc.wantPoints == 0 {
				if !strings.Contains(svg, "Nothing to draw") || strings.Contains(svg, "<svg") {
					t.Errorf("an empty chart is drawn:\n%s", svg)
				}
				return
			}
			if got := strings.Count(svg, `data-points="`+strconv.Itoa(tc.wantPoints)+`"`); got != 1 {
				t.Errorf("the svg does not say it holds %d points", tc.wantPoints)
			}
			bad, lastX := 0, -1.0
			type pt struct{ x, y float64 }
			var pts []pt
			for _, m := range circles {
				if m[1] != "" {
					bad++
				}
				x, _ := strconv.ParseFloat(m[2], 64)
				y, _ := strconv.ParseFloat(m[3], 64)
				if x < chartLeft || x > chartW-chartRight || y < chartTop || y > chartH-chartBottom {
					t.Errorf("point (%v, %v) lies outside the plot", x, y)
				}
				if x < lastX {
					t.Errorf("points are not drawn left to right by time")
				}
				lastX = x
				pts = append(pts, pt{x, y})
			}
			if bad != tc.wantBad {
				t.Errorf("%d points marked bad, want %d", bad, tc.wantBad)
			}
			// Higher values are higher up (smaller y).
			for i := range pts {
				for j := range pts {
					if tc.wantOrder[i] > tc.wantOrder[j] && !(pts[i].y < pts[j].y) {
						t.Errorf("value %v is drawn at y %v, not above %v at y %v", tc.wantOrder[i], pts[i].y, tc.wantOrder[j], pts[j].y)
					}
				}
			}
			if got := strings.Count(svg, `<g class="marker `); got != tc.wantMarkers {
				t.Errorf("%d markers drawn, want %d", got, tc.wantMarkers)
			}
			if got := strings.Count(svg, `<line class="threshold"`); got != tc.wantLines {
				t.Errorf("%d thresholds drawn, want %d", got, tc.wantLines)
			}
			if strings.Contains(svg, "NaN") || strings.Contains(svg, "Inf") {
				t.Errorf("the svg holds a coordinate that is not a number:\n%s", svg)
			}
		})
	}
}

// TestChartEscapes draws labels that would be markup.
func TestChartEscapes(t *testing.T) {
	const hostile = `<script>alert(1)</script>`
	svg := renderChart(t, chart{ID: "x", Title: hostile, Points: []chartPoint{{At: time.Now(), Value: 1, Label: hostile, Href: "javascript:alert(1)"}},
		Markers: []chartMarker{{At: time.Now().Add(time.Hour), Kind: "deploy", Label: hostile}}})
	if strings.Contains(svg, "<script>") || strings.Contains(svg, "javascript:") {
		t.Errorf("the chart carries markup or a script link:\n%s", svg)
	}
}

func TestNiceTicks(t *testing.T) {
	tests := []struct {
		lo, hi float64
		want   string
	}{
		{0, 1, "0 0.2 0.4 0.6 0.8 1"},
		{0.783, 0.951, "0.8 0.85 0.9 0.95"},
		{-3, 12, "0 5 10"},
	}
	for _, tc := range tests {
		var got []string
		for _, v := range niceTicks(tc.lo, tc.hi, 5) {
			got = append(got, strconv.FormatFloat(v, 'g', -1, 64))
		}
		if strings.Join(got, " ") != tc.want {
			t.Errorf("niceTicks(%v, %v) = %v, want %s", tc.lo, tc.hi, got, tc.want)
		}
	}
}
