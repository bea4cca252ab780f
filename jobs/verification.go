package jobs

import (
	"github.com/mlbot/mlbot/configs"
	"github.com/mlbot/mlbot/jobs/registry"
	"github.com/mlbot/mlbot/jobs/verify"
)

// verificationRecord is what a deploy's record keeps of its verification
// against v: the query, its bounds, each value read (the newest
// registry.MaxVerificationSamples), and how it ended, so that the deploy
// page can draw the values against the threshold.
func verificationRecord(v configs.Verify, res verify.Result, err error) *registry.Verification {
	rec := &registry.Verification{Query: v.Query, Min: v.Min, Max: v.Max, Breached: res.Breached, Reason: res.Reason}
	for _, s := range res.Observed {
		rec.AddSamples(registry.Sample{At: s.At.UTC(), Value: s.Value})
	}
	if err != nil {
		rec.Error = err.Error()
	}
	return rec
}
