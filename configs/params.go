package configs

import (
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// ParamKind is the type of a parameter's value, fixed by its default.
type ParamKind string

// Parameter kinds.
const (
	// ParamNumber is an integer or floating-point number.
	ParamNumber ParamKind = "number"
	// ParamString is any text.
	ParamString ParamKind = "string"
	// ParamBool is true or false.
	ParamBool ParamKind = "bool"
)

// Environment variables every step gets for the declared parameters.
const (
	// ParamEnvPrefix starts the name of each parameter's variable:
	// MLBOT_PARAM_LR for a parameter lr.
	ParamEnvPrefix = "MLBOT_PARAM_"
	// ParamsEnv holds all the parameters as one JSON object.
	ParamsEnv = "MLBOT_PARAMS"
)

// paramNameRE is a parameter name: it appears in "/sweep lr=0.1,0.2"
// comments, so it holds no "=", "," or blank.
var paramNameRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_.-]{0,63}$`)

// Param is one parameter `params:` declares, with its default value.
type Param struct {
	// Name is the parameter's key in the file, such as "lr".
	Name string
	// Kind is the type of Default, and of every value the parameter takes.
	Kind ParamKind
	// Default is the value of a run that does not override it, in its
	// canonical text: a number as strconv.FormatFloat(f, 'g', -1, 64)
	// writes it, a boolean as "true" or "false".
	Default string
}

// EnvName returns the environment variable that carries the parameter:
// ParamEnvPrefix and the name upper-cased, each character outside [A-Z0-9]
// turned into "_".
func (p Param) EnvName() string { return ParamEnvName(p.Name) }

// ParamEnvName returns the environment variable of parameter name (see
// Param.EnvName).
func ParamEnvName(name string) string {
	var b strings.Builder
	b.WriteString(ParamEnvPrefix)
	for _, r := range strings.ToUpper(name) {
		if (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

// Canonical checks that text is a value of kind and returns its canonical
// form (see Param.Default): a finite number for ParamNumber, true or
// false for ParamBool; any text is a ParamString.
func (k ParamKind) Canonical(text string) (string, error) {
	switch k {
	case ParamNumber:
		f, err := strconv.ParseFloat(strings.TrimSpace(text), 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return "", fmt.Errorf("%q is not a finite number", text)
		}
		return FormatParamNumber(f), nil
	case ParamBool:
		switch strings.TrimSpace(text) {
		case "true":
			return "true", nil
		case "false":
			return "false", nil
		}
		return "", fmt.Errorf("%q is not true or false", text)
	default:
		if strings.ContainsRune(text, 0) {
			// No environment variable can hold a NUL byte.
			return "", fmt.Errorf("%q holds a NUL byte", text)
		}
		return text, nil
	}
}

// FormatParamNumber writes f the way parameter values are written: the
// shortest text that reads back as f ("0.1", "40", "1e-05").
func FormatParamNumber(f float64) string {
	if f == 0 {
		return "0" // not "-0"
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}

// Param returns the declared parameter called name.
func (c *RepoConfig) Param(name string) (Param, bool) {
	for _, p := range c.Params {
		if p.Name == name {
			return p, true
		}
	}
	return Param{}, false
}

// ParamValues merges overrides over the declared defaults and returns the
// value of every parameter, in declaration order. An override of a name
// `params:` does not declare, or one that is not a value of the
// parameter's kind, is an error: a run must not silently train with
// something else than it was asked to.
func (c *RepoConfig) ParamValues(overrides map[string]string) ([]Param, error) {
	out := make([]Param, len(c.Params))
	copy(out, c.Params)
	seen := 0
	for i, p := range out {
		text, ok := overrides[p.Name]
		if !ok {
			continue
		}
		seen++
		v, err := p.Kind.Canonical(text)
		if err != nil {
			return nil, fmt.Errorf("parameter %s: %w", p.Name, err)
		}
		out[i].Default = v
	}
	if seen != len(overrides) {
		for name := range overrides {
			if _, ok := c.Param(name); !ok {
				return nil, fmt.Errorf("parameter %q is not declared under params: in %s", name, RepoConfigFile)
			}
		}
	}
	return out, nil
}

// ParamEnv returns the environment ("K=V") that carries values to a
// step: one variable a parameter (see Param.EnvName) and ParamsEnv, a
// JSON object of them all in declaration order, numbers as JSON numbers
// and booleans as JSON booleans. It returns nothing without parameters.
func ParamEnv(values []Param) []string {
	if len(values) == 0 {
		return nil
	}
	env := make([]string, 0, len(values)+1)
	var obj strings.Builder
	obj.WriteByte('{')
	for i, p := range values {
		env = append(env, p.EnvName()+"="+p.Default)
		if i > 0 {
			obj.WriteByte(',')
		}
		k, _ := json.Marshal(p.Name)
		obj.Write(k)
		obj.WriteByte(':')
		switch p.Kind {
		case ParamNumber, ParamBool:
			// Canonical forms are valid JSON numbers and booleans.
			obj.WriteString(p.Default)
		default:
			v, _ := json.Marshal(p.Default)
			obj.Write(v)
		}
	}
	obj.WriteByte('}')
	return append(env, ParamsEnv+"="+obj.String())
}

// params decodes the `params:` mapping: name → default value.
func (d *decoder) params(v *yaml.Node) []Param {
	ps, ok := d.mapping(v, "params")
	if !ok {
		return nil
	}
	var out []Param
	envOf := make(map[string]*yaml.Node) // environment name → key that took it
	for _, p := range ps {
		name := resolve(p.key).Value
		if !paramNameRE.MatchString(name) {
			d.errorf(p.key, "params: %q is not a parameter name (a letter, then up to 63 letters, digits, _, . and -)", name)
			continue
		}
		env := ParamEnvName(name)
		if prev, dup := envOf[env]; dup {
			d.errorf(p.key, "params: %q and %q (line %d) both become the environment variable %s; rename one", name, resolve(prev).Value, prev.Line, env)
			continue
		}
		envOf[env] = p.key
		val := resolve(p.value)
		where := "params." + name
		if isNull(p.value) || val.Kind != yaml.ScalarNode {
			d.errorf(p.value, "%s: a default value (number, string or boolean) is required, got %s", where, describe(p.value))
			continue
		}
		param := Param{Name: name}
		switch val.ShortTag() {
		case "!!int", "!!float":
			f, ok := d.number(p.value, where)
			if !ok {
				continue
			}
			param.Kind, param.Default = ParamNumber, FormatParamNumber(*f)
		case "!!bool":
			b, ok := d.boolean(p.value, where)
			if !ok {
				continue
			}
			param.Kind, param.Default = ParamBool, strconv.FormatBool(b)
		default:
			if _, err := ParamString.Canonical(val.Value); err != nil {
				d.errorf(p.value, "%s: %v", where, err)
				continue
			}
			param.Kind, param.Default = ParamString, val.Value
		}
		out = append(out, param)
	}
	return out
}
