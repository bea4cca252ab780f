package sweep

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"

	"github.com/mlbot/mlbot/configs"
)

// Kind is the form of a search-space dimension.
type Kind int

// Dimension kinds.
const (
	// List is a list of values: "a,b,c".
	List Kind = iota
	// Range is "range(start,stop[,step])", expanded into its values.
	Range
	// Uniform is "uniform(a,b)".
	Uniform
	// LogUniform is "loguniform(a,b)".
	LogUniform
	// Int is "int(a,b)".
	Int
)

// String names the kind as the syntax writes it.
func (k Kind) String() string {
	return [...]string{"list", "range", "uniform", "loguniform", "int"}[k]
}

// maxExprLen bounds one dimension's expression; comments come from anyone
// who may comment on a pull request.
const maxExprLen = 1024

// Dim is one dimension of a search space: the values one parameter takes.
type Dim struct {
	// Param is the declared parameter the dimension varies.
	Param string
	// Kind is the dimension's form.
	Kind Kind
	// Expr is the expression as written, for messages.
	Expr string
	// Values are the values of a List or Range dimension, in canonical
	// form (see configs.ParamKind.Canonical), without duplicates.
	Values []string
	// Lo and Hi bound a Uniform, LogUniform or Int dimension (Int: both
	// whole and included).
	Lo, Hi float64
}

// Discrete reports whether the dimension is a list of values (List or
// Range), which a grid can enumerate.
func (d Dim) Discrete() bool { return d.Kind == List || d.Kind == Range }

// callRE matches a function call expression: name(args).
var callRE = regexp.MustCompile(`^([A-Za-z_][A-Za-z0-9_]*)\s*\((.*)\)$`)

// ParseDim parses expr, the values of parameter p (see the package
// documentation for the syntax). Errors quote the offending text.
func ParseDim(p configs.Param, expr string) (Dim, error) {
	expr = strings.TrimSpace(expr)
	d := Dim{Param: p.Name, Expr: expr}
	if expr == "" {
		return d, fmt.Errorf("%s: no values given (write %s=a,b,c or %s=uniform(a,b))", p.Name, p.Name, p.Name)
	}
	if len(expr) > maxExprLen {
		return d, fmt.Errorf("%s: the expression is %d bytes; the limit is %d", p.Name, len(expr), maxExprLen)
	}
	if m := callRE.FindStringSubmatch(expr); m != nil {
		return parseCall(p, d, m[1], m[2])
	}
	if strings.ContainsAny(expr, "()") {
		return d, fmt.Errorf("%s=%s: unbalanced or misplaced parentheses", p.Name, expr)
	}
	d.Kind = List
	seen := make(map[string]bool)
	for _, item := range strings.Split(expr, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			return d, fmt.Errorf("%s=%s: empty value in the list", p.Name, expr)
		}
		v, err := p.Kind.Canonical(item)
		if err != nil {
			return d, fmt.Errorf("%s=%s: %w (parameter %s is a %s)", p.Name, expr, err, p.Name, p.Kind)
		}
		if seen[v] {
			return d, fmt.Errorf("%s=%s: %q is listed twice", p.Name, expr, item)
		}
		seen[v] = true
		d.Values = append(d.Values, v)
		if len(d.Values) > configs.MaxTrialsCap {
			return d, fmt.Errorf("%s=%s: more than %d values; a sweep runs at most %d trials", p.Name, short(expr), configs.MaxTrialsCap, configs.MaxTrialsCap)
		}
	}
	return d, nil
}

// parseCall parses the function forms range, uniform, loguniform and int.
func parseCall(p configs.Param, d Dim, name, argText string) (Dim, error) {
	kinds := map[string]Kind{"range": Range, "uniform": Uniform, "loguniform": LogUniform, "int": Int}
	k, ok := kinds[name]
	if !ok {
		return d, fmt.Errorf("%s=%s: unknown function %q (want range, uniform, loguniform or int)", p.Name, d.Expr, name)
	}
	d.Kind = k
	if p.Kind != configs.ParamNumber {
		return d, fmt.Errorf("%s=%s: %s needs a number parameter; %s is a %s (list its values instead)", p.Name, d.Expr, name, p.Name, p.Kind)
	}
	var args []float64
	for _, a := range strings.Split(argText, ",") {
		f, err := strconv.ParseFloat(strings.TrimSpace(a), 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return d, fmt.Errorf("%s=%s: %q is not a finite number", p.Name, d.Expr, strings.TrimSpace(a))
		}
		args = append(args, f)
	}
	want := "2"
	if k == Range {
		want = "2 or 3"
	}
	if len(args) != 2 && !(k == Range && len(args) == 3) {
		return d, fmt.Errorf("%s=%s: %s takes %s arguments, got %d", p.Name, d.Expr, name, want, len(args))
	}
	lo, hi := args[0], args[1]
	switch k {
	case Range:
		step := 1.0
		if len(args) == 3 {
			step = args[2]
		}
		return expandRange(p, d, lo, hi, step)
	case Uniform:
		if !(lo < hi) {
			return d, fmt.Errorf("%s=%s: the lower bound %v must be below the upper bound %v", p.Name, d.Expr, lo, hi)
		}
	case LogUniform:
		if !(lo > 0 && lo < hi) {
			return d, fmt.Errorf("%s=%s: loguniform needs 0 < a < b, got a=%v b=%v", p.Name, d.Expr, lo, hi)
		}
	case Int:
		if lo != math.Trunc(lo) || hi != math.Trunc(hi) || math.Abs(lo) > 1<<53 || math.Abs(hi) > 1<<53 {
			return d, fmt.Errorf("%s=%s: int needs whole-number bounds, got %v and %v", p.Name, d.Expr, lo, hi)
		}
		if lo > hi {
			return d, fmt.Errorf("%s=%s: the lower bound %v is above the upper bound %v", p.Name, d.Expr, lo, hi)
		}
	}
	d.Lo, d.Hi = lo, hi
	return d, nil
}

// expandRange lists range(start,stop,step)'s values, stop excluded, after
// checking that there are between 1 and MaxTrialsCap of them.
func expandRange(p configs.Param, d Dim, start, stop, step float64) (Dim, error) {
	if step == 0 {
		return d, fmt.Errorf("%s=%s: the step must not be 0", p.Name, d.Expr)
	}
	span := (stop - start) / step
	if math.IsNaN(span) || math.IsInf(span, 0) {
		return d, fmt.Errorf("%s=%s: the range is too large", p.Name, d.Expr)
	}
	// The small slack keeps float noise (1/0.1 = 10.000000000000002) from
	// adding a value at stop, which is excluded.
	n := math.Ceil(span - 1e-9)
	if n < 1 {
		return d, fmt.Errorf("%s=%s: the range is empty (stop is excluded; a negative step counts down)", p.Name, d.Expr)
	}
	if n > configs.MaxTrialsCap {
		return d, fmt.Errorf("%s=%s: %.0f values, more than the cap of %d trials", p.Name, d.Expr, n, configs.MaxTrialsCap)
	}
	for i := 0; i < int(n); i++ {
		// Rounded to 12 significant digits so that 0.1*3 reads 0.3.
		v, _ := strconv.ParseFloat(strconv.FormatFloat(start+float64(i)*step, 'g', 12, 64), 64)
		d.Values = append(d.Values, configs.FormatParamNumber(v))
	}
	return d, nil
}

// ParseArgs parses the arguments of a "/sweep" comment (or of `mlbot run
// --sweep`): dimensions "name=expr" separated by blanks (blanks inside
// parentheses belong to the expression), each name a parameter of params,
// none twice. No arguments give no dimensions.
func ParseArgs(args string, params []configs.Param) ([]Dim, error) {
	tokens, err := splitArgs(args)
	if err != nil {
		return nil, err
	}
	var dims []Dim
	seen := make(map[string]bool)
	for _, tok := range tokens {
		name, expr, ok := strings.Cut(tok, "=")
		if !ok {
			return nil, fmt.Errorf("%q: write name=values, such as lr=0.05,0.1", short(tok))
		}
		p, ok := findParam(params, name)
		if !ok {
			return nil, fmt.Errorf("%q: %s", short(tok), notDeclared(name, params))
		}
		if seen[name] {
			return nil, fmt.Errorf("%q: parameter %s is given twice", short(tok), name)
		}
		seen[name] = true
		d, err := ParseDim(p, expr)
		if err != nil {
			return nil, err
		}
		dims = append(dims, d)
	}
	return dims, nil
}

// splitArgs splits s at blanks outside parentheses.
func splitArgs(s string) ([]string, error) {
	if len(s) > 8*maxExprLen {
		return nil, fmt.Errorf("the arguments are %d bytes; the limit is %d", len(s), 8*maxExprLen)
	}
	var out []string
	var cur strings.Builder
	depth := 0
	for _, r := range s {
		switch {
		case r == '(':
			depth++
		case r == ')':
			depth--
			if depth < 0 {
				return nil, fmt.Errorf("%q: a \")\" closes nothing", short(s))
			}
		case depth == 0 && (r == ' ' || r == '\t' || r == '\n' || r == '\r'):
			if cur.Len() > 0 {
				out = append(out, cur.String())
				cur.Reset()
			}
			continue
		}
		cur.WriteRune(r)
	}
	if depth != 0 {
		return nil, fmt.Errorf("%q: a \"(\" is never closed", short(s))
	}
	if cur.Len() > 0 {
		out = append(out, cur.String())
	}
	return out, nil
}

func findParam(params []configs.Param, name string) (configs.Param, bool) {
	for _, p := range params {
		if p.Name == name {
			return p, true
		}
	}
	return configs.Param{}, false
}

// notDeclared says that name is not a declared parameter, naming those that are.
func notDeclared(name string, params []configs.Param) string {
	if len(params) == 0 {
		return fmt.Sprintf("%s is not a parameter: %s declares no params:", name, configs.RepoConfigFile)
	}
	names := make([]string, len(params))
	for i, p := range params {
		names[i] = p.Name
	}
	return fmt.Sprintf("%s is not a parameter declared under params: (declared: %s)", name, strings.Join(names, ", "))
}

// short cuts s for quoting in a message.
func short(s string) string {
	const max = 80
	if r := []rune(s); len(r) > max {
		return string(r[:max]) + "…"
	}
	return s
}
