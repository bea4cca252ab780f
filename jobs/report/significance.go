package report

import (
	"fmt"
	"strconv"

	"github.com/mlbot/mlbot/jobs/report/stats"
)

// Significance is what the per-example results of a run and its base say
// about each change: for every field both have, the paired difference
// with its 95% confidence interval and p-value. It is computed once, when
// the run is decided, and kept with the run.
type Significance struct {
	// Resamples and Seed are the bootstrap's.
	Resamples int    `json:"resamples,omitempty"`
	Seed      uint64 `json:"seed,omitempty"`
	// N is the number of examples paired.
	N int `json:"n,omitempty"`
	// Family is the number of metrics Holm's correction spans: those with
	// a significance gate and per-example values in both runs.
	Family int `json:"family,omitempty"`
	// Note says why no significance is shown ("the base run has no
	// per-example results"); Metrics is then empty.
	Note string `json:"note,omitempty"`
	// Metrics holds each compared field's statistics by metric name.
	Metrics map[string]MetricStat `json:"metrics,omitempty"`
}

// MetricStat is one metric's paired comparison.
type MetricStat struct {
	stats.Result
	// PHolm is the Holm-adjusted p-value, for the metrics of the family.
	PHolm *float64 `json:"p_holm,omitempty"`
}

// GateP is the p-value a significance gate uses: the Holm-adjusted one.
func (m MetricStat) GateP() (float64, bool) {
	if m.PHolm == nil {
		return 0, false
	}
	return *m.PHolm, true
}

// NoSignificance is a Significance that only says why there is none.
func NoSignificance(note string) *Significance { return &Significance{Note: note} }

// CompareExamples pairs head's examples with base's by id and compares
// every field both have (stats.Paired, with a fixed seed, so the same two
// runs always give the same numbers). When the id sets differ the result
// says so and compares nothing. The p-values of the metrics whose spec
// has a significance gate are Holm-corrected together.
func CompareExamples(base, head *Examples, specs map[string]Spec) *Significance {
	if base == nil || head == nil {
		return nil
	}
	if note := sameIDs(base, head); note != "" {
		return NoSignificance(note)
	}
	index := make(map[string]int, len(base.IDs))
	for i, id := range base.IDs {
		index[id] = i
	}
	sig := &Significance{Resamples: stats.DefaultResamples, Seed: stats.DefaultSeed, N: head.Len(), Metrics: map[string]MetricStat{}}
	paired := make([]float64, head.Len())
	for _, name := range head.FieldNames() {
		bcol, ok := base.Fields[name]
		if !ok {
			continue
		}
		for i, id := range head.IDs {
			paired[i] = bcol[index[id]]
		}
		r, err := stats.Paired(paired, head.Fields[name], stats.Options{Resamples: sig.Resamples, Seed: sig.Seed})
		if err != nil {
			continue // non-finite values never get this far
		}
		sig.Metrics[name] = MetricStat{Result: r}
	}
	var family []string
	var ps []float64
	for _, name := range head.FieldNames() {
		if st, ok := sig.Metrics[name]; ok && specs[name].Significance != nil {
			family = append(family, name)
			ps = append(ps, st.P)
		}
	}
	for i, p := range stats.Holm(ps) {
		st := sig.Metrics[family[i]]
		st.PHolm = &p
		sig.Metrics[family[i]] = st
	}
	sig.Family = len(family)
	if len(sig.Metrics) == 0 {
		sig.Note = "the runs' per-example results share no numeric field"
	}
	return sig
}

// sameIDs returns "" when base and head hold the same examples, and a
// note saying how they differ otherwise.
func sameIDs(base, head *Examples) string {
	in := make(map[string]bool, len(base.IDs))
	for _, id := range base.IDs {
		in[id] = true
	}
	onlyHead, example := 0, ""
	for _, id := range head.IDs {
		if !in[id] {
			if onlyHead++; example == "" {
				example = id
			}
		}
	}
	common := head.Len() - onlyHead
	onlyBase := base.Len() - common
	if onlyHead == 0 && onlyBase == 0 {
		return ""
	}
	if example == "" {
		inHead := make(map[string]bool, len(head.IDs))
		for _, id := range head.IDs {
			inHead[id] = true
		}
		for _, id := range base.IDs {
			if !inHead[id] {
				example = id
				break
			}
		}
	}
	return fmt.Sprintf("the runs were evaluated on different examples (%s only in base, %s only in head, such as %s), so no significance is shown",
		strconv.Itoa(onlyBase), strconv.Itoa(onlyHead), quoteID(example))
}
