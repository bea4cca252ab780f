package configs

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParams(t *testing.T) {
	c, err := ParseRepoConfig(RepoConfigFile, []byte(base+`params:
  lr: 0.5
  epochs: 40
  l2: 1e-4
  optimizer: adam
  augment: false
  note: "a \"quoted\" text"
  big: 1e21
`))
	if err != nil {
		t.Fatal(err)
	}
	want := []Param{
		{Name: "lr", Kind: ParamNumber, Default: "0.5"},
		{Name: "epochs", Kind: ParamNumber, Default: "40"},
		{Name: "l2", Kind: ParamNumber, Default: "0.0001"},
		{Name: "optimizer", Kind: ParamString, Default: "adam"},
		{Name: "augment", Kind: ParamBool, Default: "false"},
		{Name: "note", Kind: ParamString, Default: `a "quoted" text`},
		{Name: "big", Kind: ParamNumber, Default: "1e+21"},
	}
	if !reflect.DeepEqual(c.Params, want) {
		t.Fatalf("Params = %+v\nwant %+v", c.Params, want)
	}
	values, err := c.ParamValues(map[string]string{"lr": "0.10", "augment": "true", "optimizer": "sgd"})
	if err != nil {
		t.Fatal(err)
	}
	env := ParamEnv(values)
	wantEnv := []string{
		"MLBOT_PARAM_LR=0.1", "MLBOT_PARAM_EPOCHS=40", "MLBOT_PARAM_L2=0.0001", "MLBOT_PARAM_OPTIMIZER=sgd",
		"MLBOT_PARAM_AUGMENT=true", `MLBOT_PARAM_NOTE=a "quoted" text`, "MLBOT_PARAM_BIG=1e+21",
		`MLBOT_PARAMS={"lr":0.1,"epochs":40,"l2":0.0001,"optimizer":"sgd","augment":true,"note":"a \"quoted\" text","big":1e+21}`,
	}
	if !reflect.DeepEqual(env, wantEnv) {
		t.Errorf("ParamEnv =\n%q\nwant\n%q", env, wantEnv)
	}
	// MLBOT_PARAMS is JSON a step can decode, with the types of the defaults.
	var obj map[string]any
	if err := json.Unmarshal([]byte(strings.TrimPrefix(env[len(env)-1], "MLBOT_PARAMS=")), &obj); err != nil {
		t.Fatalf("MLBOT_PARAMS is not JSON: %v", err)
	}
	if obj["lr"] != 0.1 || obj["augment"] != true || obj["optimizer"] != "sgd" || obj["epochs"] != 40.0 {
		t.Errorf("MLBOT_PARAMS decodes to %v", obj)
	}
	// The defaults are untouched by a merge.
	if c.Params[0].Default != "0.5" {
		t.Errorf("ParamValues changed the defaults: %+v", c.Params[0])
	}
	if ParamEnv(nil) != nil {
		t.Error("ParamEnv(nil) is not empty")
	}
}

func TestParamValuesRefusesOverrides(t *testing.T) {
	c, err := ParseRepoConfig(RepoConfigFile, []byte(base+"params:\n  lr: 0.5\n  fast: true\n  name: x\n"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		overrides map[string]string
		want      string
	}{
		{map[string]string{"momentum": "0.9"}, `parameter "momentum" is not declared under params:`},
		{map[string]string{"lr": "fast"}, `parameter lr: "fast" is not a finite number`},
		{map[string]string{"lr": "NaN"}, `parameter lr: "NaN" is not a finite number`},
		{map[string]string{"lr": "1e999"}, `parameter lr: "1e999" is not a finite number`},
		{map[string]string{"fast": "yes"}, `parameter fast: "yes" is not true or false`},
		{map[string]string{"name": "a\x00b"}, `parameter name: "a\x00b" holds a NUL byte`},
		{map[string]string{"lr": "0.1", "LR": "0.2"}, `parameter "LR" is not declared`},
	}
	for _, tt := range tests {
		_, err := c.ParamValues(tt.overrides)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParamValues(%q) = %v, want an error containing %q", tt.overrides, err, tt.want)
		}
	}
}

func TestParamEnvName(t *testing.T) {
	for name, want := range map[string]string{
		"lr": "MLBOT_PARAM_LR", "learning-rate": "MLBOT_PARAM_LEARNING_RATE", "opt.beta1": "MLBOT_PARAM_OPT_BETA1",
		"Drop_Out": "MLBOT_PARAM_DROP_OUT", "x9": "MLBOT_PARAM_X9",
	} {
		if got := ParamEnvName(name); got != want {
			t.Errorf("ParamEnvName(%q) = %q, want %q", name, got, want)
		}
	}
}

func TestParamsErrors(t *testing.T) {
	tests := []struct {
		name  string
		input string
		want  []wantErr
	}{
		{"same environment name", "params:\n  learning-rate: 0.1\n  learning_rate: 0.2\n", []wantErr{{7, 3, `params: "learning_rate" and "learning-rate" (line 6) both become the environment variable MLBOT_PARAM_LEARNING_RATE; rename one`}}},
		{"same name but case", "params:\n  lr: 0.1\n  LR: 0.2\n", []wantErr{{7, 3, "both become the environment variable MLBOT_PARAM_LR"}}},
		{"bad name", "params:\n  \"l r\": 1\n  1st: 2\n  a=b: 3\n", []wantErr{
			{6, 3, `params: "l r" is not a parameter name`}, {7, 3, `params: "1st" is not a parameter name`}, {8, 3, `params: "a=b" is not a parameter name`},
		}},
		{"no default", "params:\n  lr:\n", []wantErr{{6, 6, "params.lr: a default value (number, string or boolean) is required, got nothing"}}},
		{"list default", "params:\n  lr: [0.1, 0.2]\n", []wantErr{{6, 7, "params.lr: a default value (number, string or boolean) is required, got a list"}}},
		{"not finite", "params:\n  lr: .inf\n", []wantErr{{6, 7, "params.lr: finite number expected, got .inf"}}},
		{"not a mapping", "params: [lr]\n", []wantErr{{5, 9, "params: mapping expected, got a list"}}},
		{"permissions.sweep", "permissions:\n  sweep: owner\n", []wantErr{{6, 10, `permissions.sweep: unknown permission level "owner"`}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseRepoConfig(RepoConfigFile, []byte(base+tt.input))
			checkErrors(t, err, tt.want)
		})
	}
}

// checkErrors checks that err is a ConfigErrors holding want, in order.
func checkErrors(t *testing.T, err error, want []wantErr) {
	t.Helper()
	var errs ConfigErrors
	if !errors.As(err, &errs) {
		t.Fatalf("error = %v, want ConfigErrors", err)
	}
	if len(errs) != len(want) {
		t.Fatalf("got %d errors, want %d:\n%v", len(errs), len(want), err)
	}
	for i, w := range want {
		e := errs[i]
		if e.File != ".mlbot.yml" || e.Line != w.line || e.Col != w.col || !strings.Contains(e.Msg, w.msg) {
			t.Errorf("error %d = %q\nwant .mlbot.yml:%d:%d: ...%s...", i, e.Error(), w.line, w.col, w.msg)
		}
	}
}
