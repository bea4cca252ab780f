// Package deploystate names the states of a deploy. The registry records
// them and the report renders them; neither owns the other, so the names
// live here, in a package that imports nothing, and both stay leaves.
package deploystate

// The states of a deploy, as the registry stores them in its records and
// the pages and the API show them. Changing a value breaks stored records.
const (
	// Queued: asked for, waiting for its turn in the environment's line.
	Queued = "queued"
	// Running: its command is running, or a worker died running it.
	Running = "running"
	// Succeeded: its command exited with status 0 and, if the environment
	// has a verify: block, the verification held.
	Succeeded = "succeeded"
	// Failed: its command failed, or it could not be run.
	Failed = "failed"
	// RolledBack: it ran, its verification failed, and the previous
	// version was queued in its place.
	RolledBack = "rolled_back"
	// Dropped: a newer version was queued behind it before its turn came.
	Dropped = "dropped"
	// Refused: nothing ran, because the version is worse than what the
	// environment runs now, or was made by an untrusted run.
	Refused = "refused"
)

// Done reports whether state is final: a deploy in it never runs again.
func Done(state string) bool {
	switch state {
	case Succeeded, Failed, RolledBack, Dropped, Refused:
		return true
	}
	return false
}
