// Package sweep plans hyperparameter sweeps: it parses a search space (the
// arguments of a "/sweep lr=0.05,0.1 epochs=10,20" comment or the space of
// a .mlbot.yml sweep: block) into a Spec, turns the Spec into trials (a
// grid, seeded random samples, or the rungs of synchronous successive
// halving), and ranks the trials' results.
//
// Everything here is pure and deterministic: the same Spec gives the same
// trials on every worker, a trial's values depend only on the sweep's seed
// and the trial's index, and Halving is a state machine fed with results.
// Running the trials (as pipeline runs with parameter overrides, see
// configs.RepoConfig.ParamValues) is the caller's business.
//
// # Search space syntax
//
// Each dimension is "name=expr" in a comment (dimensions separated by
// blanks) or "name: expr" under sweep.space, where name is a parameter
// declared under params: and expr is one of
//
//	a,b,c                     the listed values (a YAML list works too)
//	range(start,stop[,step])  start, start+step, … up to stop, excluded; step defaults to 1
//	uniform(a,b)              a number drawn uniformly from [a, b)
//	loguniform(a,b)           a number whose logarithm is uniform; 0 < a < b
//	int(a,b)                  a whole number drawn uniformly from a..b, both included
//
// Lists and ranges are discrete; when every dimension is and their product
// is within max_trials the sweep is a grid, otherwise max_trials random
// samples.
package sweep
