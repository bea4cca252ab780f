package report

import (
	"math"
	"slices"
	"testing"
)

func f(v float64) *float64 { return &v }

func TestCompute(t *testing.T) {
	type gates = []Gate
	tests := []struct {
		name       string
		base, head map[string]float64
		specs      map[string]Spec
		order      []string
		// wantRows holds the expected rows; Abs and Rel are checked
		// approximately, the rest exactly.
		wantRows   []Row
		wantFailed []string
	}{
		{
			name:  "maximize improves, min passes",
			base:  map[string]float64{"acc": 0.9},
			head:  map[string]float64{"acc": 0.95},
			specs: map[string]Spec{"acc": {Goal: GoalMaximize, Min: f(0.9)}},
			order: []string{"acc"},
			wantRows: []Row{{Name: "acc", Goal: GoalMaximize, Base: f(0.9), Head: f(0.95), Abs: f(0.05), Rel: f(0.05 / 0.9), Better: 1,
				Gates: gates{{Kind: GateMin, Limit: 0.9, Pass: true}}}},
		},
		{
			name:  "min fails",
			base:  map[string]float64{"acc": 0.9},
			head:  map[string]float64{"acc": 0.85},
			specs: map[string]Spec{"acc": {Goal: GoalMaximize, Min: f(0.9)}},
			order: []string{"acc"},
			wantRows: []Row{{Name: "acc", Goal: GoalMaximize, Base: f(0.9), Head: f(0.85), Abs: f(-0.05), Rel: f(-0.05 / 0.9), Better: -1,
				Gates: gates{{Kind: GateMin, Limit: 0.9, Pass: false}}}},
			wantFailed: []string{"acc"},
		},
		{
			name:  "min exactly at the limit passes",
			head:  map[string]float64{"acc": 0.9},
			specs: map[string]Spec{"acc": {Goal: GoalMaximize, Min: f(0.9)}},
			wantRows: []Row{{Name: "acc", Goal: GoalMaximize, Head: f(0.9),
				Gates: gates{{Kind: GateMin, Limit: 0.9, Pass: true}}}},
		},
		{
			name:  "max passes and fails",
			base:  map[string]float64{"loss": 0.3, "latency": 10},
			head:  map[string]float64{"loss": 0.2, "latency": 12},
			specs: map[string]Spec{"loss": {Goal: GoalMinimize, Max: f(0.25)}, "latency": {Goal: GoalMinimize, Max: f(11)}},
			order: []string{"loss", "latency"},
			wantRows: []Row{
				{Name: "loss", Goal: GoalMinimize, Base: f(0.3), Head: f(0.2), Abs: f(-0.1), Rel: f(-0.1 / 0.3), Better: 1,
					Gates: gates{{Kind: GateMax, Limit: 0.25, Pass: true}}},
				{Name: "latency", Goal: GoalMinimize, Base: f(10), Head: f(12), Abs: f(2), Rel: f(0.2), Better: -1,
					Gates: gates{{Kind: GateMax, Limit: 11, Pass: false}}},
			},
			wantFailed: []string{"latency"},
		},
		{
			name:  "max_drop maximize: drop within limit, float noise at the limit",
			base:  map[string]float64{"acc": 0.95},
			head:  map[string]float64{"acc": 0.945},
			specs: map[string]Spec{"acc": {Goal: GoalMaximize, MaxDrop: f(0.005)}},
			wantRows: []Row{{Name: "acc", Goal: GoalMaximize, Base: f(0.95), Head: f(0.945), Abs: f(-0.005), Rel: f(-0.005 / 0.95), Better: -1,
				Gates: gates{{Kind: GateMaxDrop, Limit: 0.005, Pass: true}}}},
		},
		{
			name:  "max_drop maximize fails",
			base:  map[string]float64{"acc": 0.95},
			head:  map[string]float64{"acc": 0.93},
			specs: map[string]Spec{"acc": {Goal: GoalMaximize, MaxDrop: f(0.005)}},
			wantRows: []Row{{Name: "acc", Goal: GoalMaximize, Base: f(0.95), Head: f(0.93), Abs: f(-0.02), Rel: f(-0.02 / 0.95), Better: -1,
				Gates: gates{{Kind: GateMaxDrop, Limit: 0.005, Pass: false}}}},
			wantFailed: []string{"acc"},
		},
		{
			name:  "max_drop minimize: a rise is the drop",
			base:  map[string]float64{"loss": 0.5, "wer": 0.2},
			head:  map[string]float64{"loss": 0.4, "wer": 0.3},
			specs: map[string]Spec{"loss": {Goal: GoalMinimize, MaxDrop: f(0.01)}, "wer": {Goal: GoalMinimize, MaxDrop: f(0.05)}},
			order: []string{"loss", "wer"},
			wantRows: []Row{
				{Name: "loss", Goal: GoalMinimize, Base: f(0.5), Head: f(0.4), Abs: f(-0.1), Rel: f(-0.2), Better: 1,
					Gates: gates{{Kind: GateMaxDrop, Limit: 0.01, Pass: true}}},
				{Name: "wer", Goal: GoalMinimize, Base: f(0.2), Head: f(0.3), Abs: f(0.1), Rel: f(0.5), Better: -1,
					Gates: gates{{Kind: GateMaxDrop, Limit: 0.05, Pass: false}}},
			},
			wantFailed: []string{"wer"},
		},
		{
			name:  "no base: max_drop skipped, min still checked",
			head:  map[string]float64{"acc": 0.8},
			specs: map[string]Spec{"acc": {Goal: GoalMaximize, Min: f(0.9), MaxDrop: f(0.01)}},
			wantRows: []Row{{Name: "acc", Goal: GoalMaximize, Head: f(0.8),
				Gates: gates{{Kind: GateMin, Limit: 0.9, Pass: false}}}},
			wantFailed: []string{"acc"},
		},
		{
			name:  "configured metric missing from head fails every gate",
			base:  map[string]float64{"acc": 0.9},
			head:  map[string]float64{"loss": 0.1},
			specs: map[string]Spec{"acc": {Goal: GoalMaximize, Min: f(0.5), Max: f(1), MaxDrop: f(0.01)}},
			order: []string{"acc"},
			wantRows: []Row{
				{Name: "acc", Goal: GoalMaximize, Base: f(0.9), Gates: gates{
					{Kind: GateMin, Limit: 0.5}, {Kind: GateMax, Limit: 1}, {Kind: GateMaxDrop, Limit: 0.01}}},
				{Name: "loss", Head: f(0.1)},
			},
			wantFailed: []string{"acc"},
		},
		{
			name:  "missing from both with max_drop only still fails",
			specs: map[string]Spec{"acc": {Goal: GoalMaximize, MaxDrop: f(0.01)}},
			wantRows: []Row{{Name: "acc", Goal: GoalMaximize,
				Gates: gates{{Kind: GateMaxDrop, Limit: 0.01}}}},
			wantFailed: []string{"acc"},
		},
		{
			name:     "configured without gates and missing is shown, not failed",
			base:     map[string]float64{"loss": 0.2},
			specs:    map[string]Spec{"loss": {Goal: GoalMinimize}},
			wantRows: []Row{{Name: "loss", Goal: GoalMinimize, Base: f(0.2)}},
		},
		{
			name:  "NaN in head counts as missing",
			base:  map[string]float64{"acc": 0.9},
			head:  map[string]float64{"acc": math.NaN()},
			specs: map[string]Spec{"acc": {Goal: GoalMaximize, Min: f(0.5)}},
			wantRows: []Row{{Name: "acc", Goal: GoalMaximize, Base: f(0.9),
				Gates: gates{{Kind: GateMin, Limit: 0.5}}}},
			wantFailed: []string{"acc"},
		},
		{
			name:     "float noise is no change",
			base:     map[string]float64{"acc": 0.1 + 0.2},
			head:     map[string]float64{"acc": 0.3},
			specs:    map[string]Spec{"acc": {Goal: GoalMaximize}},
			wantRows: []Row{{Name: "acc", Goal: GoalMaximize, Base: f(0.1 + 0.2), Head: f(0.3), Abs: f(0), Rel: f(0)}},
		},
		{
			name:     "zero base has no relative change",
			base:     map[string]float64{"errors": 0},
			head:     map[string]float64{"errors": 3},
			specs:    map[string]Spec{"errors": {Goal: GoalMinimize}},
			wantRows: []Row{{Name: "errors", Goal: GoalMinimize, Base: f(0), Head: f(3), Abs: f(3), Better: -1}},
		},
		{
			name:     "no goal: no better or worse",
			base:     map[string]float64{"epochs": 10},
			head:     map[string]float64{"epochs": 12},
			wantRows: []Row{{Name: "epochs", Base: f(10), Head: f(12), Abs: f(2), Rel: f(0.2)}},
		},
		{
			name:  "max_drop without goal limits change either way",
			base:  map[string]float64{"size": 100},
			head:  map[string]float64{"size": 110},
			specs: map[string]Spec{"size": {MaxDrop: f(5)}},
			wantRows: []Row{{Name: "size", Base: f(100), Head: f(110), Abs: f(10), Rel: f(0.1),
				Gates: gates{{Kind: GateMaxDrop, Limit: 5}}}},
			wantFailed: []string{"size"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := Compute(tt.base, tt.head, tt.specs, tt.order)
			if len(d.Rows) != len(tt.wantRows) {
				t.Fatalf("Compute() rows = %s, want %d rows", names(d), len(tt.wantRows))
			}
			for i, want := range tt.wantRows {
				got := d.Rows[i]
				if got.Name != want.Name || got.Goal != want.Goal || got.Better != want.Better ||
					!near(got.Base, want.Base) || !near(got.Head, want.Head) ||
					!near(got.Abs, want.Abs) || !near(got.Rel, want.Rel) || !slices.Equal(got.Gates, want.Gates) {
					t.Errorf("row %d = %s, want %s", i, show(got), show(want))
				}
			}
			if !slices.Equal(d.Failed, tt.wantFailed) {
				t.Errorf("Failed = %q, want %q", d.Failed, tt.wantFailed)
			}
			if d.Pass() != (len(tt.wantFailed) == 0) {
				t.Errorf("Pass() = %v with Failed %q", d.Pass(), d.Failed)
			}
		})
	}
}

func TestComputeOrder(t *testing.T) {
	base := map[string]float64{"zeta": 1, "old_only": 1, "acc": 0.9}
	head := map[string]float64{"zeta": 1, "alpha": 1, "acc": 0.9, "loss": 0.1, "f1": 0.5}
	specs := map[string]Spec{"loss": {Goal: GoalMinimize}, "acc": {Goal: GoalMaximize}, "f1": {Goal: GoalMaximize}, "recall": {}}
	tests := []struct {
		name  string
		order []string
		want  []string
	}{
		{
			name:  "configured in order, then unordered configured, then the rest by name",
			order: []string{"loss", "acc"},
			want:  []string{"loss", "acc", "f1", "recall", "alpha", "old_only", "zeta"},
		},
		{
			name:  "duplicates and unconfigured names in order are listed once",
			order: []string{"acc", "zeta", "acc"},
			want:  []string{"acc", "zeta", "f1", "loss", "recall", "alpha", "old_only"},
		},
		{
			name: "no order",
			want: []string{"acc", "f1", "loss", "recall", "alpha", "old_only", "zeta"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := names(Compute(base, head, specs, tt.order))
			if !slices.Equal(got, tt.want) {
				t.Errorf("row order = %q, want %q", got, tt.want)
			}
		})
	}
}

func names(d Diff) []string {
	var out []string
	for _, r := range d.Rows {
		out = append(out, r.Name)
	}
	return out
}

func near(a, b *float64) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return math.Abs(*a-*b) < 1e-9
}

func show(r Row) string {
	p := func(v *float64) string {
		if v == nil {
			return "nil"
		}
		return fmtNum(*v)
	}
	return r.Name + "{goal=" + r.Goal + " base=" + p(r.Base) + " head=" + p(r.Head) + " abs=" + p(r.Abs) +
		" rel=" + p(r.Rel) + " better=" + fmtNum(float64(r.Better)) + " gates=" + gateCell(r) + "}"
}
