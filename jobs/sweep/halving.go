package sweep

import (
	"errors"
	"math"

	"github.com/mlbot/mlbot/configs"
)

// Rung is one round of successive halving: how many candidates train, and
// with how much of the resource each.
type Rung struct {
	// Trials is the number of candidates the rung trains.
	Trials int
	// Resource is the value of the resource parameter each gets.
	Resource float64
}

// Schedule returns the rungs of synchronous successive halving of n
// candidates with reduction factor eta (at least 2) and full budget max:
// with s = ⌊log_eta n⌋, rung k = 0..s trains ⌊n/eta^k⌋ candidates with
// max/eta^(s−k) each (rounded down, at least 1, when whole), so the last
// rung trains the survivors with the full budget.
func Schedule(n, eta int, max float64, whole bool) []Rung {
	if n < 1 || eta < 2 {
		return nil
	}
	s := 0
	for p := eta; p <= n; p *= eta {
		s++
	}
	rungs := make([]Rung, s+1)
	div := 1
	for k := 0; k <= s; k++ {
		r := max / math.Pow(float64(eta), float64(s-k))
		if whole {
			r = math.Max(1, math.Floor(r))
		}
		rungs[k] = Rung{Trials: n / div, Resource: r}
		div *= eta
	}
	return rungs
}

// Budget is the total resource successive halving spends when every
// trial succeeds: Σ_k ⌊n/eta^k⌋ · r_k over Schedule(n, eta, max, whole).
func Budget(n, eta int, max float64, whole bool) float64 {
	total := 0.0
	for _, r := range Schedule(n, eta, max, whole) {
		total += float64(r.Trials) * r.Resource
	}
	return total
}

// Halving runs synchronous successive halving as a state machine: Next
// gives a rung's trials, the caller runs them all and hands their results
// to Next, which promotes the best ⌊n/eta^(k+1)⌋ (by the Spec's metric
// and goal, ties to the lower trial index; failed trials never) and gives
// the next rung, until the last rung is done. It is deterministic: the
// same results give the same promotions. It is not safe for concurrent
// use.
type Halving struct {
	spec       Spec
	candidates []Trial
	rungs      []Rung
	rung       int   // the rung Next gave last; -1 before the first call
	alive      []int // candidate indexes of that rung
	prunedAt   map[int]int
	done       bool
}

// NewHalving starts successive halving of s's candidates; s.Method must
// be Halving.
func NewHalving(s Spec) (*Halving, error) {
	if s.Method != MethodHalving || s.Resource == "" {
		return nil, errors.New("sweep: successive halving needs method halving and a resource parameter")
	}
	c := s.Candidates()
	h := &Halving{spec: s, candidates: c, rungs: Schedule(len(c), s.Eta, s.ResourceMax, s.ResourceWhole), rung: -1, prunedAt: map[int]int{}}
	for i := range c {
		h.alive = append(h.alive, i)
	}
	return h, nil
}

// Rungs returns the schedule (see Schedule).
func (h *Halving) Rungs() []Rung { return h.rungs }

// Next takes the results of the rung it gave last (ignored on the first
// call; a trial of the rung without a result counts as failed) and returns
// the trials of the next rung, or done once the last rung is finished or
// no candidate is left to promote. After done it keeps returning done.
func (h *Halving) Next(results []Result) (trials []Trial, done bool) {
	if h.done {
		return nil, true
	}
	if h.rung >= 0 {
		byIndex := make(map[int]Result)
		for _, r := range results {
			if r.Trial.Rung == h.rung {
				byIndex[r.Trial.Index] = r
			}
		}
		ranked := make([]Result, 0, len(h.alive))
		for _, i := range h.alive {
			r, ok := byIndex[i]
			if !ok {
				r = Result{Trial: h.trial(i, h.rung), Status: StatusFailed}
			}
			ranked = append(ranked, r)
		}
		ranked = Rank(ranked, h.spec.Goal)
		if h.rung == len(h.rungs)-1 {
			h.done = true
			return nil, true
		}
		keep := h.rungs[h.rung+1].Trials
		h.alive = h.alive[:0]
		for _, r := range ranked {
			if len(h.alive) < keep && r.ok() {
				h.alive = append(h.alive, r.Trial.Index)
			} else {
				h.prunedAt[r.Trial.Index] = h.rung
			}
		}
		if len(h.alive) == 0 {
			h.done = true
			return nil, true
		}
	}
	h.rung++
	for _, i := range h.alive {
		trials = append(trials, h.trial(i, h.rung))
	}
	return trials, false
}

// trial is candidate i at rung k: its values and the rung's resource.
func (h *Halving) trial(i, k int) Trial {
	c := h.candidates[i]
	params := make(map[string]string, len(c.Params)+1)
	for name, v := range c.Params {
		params[name] = v
	}
	params[h.spec.Resource] = configs.FormatParamNumber(h.rungs[k].Resource)
	return Trial{Index: i, Rung: k, Params: params}
}

// Pruned reports whether candidate index was left behind, and at which
// rung it last ran.
func (h *Halving) Pruned(index int) (rung int, pruned bool) {
	rung, pruned = h.prunedAt[index]
	return rung, pruned
}

// Final turns every result the sweep produced (all rungs) into one result
// a candidate, for Rank: the result of the last rung it ran, marked
// StatusPruned when it was not promoted (a failed one stays failed).
func (h *Halving) Final(all []Result) []Result {
	last := make(map[int]Result)
	for _, r := range all {
		if prev, ok := last[r.Trial.Index]; !ok || r.Trial.Rung >= prev.Trial.Rung {
			last[r.Trial.Index] = r
		}
	}
	out := make([]Result, 0, len(last))
	for i := range h.candidates {
		r, ok := last[i]
		if !ok {
			continue
		}
		if _, pruned := h.prunedAt[i]; pruned && r.Status == StatusDone {
			r.Status = StatusPruned
		}
		out = append(out, r)
	}
	return out
}
