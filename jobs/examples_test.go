package jobs

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mlbot/mlbot/configs"
	"github.com/mlbot/mlbot/jobs/report"
	"github.com/mlbot/mlbot/runners/agentapi"
)

// TestExamplesLimitsAgree keeps the agent's limit on the examples file
// the one the pipeline reads it with.
func TestExamplesLimitsAgree(t *testing.T) {
	if agentapi.MaxExamplesFileBytes != report.MaxExamplesFileBytes {
		t.Errorf("agentapi.MaxExamplesFileBytes = %d, report.MaxExamplesFileBytes = %d", agentapi.MaxExamplesFileBytes, report.MaxExamplesFileBytes)
	}
}

func TestCollectExamples(t *testing.T) {
	cfg := &configs.RepoConfig{Pipeline: configs.Pipeline{Examples: "eval/examples.jsonl"}}
	cases := []struct {
		name, file string
		fails      string // in run.Detail; "" for a run that collects
	}{
		{"collected", "{\"id\": 1, \"accuracy\": 1, \"loss\": 0.5}\n{\"id\": 2, \"accuracy\": 0, \"loss\": 1.5}\n", ""},
		{"missing", "", "reading per-example results: examples file \"eval/examples.jsonl\""},
		{"malformed", "{\"id\": 1}\n{\"accuracy\": 1}\n", "line 2: no \"id\""},
		{"over the limit", strings.Repeat("{\"id\": 1}\n", report.MaxExamplesFileBytes/10+1), "the limit is 32 MiB"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if tc.file != "" {
				os.MkdirAll(filepath.Join(dir, "eval"), 0o755)
				if err := os.WriteFile(filepath.Join(dir, "eval", "examples.jsonl"), []byte(tc.file), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			run := &Run{Metrics: map[string]float64{"accuracy": 0.5}}
			var log bytes.Buffer
			collectExamples(context.Background(), dir, cfg, run, &log)
			if tc.fails != "" {
				if run.Outcome != report.OutcomeStepFailed || !strings.Contains(run.Detail, tc.fails) || !strings.Contains(log.String(), tc.fails) {
					t.Errorf("outcome %q, detail %q, log %q; want a failed step saying %q", run.Outcome, run.Detail, log.String(), tc.fails)
				}
				return
			}
			if run.Outcome != "" || run.Examples != 2 || run.ExampleBlob == nil || run.ExampleData == nil {
				t.Fatalf("run %+v, log %q", run, log.String())
			}
			// accuracy came from the metrics file; loss only from the examples.
			if run.Metrics["accuracy"] != 0.5 || run.Metrics["loss"] != 1 {
				t.Errorf("metrics %v, want accuracy kept and loss the examples' mean", run.Metrics)
			}
			if !strings.Contains(log.String(), "2 examples with 2 numeric fields") {
				t.Errorf("log %q", log.String())
			}
		})
	}
}
