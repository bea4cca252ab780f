package registry

import "time"

// MaxVerificationSamples bounds the samples a deploy record keeps: the
// newest of them (a verification of ten minutes every 30 seconds reads 21).
const MaxVerificationSamples = 500

// Verification is what a deploy's verification observed: the query of the
// environment's verify: block, its bounds, and the values read, so that
// the deploy page can show them against the threshold.
type Verification struct {
	Query string   `json:"query"`
	Min   *float64 `json:"min,omitempty"`
	Max   *float64 `json:"max,omitempty"`
	// Samples are the values read, oldest first, at most
	// MaxVerificationSamples (the newest).
	Samples []Sample `json:"samples"`
	// Breached is set when a value left the bounds (or none came) and the
	// deploy was rolled back; Reason says why.
	Breached bool   `json:"breached,omitempty"`
	Reason   string `json:"reason,omitempty"`
	// Error is set when the verification could not run to its end
	// (Prometheus unreachable, an invalid query).
	Error string `json:"error,omitempty"`
}

// Sample is one value of a verification query, at the time it was
// evaluated.
type Sample struct {
	At    time.Time `json:"at"`
	Value float64   `json:"value"`
}

// AddSamples appends samples, keeping the newest MaxVerificationSamples.
func (v *Verification) AddSamples(samples ...Sample) {
	v.Samples = append(v.Samples, samples...)
	if n := len(v.Samples) - MaxVerificationSamples; n > 0 {
		v.Samples = append([]Sample(nil), v.Samples[n:]...)
	}
}
