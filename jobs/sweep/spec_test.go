package sweep

import (
	"errors"
	"math"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/mlbot/mlbot/configs"
)

const specBase = `version: 1
params:
  lr: 0.5
  epochs: 40
  optimizer: adam
pipeline:
  train: ./train
  metrics: [m.json]
metrics:
  accuracy: {goal: maximize}
`

func mustConfig(t *testing.T, extra string) *configs.RepoConfig {
	t.Helper()
	c, err := configs.ParseRepoConfig(configs.RepoConfigFile, []byte(specBase+extra))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestNewSpec(t *testing.T) {
	tests := []struct {
		name, config, args string
		wantMethod         Method
		wantTrials         int
		wantErr            string
	}{
		{"grid from args, no sweep block", "", "lr=0.05,0.1,0.5 epochs=10,20", MethodGrid, 6, ""},
		{"grid over max_trials turns random", "sweep:\n  max_trials: 4\n", "lr=0.05,0.1,0.5 epochs=10,20", MethodRandom, 4, ""},
		{"continuous is random", "", "lr=uniform(0.01,1)", MethodRandom, 16, ""},
		{"the block's space", "sweep:\n  space:\n    lr: [0.1, 0.2]\n    optimizer: adam,sgd\n", "", MethodGrid, 4, ""},
		{"args replace the block's space", "sweep:\n  space:\n    lr: [0.1, 0.2]\n", "epochs=1,2,3", MethodGrid, 3, ""},
		{"explicit random", "sweep:\n  method: random\n  max_trials: 5\n", "lr=0.1,0.2", MethodRandom, 5, ""},
		{"halving", "sweep:\n  method: halving\n  resource: epochs\n  max_trials: 9\n", "lr=loguniform(0.01,1)", MethodHalving, 9, ""},
		{"explicit grid over max_trials", "sweep:\n  method: grid\n  max_trials: 4\n", "lr=0.05,0.1,0.5 epochs=10,20", "", 0, "the grid lr (3) × epochs (2) has 6 trials, more than max_trials 4 (the cap is 64)"},
		{"explicit grid over the cap", "sweep:\n  method: grid\n", "lr=range(0,10) epochs=range(0,10)", "", 0, "has more than 64 trials, more than max_trials 16"},
		{"explicit grid of a continuous space", "sweep:\n  method: grid\n", "lr=uniform(0,1)", "", 0, "method grid needs lists or ranges only; lr=uniform(0,1) is a uniform"},
		{"halving's resource in the args", "sweep:\n  method: halving\n  resource: epochs\n", "epochs=1,2", "", 0, "epochs=1,2: epochs is halving's resource"},
		{"no space", "", "", "", 0, "no search space"},
		{"unknown parameter", "", "momentum=0.9", "", 0, `"momentum=0.9": momentum is not a parameter declared`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := NewSpec(mustConfig(t, tt.config), tt.args)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("NewSpec = %v, want an error containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s.Method != tt.wantMethod || len(s.Candidates()) != tt.wantTrials || s.Metric != "accuracy" || s.Goal != "maximize" {
				t.Errorf("method %s, %d candidates, metric %s %s; want %s, %d, accuracy maximize", s.Method, len(s.Candidates()), s.Metric, s.Goal, tt.wantMethod, tt.wantTrials)
			}
		})
	}
}

// A malformed expression in the sweep: block is a ConfigError at its line
// and column, quoting it.
func TestNewSpecBlockError(t *testing.T) {
	_, err := NewSpec(mustConfig(t, "sweep:\n  space:\n    lr: uniform(1, 0)\n"), "")
	var ce *configs.ConfigError
	if !errors.As(err, &ce) || ce.Line != 13 || ce.Col != 9 || !strings.Contains(ce.Msg, "sweep.space.lr=uniform(1, 0): the lower bound 1 must be below the upper bound 0") {
		t.Fatalf("error = %v, want .mlbot.yml:13:9 quoting uniform(1, 0)", err)
	}
}

func TestGridCandidates(t *testing.T) {
	s, err := NewSpec(mustConfig(t, ""), "lr=0.05,0.1,0.5 optimizer=adam,sgd")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for i, c := range s.Candidates() {
		if c.Index != i {
			t.Errorf("candidate %d has index %d", i, c.Index)
		}
		got = append(got, c.Params["lr"]+"/"+c.Params["optimizer"])
	}
	want := []string{"0.05/adam", "0.05/sgd", "0.1/adam", "0.1/sgd", "0.5/adam", "0.5/sgd"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("grid = %v, want %v", got, want)
	}
}

// Random trial t depends only on the seed and t: the first trials of a
// larger sweep are those of a smaller one, the same seed gives the same
// values, another seed others; values stay within their dimension and
// repeat no earlier trial while the space has room.
func TestRandomCandidates(t *testing.T) {
	spec := func(seed, n int) Spec {
		s, err := NewSpec(mustConfig(t, "sweep:\n  seed: "+strconv.Itoa(seed)+"\n  max_trials: "+strconv.Itoa(n)+"\n"),
			"lr=loguniform(0.001,1) epochs=int(1,5) optimizer=adam,sgd,rmsprop")
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	small, large := spec(7, 8).Candidates(), spec(7, 64).Candidates()
	if !reflect.DeepEqual(small, large[:8]) {
		t.Errorf("trials 0..7 differ between max_trials 8 and 64:\n%v\n%v", small, large[:8])
	}
	if !reflect.DeepEqual(spec(7, 64).Candidates(), large) {
		t.Error("the same seed gave other trials")
	}
	if reflect.DeepEqual(spec(8, 8).Candidates(), small) {
		t.Error("seeds 7 and 8 gave the same trials")
	}
	seen := map[string]bool{}
	for _, c := range large {
		lr, _ := strconv.ParseFloat(c.Params["lr"], 64)
		ep, _ := strconv.ParseFloat(c.Params["epochs"], 64)
		if lr < 0.001 || lr > 1 || ep < 1 || ep > 5 || ep != math.Trunc(ep) || !strings.Contains("adam sgd rmsprop", c.Params["optimizer"]) {
			t.Errorf("trial %d out of its space: %v", c.Index, c.Params)
		}
		key := c.Params["lr"] + c.Params["epochs"] + c.Params["optimizer"]
		if seen[key] {
			t.Errorf("trial %d repeats an earlier one: %v", c.Index, c.Params)
		}
		seen[key] = true
	}
	// A space of 3 points sampled 5 times: the first 3 are its 3 points.
	s, err := NewSpec(mustConfig(t, "sweep:\n  method: random\n  max_trials: 5\n"), "optimizer=adam,sgd,rmsprop")
	if err != nil {
		t.Fatal(err)
	}
	first := map[string]bool{}
	for _, c := range s.Candidates()[:3] {
		first[c.Params["optimizer"]] = true
	}
	if len(first) != 3 {
		t.Errorf("the first 3 samples of a 3-point space cover %v", first)
	}
}
