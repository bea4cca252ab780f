package sweep

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"

	"github.com/mlbot/mlbot/configs"
)

// Method is how a sweep explores its space.
type Method string

// Methods.
const (
	// MethodGrid runs every combination of the dimensions' values.
	MethodGrid Method = "grid"
	// MethodRandom runs MaxTrials seeded random samples.
	MethodRandom Method = "random"
	// MethodHalving is synchronous successive halving over the candidates a grid
	// or random sampling gives (see Halving).
	MethodHalving Method = "halving"
)

// Spec is a planned sweep: its space and how to explore and rank it.
type Spec struct {
	// Space holds one dimension a parameter, in the order given.
	Space []Dim
	// Metric is the metric trials are ranked by, Goal "maximize" or
	// "minimize".
	Metric, Goal string
	// MaxTrials bounds the number of trials (candidates, for Halving).
	MaxTrials int
	// Parallel is how many trials of the sweep run at once.
	Parallel int
	// Seed seeds random sampling.
	Seed int64
	// Method is MethodGrid, MethodRandom or MethodHalving, never empty.
	Method Method
	// Sampled is true when the candidates are random samples rather than
	// a grid (always for MethodRandom; for MethodHalving, when the space is no grid).
	Sampled bool
	// Resource is Halving's resource parameter; ResourceMax its full
	// budget (the parameter's default) and ResourceWhole whether budgets
	// are whole numbers (the default is).
	Resource      string
	ResourceMax   float64
	ResourceWhole bool
	// Eta is Halving's reduction factor.
	Eta int
}

// Params lists the names of the space's parameters in order, the columns
// of a sweep's table.
func (s Spec) Params() []string {
	out := make([]string, len(s.Space))
	for i, d := range s.Space {
		out[i] = d.Param
	}
	return out
}

// NewSpec plans the sweep of cfg: the space is args (the arguments of a
// "/sweep" comment or of `mlbot run --sweep`) when given, the sweep:
// block's otherwise; the other settings come from the sweep: block or the
// defaults. Errors quote the offending text; those of the sweep: block are
// *configs.ConfigError with the file, line and column.
func NewSpec(cfg *configs.RepoConfig, args string) (Spec, error) {
	block := cfg.Sweep
	if block == nil {
		block = &configs.Sweep{MaxTrials: configs.DefaultMaxTrials, Parallel: configs.DefaultSweepParallel, Eta: configs.DefaultEta}
		for _, name := range cfg.MetricOrder {
			if g := cfg.Metrics[name].Goal; g != "" {
				block.Metric, block.Goal = name, g
				break
			}
		}
	}
	s := Spec{Metric: block.Metric, Goal: block.Goal, MaxTrials: block.MaxTrials, Parallel: block.Parallel,
		Seed: block.Seed, Method: Method(block.Method), Resource: block.Resource, Eta: block.Eta}
	if s.Metric == "" || s.Goal == "" {
		return s, errors.New("no metric to rank trials by: give a metric under metrics: a goal (maximize or minimize), or set sweep: metric:")
	}
	if strings.TrimSpace(args) != "" {
		dims, err := ParseArgs(args, cfg.Params)
		if err != nil {
			return s, err
		}
		s.Space = dims
	} else {
		for _, sd := range block.Space {
			p, _ := cfg.Param(sd.Param) // configs checked that it is declared
			d, err := ParseDim(p, sd.Expr)
			if err != nil {
				return s, &configs.ConfigError{File: configs.RepoConfigFile, Line: sd.Line, Col: sd.Col, Msg: "sweep.space." + err.Error()}
			}
			s.Space = append(s.Space, d)
		}
	}
	if len(s.Space) == 0 {
		return s, errors.New("no search space: give one, such as /sweep lr=0.05,0.1,0.5, or add sweep: space: to " + configs.RepoConfigFile)
	}
	if s.Resource != "" {
		p, _ := cfg.Param(s.Resource)
		for _, d := range s.Space {
			if d.Param == s.Resource {
				return s, fmt.Errorf("%s=%s: %s is halving's resource; halving sets it itself", d.Param, short(d.Expr), d.Param)
			}
		}
		s.ResourceMax, _ = strconv.ParseFloat(p.Default, 64)
		s.ResourceWhole = s.ResourceMax == math.Trunc(s.ResourceMax)
		if !(s.ResourceMax > 0) {
			return s, fmt.Errorf("params: %s: halving's resource needs a positive default (the full budget), got %s", s.Resource, p.Default)
		}
	}
	grid := gridSize(s.Space)
	switch s.Method {
	case "":
		s.Method = MethodRandom
		if grid > 0 && grid <= s.MaxTrials {
			s.Method = MethodGrid
		}
	case MethodGrid:
		if grid == 0 {
			return s, fmt.Errorf("method grid needs lists or ranges only; %s", continuous(s.Space))
		}
		if grid > s.MaxTrials {
			return s, fmt.Errorf("the grid %s has %s trials, more than max_trials %d (the cap is %d)", gridText(s.Space), overText(grid), s.MaxTrials, configs.MaxTrialsCap)
		}
	}
	s.Sampled = s.Method == MethodRandom || (s.Method == MethodHalving && !(grid > 0 && grid <= s.MaxTrials))
	if s.Parallel > s.MaxTrials {
		s.Parallel = s.MaxTrials
	}
	return s, nil
}

// gridSize is the number of combinations of the dimensions' values, 0
// when one is not discrete, and MaxTrialsCap+1 for anything over the cap.
func gridSize(dims []Dim) int {
	n := 1
	for _, d := range dims {
		if !d.Discrete() {
			return 0
		}
		n *= len(d.Values)
		if n > configs.MaxTrialsCap {
			return configs.MaxTrialsCap + 1
		}
	}
	return n
}

func overText(n int) string {
	if n > configs.MaxTrialsCap {
		return fmt.Sprintf("more than %d", configs.MaxTrialsCap)
	}
	return strconv.Itoa(n)
}

func gridText(dims []Dim) string {
	parts := make([]string, len(dims))
	for i, d := range dims {
		parts[i] = fmt.Sprintf("%s (%d)", d.Param, len(d.Values))
	}
	return strings.Join(parts, " × ")
}

func continuous(dims []Dim) string {
	for _, d := range dims {
		if !d.Discrete() {
			return fmt.Sprintf("%s=%s is a %s", d.Param, short(d.Expr), d.Kind)
		}
	}
	return ""
}

// Trial is one training of a sweep: its parameter values.
type Trial struct {
	// Index numbers the sweep's candidates from 0; a candidate keeps its
	// index through Halving's rungs.
	Index int
	// Rung is the Halving rung (0 otherwise).
	Rung int
	// Params are the values to override, by parameter name.
	Params map[string]string
}

// Candidates returns the sweep's candidate trials: every grid point (the
// first dimension varying slowest) or MaxTrials random samples. For MethodGrid
// and Random they are the trials; Halving runs them at growing budgets.
func (s Spec) Candidates() []Trial {
	if !s.Sampled {
		n := gridSize(s.Space)
		out := make([]Trial, n)
		for t := range out {
			params := make(map[string]string, len(s.Space))
			rest := t
			for i := len(s.Space) - 1; i >= 0; i-- {
				d := s.Space[i]
				params[d.Param] = d.Values[rest%len(d.Values)]
				rest /= len(d.Values)
			}
			out[t] = Trial{Index: t, Params: params}
		}
		return out
	}
	out := make([]Trial, 0, s.MaxTrials)
	seen := make(map[string]bool)
	for t := 0; t < s.MaxTrials; t++ {
		out = append(out, s.sample(t, seen))
	}
	return out
}

// maxRedraws bounds how often a sample that repeats an earlier trial is
// drawn again; a small space may not have MaxTrials distinct points.
const maxRedraws = 100

// sample draws trial t from a generator seeded with (Seed, t) only, so its
// values do not depend on which worker runs it. A draw equal to an earlier
// trial's (seen, filled by trials 0..t-1, themselves drawn the same way)
// is drawn again from the same generator, up to maxRedraws times.
func (s Spec) sample(t int, seen map[string]bool) Trial {
	r := rand.New(rand.NewPCG(uint64(s.Seed), uint64(t)))
	var params map[string]string
	for attempt := 0; attempt <= maxRedraws; attempt++ {
		params = make(map[string]string, len(s.Space))
		var key strings.Builder
		for _, d := range s.Space {
			v := draw(d, r)
			params[d.Param] = v
			key.WriteString(v)
			key.WriteByte(0)
		}
		if !seen[key.String()] {
			seen[key.String()] = true
			break
		}
	}
	return Trial{Index: t, Params: params}
}

// draw draws one value of d from r.
func draw(d Dim, r *rand.Rand) string {
	switch d.Kind {
	case List, Range:
		return d.Values[r.IntN(len(d.Values))]
	case Int:
		return configs.FormatParamNumber(d.Lo + float64(r.Int64N(int64(d.Hi-d.Lo)+1)))
	case LogUniform:
		return round4(math.Exp(math.Log(d.Lo) + r.Float64()*(math.Log(d.Hi)-math.Log(d.Lo))))
	default:
		return round4(d.Lo + r.Float64()*(d.Hi-d.Lo))
	}
}

// round4 writes a sampled number with 4 significant digits: readable in a
// table, and the exact value the trial trains with.
func round4(f float64) string {
	v, _ := strconv.ParseFloat(strconv.FormatFloat(f, 'g', 4, 64), 64)
	return configs.FormatParamNumber(v)
}
