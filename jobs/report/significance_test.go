package report

import (
	"fmt"
	"math"
	"strings"
	"testing"
)

// flipped are n examples, the first 9 in 10 right, with the first down
// turned wrong and up of the wrong ones turned right, ids in the given
// order.
func flipped(n, down, up int, reverse bool) *Examples {
	e := &Examples{Fields: map[string][]float64{"accuracy": nil, "loss": nil}}
	for k := range n {
		i := k
		if reverse {
			i = n - 1 - k
		}
		ok := 0.0
		if i < n*9/10 {
			ok = 1
		}
		if i < down {
			ok = 0
		}
		if i >= n*9/10 && i < n*9/10+up {
			ok = 1
		}
		e.IDs = append(e.IDs, fmt.Sprintf("ex-%d", i))
		e.Fields["accuracy"] = append(e.Fields["accuracy"], ok)
		e.Fields["loss"] = append(e.Fields["loss"], 1-ok*0.5+float64(i%7)/100)
	}
	return e
}

func TestCompareExamples(t *testing.T) {
	alpha := 0.05
	specs := map[string]Spec{
		"accuracy": {Goal: GoalMaximize, MaxDrop: ptr(0.005), Significance: &alpha},
		"loss":     {Goal: GoalMinimize, MaxDrop: ptr(0.005), Significance: &alpha},
	}
	// The head lists its examples in reverse: they are paired by id.
	sig := CompareExamples(flipped(400, 0, 0, false), flipped(400, 10, 2, true), specs)
	if sig.Note != "" || sig.N != 400 || sig.Family != 2 || sig.Resamples != 10000 {
		t.Fatalf("significance %+v", sig)
	}
	acc := sig.Metrics["accuracy"]
	if acc.Test != "mcnemar" || acc.B != 10 || acc.C != 2 || math.Abs(acc.P-0.03857422) > 1e-7 || math.Abs(acc.Delta+0.02) > 1e-12 {
		t.Errorf("accuracy %+v, want McNemar b=10 c=2 p=0.03857 and Δ −0.02", acc)
	}
	loss := sig.Metrics["loss"]
	if loss.Test != "bootstrap" || loss.PHolm == nil || acc.PHolm == nil {
		t.Fatalf("loss %+v", loss)
	}
	// Holm over two: the smaller p doubled, the larger kept (at least the smaller's).
	lo, hi := math.Min(acc.P, loss.P), math.Max(acc.P, loss.P)
	want := map[float64]float64{lo: math.Min(1, 2*lo), hi: math.Max(math.Min(1, 2*lo), hi)}
	if *acc.PHolm != want[acc.P] || *loss.PHolm != want[loss.P] {
		t.Errorf("Holm p: accuracy %v (p %v), loss %v (p %v)", *acc.PHolm, acc.P, *loss.PHolm, loss.P)
	}
	// The same runs give the same numbers.
	again := CompareExamples(flipped(400, 0, 0, false), flipped(400, 10, 2, true), specs)
	if again.Metrics["loss"].Low != loss.Low || again.Metrics["accuracy"].High != acc.High {
		t.Error("a second comparison of the same runs differs")
	}

	// Different example sets: said, and nothing compared.
	other := flipped(400, 0, 0, false)
	other.IDs[7] = "ex-new"
	sig = CompareExamples(flipped(400, 0, 0, false), other, specs)
	if len(sig.Metrics) != 0 || !strings.Contains(sig.Note, "1 only in base, 1 only in head") || !strings.Contains(sig.Note, `"ex-new"`) {
		t.Errorf("different ids: %+v", sig)
	}
	short := flipped(400, 0, 0, false)
	short.IDs, short.Fields["accuracy"], short.Fields["loss"] = short.IDs[:399], short.Fields["accuracy"][:399], short.Fields["loss"][:399]
	if sig := CompareExamples(flipped(400, 0, 0, false), short, specs); !strings.Contains(sig.Note, "1 only in base, 0 only in head") {
		t.Errorf("one example fewer: %+v", sig)
	}
}

func TestExampleGates(t *testing.T) {
	alpha := 0.05
	sigSpec := map[string]Spec{"accuracy": {Goal: GoalMaximize, MaxDrop: ptr(0.005), Significance: &alpha}}
	niSpec := map[string]Spec{"accuracy": {Goal: GoalMaximize, NonInferiority: ptr(0.02)}}
	niMin := map[string]Spec{"accuracy": {Goal: GoalMinimize, NonInferiority: ptr(0.02)}}
	base := flipped(400, 0, 0, false)
	metrics := func(e *Examples) map[string]float64 { return map[string]float64{"accuracy": e.Means()["accuracy"]} }
	cases := []struct {
		name     string
		specs    map[string]Spec
		head     *Examples
		noStats  bool
		pass     bool
		fallback bool
		says     string
	}{
		{"significant drop fails", sigSpec, flipped(400, 20, 0, false), false, false, false, "significant (Holm p < 0.0001 < 0.05)"},
		{"drop in the noise passes", sigSpec, flipped(400, 6, 2, false), false, true, false, "not significant: Holm p 0.29"},
		{"drop within max_drop passes", sigSpec, flipped(400, 1, 0, false), false, true, false, "drop ≤ 0.005 or not significant at 0.05"},
		{"without examples, plain max_drop fails", sigSpec, flipped(400, 6, 2, false), true, false, true, "fell back to plain max_drop"},
		{"non-inferiority fails", niSpec, flipped(400, 6, 2, false), false, false, false, "(non_inferiority)"},
		{"non-inferiority passes", niSpec, flipped(400, 2, 2, false), false, true, false, "CI low > −0.02"},
		// For a metric to minimise, the interval is turned: the head's rise
		// of 0.01 is the worsening.
		{"non-inferiority of a minimised metric fails", niMin, flipped(400, 2, 6, false), false, false, false, "❌ CI high < +0.02 (CI high +0.0"},
		{"non-inferiority without examples compares the drop", niSpec, flipped(400, 6, 2, false), true, true, true, "no per-example results: plain max_drop"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var sig *Significance
			if !tc.noStats {
				sig = CompareExamples(base, tc.head, tc.specs)
			}
			d := ComputeWith(metrics(base), metrics(tc.head), tc.specs, []string{"accuracy"}, sig)
			if d.Pass() != tc.pass {
				t.Errorf("pass = %v, want %v: %+v", d.Pass(), tc.pass, d.Rows[0].Gates)
			}
			if g := d.Rows[0].Gates[0]; g.Fallback != tc.fallback {
				t.Errorf("fallback = %v, want %v", g.Fallback, tc.fallback)
			}
			body := Render(Comment{Outcome: OutcomePassed, HeadSHA: "abcdef1234", BaseSHA: "1234567890", Diff: d})
			if !strings.Contains(body, tc.says) {
				t.Errorf("comment lacks %q:\n%s", tc.says, body)
			}
			if !tc.noStats && (!strings.Contains(body, "| 95% CI | p |") || !strings.Contains(body, "seed 20260601") || !strings.Contains(body, "n = 400 examples")) {
				t.Errorf("comment lacks the statistics columns or footer:\n%s", body)
			}
		})
	}
}

// TestSignificanceCommentLimit fills a comment with metrics that all have
// statistics: it stays within the host's limit, the footer included.
func TestSignificanceCommentLimit(t *testing.T) {
	sig := &Significance{Resamples: 10000, Seed: 1, N: 100000, Metrics: map[string]MetricStat{}}
	head := map[string]float64{}
	for i := range 3000 {
		name := fmt.Sprintf("metric.%04d.%s", i, strings.Repeat("x", 40))
		head[name] = 0.5
		st := MetricStat{}
		st.Test, st.Low, st.High, st.P = "mcnemar", -0.0123456, 0.0234567, 0.0345678
		sig.Metrics[name] = st
	}
	d := ComputeWith(head, head, nil, nil, sig)
	body := Render(Comment{Outcome: OutcomePassed, BaseSHA: "abc", Diff: d})
	if textLen(body) > MaxLen || !strings.Contains(body, "more metrics") || !strings.Contains(body, "10,000 resamples") {
		t.Errorf("comment of %d characters, or without its footer", textLen(body))
	}
}

func ptr(f float64) *float64 { return &f }
