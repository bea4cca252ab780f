// Command softmax trains and evaluates a multinomial logistic (softmax)
// regression on the 8×8 handwritten digits data set (digits.csv.gz, 1797
// rows of 64 pixel values 0..16 followed by the label 0..9).
//
// It is the example model of mlbot's demo: self-contained, standard library
// only, and deterministic (the same flags give byte-identical output files).
//
//	go run softmax.go train --lr 0.5 --epochs 40 --l2 0.0001 --seed 42 --out model.json
//	go run softmax.go evaluate --model model.json --out metrics.json
//
// Under mlbot, the learning rate, epochs and L2 penalty come from the
// parameters .mlbot.yml declares (params: lr, epochs, l2): mlbot passes
// them as MLBOT_PARAM_LR, MLBOT_PARAM_EPOCHS and MLBOT_PARAM_L2, which
// become the flags' defaults; a flag given on the command line wins.
//
// The 80/20 train/test split is fixed (a shuffle with splitSeed, independent
// of --seed), so changing hyperparameters never changes the test set.
package main

import (
	"bufio"
	"compress/gzip"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

const (
	numFeatures  = 64
	numClasses   = 10
	splitSeed    = 1  // seed of the train/test split shuffle; never a flag
	testPercent  = 20 // share of the rows held out for evaluate
	defaultData  = "digits.csv.gz"
	metricDigits = 1e6 // metrics are rounded to 6 decimals
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "softmax:", err)
		os.Exit(1)
	}
}

const usage = `usage:
  softmax train    [--data digits.csv.gz] [--lr 0.5] [--epochs 40] [--l2 0.0001]
                   [--batch 32] [--seed 42] [--log-every 5] [--out model.json]
  softmax evaluate [--data digits.csv.gz] [--model model.json] [--out metrics.json]
`

// run dispatches a subcommand; main and the tests call it.
func run(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("missing subcommand (train or evaluate)")
	}
	switch args[0] {
	case "train":
		return runTrain(args[1:], stdout, stderr)
	case "evaluate", "eval":
		return runEvaluate(args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("unknown subcommand %q (want train or evaluate)", args[0])
	}
}

// TrainConfig holds the hyperparameters of one training run.
type TrainConfig struct {
	LR        float64 `json:"lr"`
	Epochs    int     `json:"epochs"`
	L2        float64 `json:"l2"`
	BatchSize int     `json:"batch_size"`
	Seed      uint64  `json:"seed"`
}

func (c TrainConfig) validate() error {
	switch {
	case !(c.LR > 0) || math.IsInf(c.LR, 0):
		return fmt.Errorf("--lr must be a positive number, got %v", c.LR)
	case c.Epochs < 1:
		return fmt.Errorf("--epochs must be at least 1, got %d", c.Epochs)
	case !(c.L2 >= 0) || math.IsInf(c.L2, 0):
		return fmt.Errorf("--l2 must be a non-negative number, got %v", c.L2)
	case c.BatchSize < 1:
		return fmt.Errorf("--batch must be at least 1, got %d", c.BatchSize)
	}
	return nil
}

// Model is what train writes to model.json and evaluate reads back.
type Model struct {
	Kind            string      `json:"kind"`
	Features        int         `json:"features"`
	Classes         int         `json:"classes"`
	Hyperparameters TrainConfig `json:"hyperparameters"`
	Split           SplitInfo   `json:"split"`
	TrainLoss       float64     `json:"train_loss"`
	Mean            []float64   `json:"mean"`
	Std             []float64   `json:"std"`
	Weights         [][]float64 `json:"weights"` // [class][feature], on standardised features
	Bias            []float64   `json:"bias"`
}

// SplitInfo records the split the model was trained on.
type SplitInfo struct {
	Seed        uint64 `json:"seed"`
	TestPercent int    `json:"test_percent"`
	NTrain      int    `json:"n_train"`
	NTest       int    `json:"n_test"`
}

// Metrics is what evaluate writes to metrics.json.
type Metrics struct {
	Accuracy float64                       `json:"accuracy"`
	Loss     float64                       `json:"loss"`
	MacroF1  float64                       `json:"macro_f1"`
	NTest    int                           `json:"n_test"`
	PerClass map[string]map[string]float64 `json:"per_class"`
}

// Dataset is the parsed CSV: X[i] has numFeatures values, Y[i] is 0..9.
type Dataset struct {
	X [][]float64
	Y []int
}

func runTrain(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("train", flag.ContinueOnError)
	fs.SetOutput(stderr)
	data := fs.String("data", defaultData, "path of the digits CSV (gzip)")
	out := fs.String("out", "model.json", "where to write the model")
	cfg := TrainConfig{}
	lr, epochs, l2, err := paramDefaults(os.Getenv)
	if err != nil {
		return err
	}
	fs.Float64Var(&cfg.LR, "lr", lr, "learning rate (default: $MLBOT_PARAM_LR or 0.5)")
	fs.IntVar(&cfg.Epochs, "epochs", epochs, "passes over the training set (default: $MLBOT_PARAM_EPOCHS or 40)")
	fs.Float64Var(&cfg.L2, "l2", l2, "L2 penalty on the weights (default: $MLBOT_PARAM_L2 or 0.0001)")
	fs.IntVar(&cfg.BatchSize, "batch", 32, "mini-batch size")
	fs.Uint64Var(&cfg.Seed, "seed", 42, "seed of the mini-batch shuffles")
	logEvery := fs.Int("log-every", 5, "print the train loss every N epochs")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("train: unexpected arguments %q", fs.Args())
	}
	ds, err := LoadData(*data)
	if err != nil {
		return err
	}
	start := time.Now()
	m, err := Train(ds, cfg, stdout, *logEvery)
	if err != nil {
		return err
	}
	if err := writeJSON(*out, m); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "trained on %d rows in %s, train_loss %.4f, wrote %s\n",
		m.Split.NTrain, time.Since(start).Round(time.Millisecond), m.TrainLoss, *out)
	return nil
}

// paramDefaults returns the defaults of --lr, --epochs and --l2: the
// parameters mlbot passes (MLBOT_PARAM_LR, MLBOT_PARAM_EPOCHS,
// MLBOT_PARAM_L2) when set, 0.5, 40 and 0.0001 otherwise.
func paramDefaults(getenv func(string) string) (lr float64, epochs int, l2 float64, err error) {
	lr, epochs, l2 = 0.5, 40, 0.0001
	if v := getenv("MLBOT_PARAM_LR"); v != "" {
		if lr, err = strconv.ParseFloat(v, 64); err != nil {
			return 0, 0, 0, fmt.Errorf("MLBOT_PARAM_LR: %w", err)
		}
	}
	if v := getenv("MLBOT_PARAM_EPOCHS"); v != "" {
		// A sweep may write a whole number as "20" or, from a range of
		// floats, "20.0": both are 20 epochs; 20.5 is refused.
		f, perr := strconv.ParseFloat(v, 64)
		if perr != nil || f != math.Trunc(f) || f > math.MaxInt32 || f < math.MinInt32 {
			return 0, 0, 0, fmt.Errorf("MLBOT_PARAM_EPOCHS: %q is not a whole number", v)
		}
		epochs = int(f)
	}
	if v := getenv("MLBOT_PARAM_L2"); v != "" {
		if l2, err = strconv.ParseFloat(v, 64); err != nil {
			return 0, 0, 0, fmt.Errorf("MLBOT_PARAM_L2: %w", err)
		}
	}
	return lr, epochs, l2, nil
}

func runEvaluate(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("evaluate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	data := fs.String("data", defaultData, "path of the digits CSV (gzip)")
	modelPath := fs.String("model", "model.json", "model written by train")
	out := fs.String("out", "metrics.json", "where to write the metrics")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("evaluate: unexpected arguments %q", fs.Args())
	}
	m, err := ReadModel(*modelPath)
	if err != nil {
		return err
	}
	ds, err := LoadData(*data)
	if err != nil {
		return err
	}
	met, err := Evaluate(m, ds)
	if err != nil {
		return err
	}
	if err := writeJSON(*out, met); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "accuracy %.4f  macro_f1 %.4f  loss %.4f  n_test %d, wrote %s\n",
		met.Accuracy, met.MacroF1, met.Loss, met.NTest, *out)
	return nil
}

// LoadData reads the gzip-compressed CSV: no header, 64 features then the label.
func LoadData(path string) (*Dataset, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("data: %w", err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(bufio.NewReader(f))
	if err != nil {
		return nil, fmt.Errorf("data %s: %w", path, err)
	}
	defer zr.Close()
	r := csv.NewReader(zr)
	r.FieldsPerRecord = numFeatures + 1
	r.ReuseRecord = true
	ds := &Dataset{}
	for line := 1; ; line++ {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("data %s: %w", path, err)
		}
		x := make([]float64, numFeatures)
		for j := 0; j < numFeatures; j++ {
			v, err := strconv.ParseFloat(rec[j], 64)
			if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
				return nil, fmt.Errorf("data %s:%d: column %d: bad number %q", path, line, j+1, rec[j])
			}
			x[j] = v
		}
		lf, err := strconv.ParseFloat(rec[numFeatures], 64)
		y := int(lf)
		if err != nil || float64(y) != lf || y < 0 || y >= numClasses {
			return nil, fmt.Errorf("data %s:%d: bad label %q (want 0..%d)", path, line, rec[numFeatures], numClasses-1)
		}
		ds.X = append(ds.X, x)
		ds.Y = append(ds.Y, y)
	}
	if len(ds.Y) < 10 {
		return nil, fmt.Errorf("data %s: only %d rows", path, len(ds.Y))
	}
	return ds, nil
}

// rng is splitmix64: tiny, and its sequence is fixed forever, unlike
// math/rand's, so a split or shuffle never changes with the Go version.
type rng struct{ state uint64 }

func (r *rng) next() uint64 {
	r.state += 0x9e3779b97f4a7c15
	z := r.state
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// intn returns a uniform value in [0, n) (rejection sampling, no modulo bias).
func (r *rng) intn(n int) int {
	un := uint64(n)
	limit := math.MaxUint64 - math.MaxUint64%un
	for {
		if v := r.next(); v < limit {
			return int(v % un)
		}
	}
}

// shuffle is a Fisher–Yates shuffle of idx.
func (r *rng) shuffle(idx []int) {
	for i := len(idx) - 1; i > 0; i-- {
		j := r.intn(i + 1)
		idx[i], idx[j] = idx[j], idx[i]
	}
}

// Split returns the fixed train and test row indices for n rows.
func Split(n int) (train, test []int) {
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	r := &rng{state: splitSeed}
	r.shuffle(idx)
	nTest := (n*testPercent + 99) / 100
	return idx[nTest:], idx[:nTest]
}

// Train fits the model on the training part of ds, logging the train loss to
// logw every logEvery epochs (and after the last one); logEvery < 1 logs nothing.
func Train(ds *Dataset, cfg TrainConfig, logw io.Writer, logEvery int) (*Model, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	trainIdx, testIdx := Split(len(ds.Y))
	m := &Model{
		Kind:            "softmax-regression",
		Features:        numFeatures,
		Classes:         numClasses,
		Hyperparameters: cfg,
		Split:           SplitInfo{Seed: splitSeed, TestPercent: testPercent, NTrain: len(trainIdx), NTest: len(testIdx)},
		Mean:            make([]float64, numFeatures),
		Std:             make([]float64, numFeatures),
		Weights:         make([][]float64, numClasses),
		Bias:            make([]float64, numClasses),
	}
	for k := range m.Weights {
		m.Weights[k] = make([]float64, numFeatures)
	}

	// Standardisation statistics from the training rows only.
	for _, i := range trainIdx {
		for j, v := range ds.X[i] {
			m.Mean[j] += v
		}
	}
	nt := float64(len(trainIdx))
	for j := range m.Mean {
		m.Mean[j] /= nt
	}
	for _, i := range trainIdx {
		for j, v := range ds.X[i] {
			d := v - m.Mean[j]
			m.Std[j] += d * d
		}
	}
	for j := range m.Std {
		m.Std[j] = math.Sqrt(m.Std[j] / nt)
		if m.Std[j] < 1e-12 { // constant pixel: leave it at 0 after centring
			m.Std[j] = 1
		}
	}
	xs := make([][]float64, len(ds.Y))
	for _, i := range trainIdx {
		xs[i] = m.standardise(ds.X[i])
	}

	r := &rng{state: cfg.Seed}
	order := append([]int(nil), trainIdx...)
	gradW := make([][]float64, numClasses)
	for k := range gradW {
		gradW[k] = make([]float64, numFeatures)
	}
	gradB := make([]float64, numClasses)
	p := make([]float64, numClasses)

	for epoch := 1; epoch <= cfg.Epochs; epoch++ {
		r.shuffle(order)
		for start := 0; start < len(order); start += cfg.BatchSize {
			batch := order[start:min(start+cfg.BatchSize, len(order))]
			for k := range gradW {
				clear(gradW[k])
			}
			clear(gradB)
			for _, i := range batch {
				x := xs[i]
				m.probs(x, p)
				p[ds.Y[i]] -= 1 // dLoss/dlogits = p - onehot(y)
				for k, g := range p {
					gradB[k] += g
					row := gradW[k]
					for j, v := range x {
						row[j] += g * v
					}
				}
			}
			scale := cfg.LR / float64(len(batch))
			for k := range m.Weights {
				w := m.Weights[k]
				for j := range w {
					w[j] -= scale*gradW[k][j] + cfg.LR*cfg.L2*w[j]
				}
				m.Bias[k] -= scale * gradB[k]
			}
		}
		loss := m.meanLoss(xs, ds.Y, trainIdx) + 0.5*cfg.L2*m.weightNorm2()
		if math.IsNaN(loss) || math.IsInf(loss, 0) {
			return nil, fmt.Errorf("training diverged at epoch %d (train loss %v): lower --lr", epoch, loss)
		}
		m.TrainLoss = loss
		if logw != nil && logEvery > 0 && (epoch%logEvery == 0 || epoch == cfg.Epochs || epoch == 1) {
			fmt.Fprintf(logw, "epoch %3d/%d  train_loss %.6f\n", epoch, cfg.Epochs, loss)
		}
	}
	return m, nil
}

// Evaluate scores m on the held-out rows of ds.
func Evaluate(m *Model, ds *Dataset) (*Metrics, error) {
	if err := m.check(); err != nil {
		return nil, err
	}
	_, testIdx := Split(len(ds.Y))
	if m.Split.NTest != 0 && m.Split.NTest != len(testIdx) {
		return nil, fmt.Errorf("model was trained with a %d-row test set, the data gives %d rows: different data file?", m.Split.NTest, len(testIdx))
	}
	var confusion [numClasses][numClasses]int // [true][predicted]
	p := make([]float64, numClasses)
	var lossSum float64
	correct := 0
	for _, i := range testIdx {
		x := m.standardise(ds.X[i])
		lossSum -= m.logProbs(x, p)[ds.Y[i]]
		pred := argmax(p)
		confusion[ds.Y[i]][pred]++
		if pred == ds.Y[i] {
			correct++
		}
	}
	n := len(testIdx)
	loss := lossSum / float64(n)
	if math.IsNaN(loss) || math.IsInf(loss, 0) {
		return nil, fmt.Errorf("test loss is %v: the model's weights are not finite", loss)
	}
	f1 := make(map[string]float64, numClasses)
	var macro float64
	for k := 0; k < numClasses; k++ {
		tp := confusion[k][k]
		fp, fn := 0, 0
		for o := 0; o < numClasses; o++ {
			if o != k {
				fp += confusion[o][k]
				fn += confusion[k][o]
			}
		}
		var f float64
		if d := 2*tp + fp + fn; d > 0 {
			f = float64(2*tp) / float64(d)
		}
		macro += f
		f1[strconv.Itoa(k)] = round(f)
	}
	return &Metrics{
		Accuracy: round(float64(correct) / float64(n)),
		Loss:     round(loss),
		MacroF1:  round(macro / numClasses),
		NTest:    n,
		PerClass: map[string]map[string]float64{"f1": f1},
	}, nil
}

// ReadModel loads and checks a model.json.
func ReadModel(path string) (*Model, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	var m Model
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("model %s: %w", path, err)
	}
	if err := m.check(); err != nil {
		return nil, fmt.Errorf("model %s: %w", path, err)
	}
	return &m, nil
}

func (m *Model) check() error {
	if m.Features != numFeatures || m.Classes != numClasses ||
		len(m.Mean) != numFeatures || len(m.Std) != numFeatures ||
		len(m.Weights) != numClasses || len(m.Bias) != numClasses {
		return fmt.Errorf("want %d features and %d classes with matching mean, std, weights and bias", numFeatures, numClasses)
	}
	for k, w := range m.Weights {
		if len(w) != numFeatures {
			return fmt.Errorf("weights[%d] has %d values, want %d", k, len(w), numFeatures)
		}
	}
	for j, s := range m.Std {
		if !(s > 0) {
			return fmt.Errorf("std[%d] is %v, want > 0", j, s)
		}
	}
	if m.Split.Seed != splitSeed || (m.Split.TestPercent != 0 && m.Split.TestPercent != testPercent) {
		return fmt.Errorf("model was trained on split seed %d / %d%% test, this program uses %d / %d%%",
			m.Split.Seed, m.Split.TestPercent, splitSeed, testPercent)
	}
	return nil
}

func (m *Model) standardise(raw []float64) []float64 {
	x := make([]float64, len(raw))
	for j, v := range raw {
		x[j] = (v - m.Mean[j]) / m.Std[j]
	}
	return x
}

// logProbs writes the log-softmax of the logits of x into lp and returns it.
func (m *Model) logProbs(x, lp []float64) []float64 {
	maxLogit := math.Inf(-1)
	for k, w := range m.Weights {
		z := m.Bias[k]
		for j, v := range x {
			z += w[j] * v
		}
		lp[k] = z
		maxLogit = max(maxLogit, z)
	}
	var sum float64
	for _, z := range lp {
		sum += math.Exp(z - maxLogit)
	}
	lse := maxLogit + math.Log(sum)
	for k := range lp {
		lp[k] -= lse
	}
	return lp
}

// probs writes the softmax probabilities of x into p.
func (m *Model) probs(x, p []float64) {
	m.logProbs(x, p)
	for k, v := range p {
		p[k] = math.Exp(v)
	}
}

func (m *Model) meanLoss(xs [][]float64, y []int, idx []int) float64 {
	lp := make([]float64, numClasses)
	var s float64
	for _, i := range idx {
		s -= m.logProbs(xs[i], lp)[y[i]]
	}
	return s / float64(len(idx))
}

func (m *Model) weightNorm2() float64 {
	var s float64
	for _, w := range m.Weights {
		for _, v := range w {
			s += v * v
		}
	}
	return s
}

func argmax(v []float64) int {
	best := 0
	for k := 1; k < len(v); k++ {
		if v[k] > v[best] {
			best = k
		}
	}
	return best
}

func round(v float64) float64 { return math.Round(v*metricDigits) / metricDigits }

// writeJSON writes v as indented JSON, via a temporary file and a rename so a
// failed run never leaves a half-written file behind.
func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	b = append(b, '\n')
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
