package sweep

import (
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/mlbot/mlbot/configs"
)

var testParams = []configs.Param{
	{Name: "lr", Kind: configs.ParamNumber, Default: "0.5"},
	{Name: "epochs", Kind: configs.ParamNumber, Default: "40"},
	{Name: "optimizer", Kind: configs.ParamString, Default: "adam"},
	{Name: "augment", Kind: configs.ParamBool, Default: "false"},
}

// spaceTests is the parser's table; FuzzParseSpace starts from it.
var spaceTests = []struct {
	args    string
	want    []Dim
	wantErr string
}{
	{"lr=0.05,0.1,0.5 epochs=10,20", []Dim{
		{Param: "lr", Kind: List, Expr: "0.05,0.1,0.5", Values: []string{"0.05", "0.1", "0.5"}},
		{Param: "epochs", Kind: List, Expr: "10,20", Values: []string{"10", "20"}},
	}, ""},
	{"  optimizer=adam,sgd\taugment=true,false  ", []Dim{
		{Param: "optimizer", Kind: List, Expr: "adam,sgd", Values: []string{"adam", "sgd"}},
		{Param: "augment", Kind: List, Expr: "true,false", Values: []string{"true", "false"}},
	}, ""},
	{"lr=1e-3,.01", []Dim{{Param: "lr", Kind: List, Expr: "1e-3,.01", Values: []string{"0.001", "0.01"}}}, ""},
	{"epochs=range(10,40,10)", []Dim{{Param: "epochs", Kind: Range, Expr: "range(10,40,10)", Values: []string{"10", "20", "30"}}}, ""},
	{"epochs=range(3)", nil, `epochs=range(3): range takes 2 or 3 arguments, got 1`},
	{"lr=range(0, 0.3, 0.1)", []Dim{{Param: "lr", Kind: Range, Expr: "range(0, 0.3, 0.1)", Values: []string{"0", "0.1", "0.2"}}}, ""},
	{"lr=range(1,0,-0.25)", []Dim{{Param: "lr", Kind: Range, Expr: "range(1,0,-0.25)", Values: []string{"1", "0.75", "0.5", "0.25"}}}, ""},
	{"lr=uniform(0.01, 1) epochs=int(5,50)", []Dim{
		{Param: "lr", Kind: Uniform, Expr: "uniform(0.01, 1)", Lo: 0.01, Hi: 1},
		{Param: "epochs", Kind: Int, Expr: "int(5,50)", Lo: 5, Hi: 50},
	}, ""},
	{"lr=loguniform(1e-4,1)", []Dim{{Param: "lr", Kind: LogUniform, Expr: "loguniform(1e-4,1)", Lo: 1e-4, Hi: 1}}, ""},
	{"", nil, ""},

	{"momentum=0.9", nil, `"momentum=0.9": momentum is not a parameter declared under params: (declared: lr, epochs, optimizer, augment)`},
	{"lr=0.1 lr=0.2", nil, `"lr=0.2": parameter lr is given twice`},
	{"lr", nil, `"lr": write name=values`},
	{"lr=", nil, `lr: no values given`},
	{"lr=0.1,,0.2", nil, `lr=0.1,,0.2: empty value in the list`},
	{"lr=0.1,fast", nil, `lr=0.1,fast: "fast" is not a finite number (parameter lr is a number)`},
	{"lr=0.1,1e999", nil, `"1e999" is not a finite number`},
	{"lr=0.1,0.10", nil, `lr=0.1,0.10: "0.10" is listed twice`},
	{"augment=yes", nil, `augment=yes: "yes" is not true or false`},
	{"lr=uniform(1,0.1)", nil, `lr=uniform(1,0.1): the lower bound 1 must be below the upper bound 0.1`},
	{"lr=uniform(0,x)", nil, `lr=uniform(0,x): "x" is not a finite number`},
	{"lr=uniform(0,1,2)", nil, `lr=uniform(0,1,2): uniform takes 2 arguments, got 3`},
	{"lr=loguniform(0,1)", nil, `lr=loguniform(0,1): loguniform needs 0 < a < b`},
	{"epochs=int(1.5,3)", nil, `epochs=int(1.5,3): int needs whole-number bounds`},
	{"epochs=int(9,3)", nil, `epochs=int(9,3): the lower bound 9 is above the upper bound 3`},
	{"epochs=range(0,100)", nil, `epochs=range(0,100): 100 values, more than the cap of 64 trials`},
	{"epochs=range(0,1e300,1e-300)", nil, `epochs=range(0,1e300,1e-300): the range is too large`},
	{"epochs=range(10,0)", nil, `epochs=range(10,0): the range is empty`},
	{"epochs=range(0,10,0)", nil, `epochs=range(0,10,0): the step must not be 0`},
	{"lr=unifrom(0,1)", nil, `lr=unifrom(0,1): unknown function "unifrom"`},
	{"optimizer=uniform(0,1)", nil, `optimizer=uniform(0,1): uniform needs a number parameter; optimizer is a string`},
	{"lr=uniform(0,1", nil, `"lr=uniform(0,1": a "(" is never closed`},
	{"lr=0.1)", nil, `"lr=0.1)": a ")" closes nothing`},
	{"lr=(0.1)", nil, `lr=(0.1): unbalanced or misplaced parentheses`},
	{"lr=0.1(2)", nil, `lr=0.1(2): unbalanced or misplaced parentheses`},
	{"epochs=" + manyValues(70), nil, "more than 64 values; a sweep runs at most 64 trials"},
}

// manyValues lists 0,1,…,n-1.
func manyValues(n int) string {
	vals := make([]string, n)
	for i := range vals {
		vals[i] = strconv.Itoa(i)
	}
	return strings.Join(vals, ",")
}

func TestParseArgs(t *testing.T) {
	for _, tt := range spaceTests {
		t.Run(tt.args, func(t *testing.T) {
			got, err := ParseArgs(tt.args, testParams)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseArgs(%q) = %v, want an error containing %q", tt.args, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseArgs(%q): %v", tt.args, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseArgs(%q) =\n%+v\nwant\n%+v", tt.args, got, tt.want)
			}
		})
	}
}

// FuzzParseSpace checks that no input panics or hangs the parser, and
// that whatever it accepts is within the cap and reads back the same.
func FuzzParseSpace(f *testing.F) {
	for _, tt := range spaceTests {
		f.Add(tt.args)
	}
	f.Fuzz(func(t *testing.T, args string) {
		dims, err := ParseArgs(args, testParams)
		if err != nil {
			return
		}
		var again []string
		for _, d := range dims {
			p, ok := findParam(testParams, d.Param)
			if !ok {
				t.Fatalf("accepted undeclared parameter %q", d.Param)
			}
			if d.Discrete() && (len(d.Values) == 0 || len(d.Values) > configs.MaxTrialsCap) {
				t.Fatalf("%s: %d values", d.Param, len(d.Values))
			}
			for _, v := range d.Values {
				if c, err := p.Kind.Canonical(v); err != nil || c != v {
					t.Fatalf("%s: value %q is not canonical (%q, %v)", d.Param, v, c, err)
				}
			}
			if d.Kind == List {
				again = append(again, d.Param+"="+strings.Join(d.Values, ","))
			} else {
				again = append(again, d.Param+"="+d.Expr)
			}
		}
		dims2, err := ParseArgs(strings.Join(again, " "), testParams)
		if err != nil {
			t.Fatalf("re-parsing %q: %v", again, err)
		}
		for i := range dims {
			if !reflect.DeepEqual(dims[i].Values, dims2[i].Values) || dims[i].Lo != dims2[i].Lo || dims[i].Hi != dims2[i].Hi {
				t.Fatalf("re-parsed %q differs: %+v vs %+v", again, dims[i], dims2[i])
			}
		}
	})
}
