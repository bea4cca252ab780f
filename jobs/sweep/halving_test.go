package sweep

import (
	"reflect"
	"strconv"
	"testing"

	"github.com/mlbot/mlbot/configs"
)

func TestSchedule(t *testing.T) {
	tests := []struct {
		n, eta     int
		max        float64
		whole      bool
		want       []Rung
		wantBudget float64
	}{
		// 16 candidates, eta 3, 40 epochs: 16 × 4, 5 × 13, 1 × 40.
		{16, 3, 40, true, []Rung{{16, 4}, {5, 13}, {1, 40}}, 169},
		{9, 3, 27, true, []Rung{{9, 3}, {3, 9}, {1, 27}}, 81},
		{8, 2, 1, false, []Rung{{8, 0.125}, {4, 0.25}, {2, 0.5}, {1, 1}}, 4},
		{2, 3, 10, true, []Rung{{2, 10}}, 20},
		{27, 3, 2, true, []Rung{{27, 1}, {9, 1}, {3, 1}, {1, 2}}, 41},
	}
	for _, tt := range tests {
		if got := Schedule(tt.n, tt.eta, tt.max, tt.whole); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Schedule(%d, %d, %v) = %v, want %v", tt.n, tt.eta, tt.max, got, tt.want)
		}
		if got := Budget(tt.n, tt.eta, tt.max, tt.whole); got != tt.wantBudget {
			t.Errorf("Budget(%d, %d, %v) = %v, want %v", tt.n, tt.eta, tt.max, got, tt.wantBudget)
		}
	}
}

// halvingSpec is a 16-candidate halving sweep over lr with epochs (40) as
// the resource.
func halvingSpec(t *testing.T, seed string) Spec {
	t.Helper()
	c, err := configs.ParseRepoConfig(configs.RepoConfigFile, []byte(specBase+"sweep:\n  method: halving\n  resource: epochs\n  seed: "+seed+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSpec(c, "lr=uniform(0,1)")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// drive runs h to the end with metric(trial) as each trial's result
// (fail marks trials that fail) and returns every trial it gave.
func drive(t *testing.T, h *Halving, metric func(Trial) float64, fail func(Trial) bool) (given []Trial, results []Result) {
	t.Helper()
	trials, done := h.Next(nil)
	for rounds := 0; !done; rounds++ {
		if rounds > 10 {
			t.Fatal("halving did not end")
		}
		var rr []Result
		for _, tr := range trials {
			given = append(given, tr)
			r := Result{Trial: tr, Status: StatusDone, Metric: metric(tr)}
			if fail != nil && fail(tr) {
				r = Result{Trial: tr, Status: StatusFailed}
			}
			rr = append(rr, r)
		}
		results = append(results, rr...)
		trials, done = h.Next(rr)
	}
	return given, results
}

// The resource spent over a whole halving sweep is the formula's; the
// promotions follow the metric, ties going to the lower trial index; the
// winner is the best candidate; the same results give the same sweep.
func TestHalving(t *testing.T) {
	s := halvingSpec(t, "3")
	h, err := NewHalving(s)
	if err != nil {
		t.Fatal(err)
	}
	// The metric is lr itself, the epochs ignored: the best lr wins.
	lr := func(tr Trial) float64 { f, _ := strconv.ParseFloat(tr.Params["lr"], 64); return f }
	given, results := drive(t, h, lr, nil)
	spent := 0.0
	perRung := map[int]int{}
	for _, tr := range given {
		ep, _ := strconv.ParseFloat(tr.Params["epochs"], 64)
		spent += ep
		perRung[tr.Rung]++
	}
	if want := Budget(16, 3, 40, true); spent != want || spent != 169 {
		t.Errorf("spent %v epochs, want Budget = %v (169)", spent, want)
	}
	if !reflect.DeepEqual(perRung, map[int]int{0: 16, 1: 5, 2: 1}) {
		t.Errorf("trials per rung = %v", perRung)
	}
	best := 0
	for _, c := range s.Candidates() {
		if lr(c) > lr(s.Candidates()[best]) {
			best = c.Index
		}
	}
	final := Rank(h.Final(results), s.Goal)
	if final[0].Trial.Index != best || final[0].Status != StatusDone || final[0].Trial.Rung != 2 {
		t.Errorf("winner = %+v, want candidate %d at rung 2", final[0], best)
	}
	pruned := 0
	for _, r := range final[1:] {
		if r.Status != StatusPruned {
			t.Errorf("candidate %d: %s, want pruned", r.Trial.Index, r.Status)
		}
		pruned++
	}
	if pruned != 15 || len(final) != 16 {
		t.Errorf("%d pruned of %d, want 15 of 16", pruned, len(final))
	}
	// Determinism: a second machine fed the same results gives the same trials.
	h2, _ := NewHalving(s)
	given2, _ := drive(t, h2, lr, nil)
	if !reflect.DeepEqual(given, given2) {
		t.Error("the same results gave other promotions")
	}
	if tr, done := h.Next(nil); !done || tr != nil {
		t.Error("Next after done gave more trials")
	}
}

// With every metric equal the lowest indexes are promoted; a failed
// trial is never promoted, even when that leaves fewer.
func TestHalvingTiesAndFailures(t *testing.T) {
	s := halvingSpec(t, "1")
	h, _ := NewHalving(s)
	given, _ := drive(t, h, func(Trial) float64 { return 0.5 }, func(tr Trial) bool { return tr.Index == 1 })
	var rung1 []int
	for _, tr := range given {
		if tr.Rung == 1 {
			rung1 = append(rung1, tr.Index)
		}
	}
	if !reflect.DeepEqual(rung1, []int{0, 2, 3, 4, 5}) {
		t.Errorf("rung 1 = %v, want [0 2 3 4 5] (ties by index, the failed 1 left out)", rung1)
	}
	// Everything failing ends the sweep after the first rung.
	h, _ = NewHalving(s)
	given, _ = drive(t, h, func(Trial) float64 { return 0 }, func(Trial) bool { return true })
	if len(given) != 16 {
		t.Errorf("an all-failed rung gave %d trials in all, want 16", len(given))
	}
}

func TestRank(t *testing.T) {
	r := func(i int, st Status, m float64) Result {
		return Result{Trial: Trial{Index: i}, Status: st, Metric: m}
	}
	pr := func(i, rung int, m float64) Result {
		return Result{Trial: Trial{Index: i, Rung: rung}, Status: StatusPruned, Metric: m}
	}
	in := []Result{r(0, StatusFailed, 0), pr(1, 0, 0.99), r(2, StatusDone, 0.8), r(3, StatusDone, 0.9), r(4, StatusDone, 0.8), pr(5, 1, 0.1), r(6, StatusFailed, 0)}
	order := func(rs []Result) []int {
		var out []int
		for _, x := range rs {
			out = append(out, x.Trial.Index)
		}
		return out
	}
	if got := order(Rank(in, "maximize")); !reflect.DeepEqual(got, []int{3, 2, 4, 5, 1, 0, 6}) {
		t.Errorf("maximize: %v", got)
	}
	if got := order(Rank(in, "minimize")); !reflect.DeepEqual(got, []int{2, 4, 3, 5, 1, 0, 6}) {
		t.Errorf("minimize: %v", got)
	}
	if in[0].Trial.Index != 0 || in[1].Trial.Index != 1 {
		t.Error("Rank changed its input")
	}
}
