package jobs

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/mlbot/mlbot/configs"
	"github.com/mlbot/mlbot/jobs/report"
	"github.com/mlbot/mlbot/jobs/store"
)

// collectExamples reads the per-example results cfg names from dir into
// run, encoded for keeping: a file missing, malformed or over its limits
// fails the run with the reason, as a missing metrics file does. Metrics
// that only the examples carry get the mean of their field.
func collectExamples(ctx context.Context, dir string, cfg *configs.RepoConfig, run *Run, sink io.Writer) {
	name := cfg.Pipeline.Examples
	if name == "" {
		return
	}
	fail := func(err error) {
		run.Outcome, run.Detail = report.OutcomeStepFailed, "reading per-example results: "+err.Error()
		fmt.Fprintf(sink, "mlbot: %s\n", run.Detail)
	}
	ex, err := report.ReadExamples(ctx, dir, name)
	if err != nil {
		fail(err)
		return
	}
	blob, err := report.EncodeExamples(ex)
	if err != nil {
		fail(fmt.Errorf("examples file %q: %w", name, err))
		return
	}
	for k, mean := range ex.Means() {
		if _, ok := run.Metrics[k]; !ok {
			run.Metrics[k] = mean
		}
	}
	run.ExampleData, run.ExampleBlob, run.Examples = ex, blob, ex.Len()
	fmt.Fprintf(sink, "mlbot: %d examples with %d numeric fields collected from %s (%d KiB kept)\n", ex.Len(), len(ex.Fields), name, (len(blob)+1023)/1024)
	for field, n := range ex.Partial {
		fmt.Fprintf(sink, "mlbot: %s: field %q is a number in only %d of %d examples; it is left out of the significance\n", name, field, n, ex.Len())
	}
}

// compareExamples keeps run's per-example results for the runs that will
// be compared with it, and compares them with base's (nil when there is
// none) into run.Significance. When a gate wants the comparison and it
// cannot be made, run.Significance says why, and the gates fall back to
// plain max_drop.
func (w *Worker) compareExamples(ctx context.Context, run, base *Run) error {
	if run.ExampleBlob != nil && run.Kind == KindBaseline {
		// Only default-branch runs serve as bases; a pull request's results
		// are compared now and not needed again.
		if err := w.store.PutExamples(ctx, run.ID, run.ExampleBlob); err != nil {
			return err
		}
	}
	wants := run.ExampleData != nil
	for _, s := range run.Specs {
		wants = wants || s.Significance != nil || s.NonInferiority != nil
	}
	if base == nil || !wants {
		return nil
	}
	switch {
	case run.ExampleData == nil:
		run.Significance = report.NoSignificance("this run wrote no per-example results (pipeline.examples)")
		return nil
	case base.Examples == 0:
		run.Significance = report.NoSignificance("the base run " + short(base.SHA) + " wrote no per-example results")
		return nil
	}
	bex, err := w.store.Examples(ctx, base.ID)
	if errors.Is(err, store.ErrNoExamples) {
		run.Significance = report.NoSignificance("the base run's per-example results are no longer kept")
		return nil
	}
	if err != nil {
		return err
	}
	run.Significance = report.CompareExamples(bex, run.ExampleData, run.Specs)
	return nil
}
