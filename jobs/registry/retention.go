package registry

import (
	"fmt"
	"slices"
	"time"

	"github.com/mlbot/mlbot/jobs/deploystate"
)

// Policy says which model versions of a repository retention keeps. A
// version is kept when any rule keeps it; the others are dropped, and their
// artifact blobs deleted once no kept version names them (Collect).
type Policy struct {
	// Deploys is how many of the newest successful deploys of each
	// environment keep their versions as rollback targets. Whatever it
	// is, the version an environment runs now (its newest successful
	// deploy) and the version of every deploy not yet finished are kept.
	Deploys int
	// DefaultBranch is how many of the newest versions made on the
	// default branch (by a push, not a pull request) are kept.
	DefaultBranch int
	// MaxAge keeps every version recorded less than MaxAge ago.
	MaxAge time.Duration
}

// Kept is a version retention keeps, with every reason it is kept.
type Kept struct {
	Version Version
	// Reasons are sentences such as "runs in production now", in the
	// order of the rules: deploys (by environment), default branch, age.
	Reasons []string
}

// Decision is what a Policy makes of one repository's versions.
type Decision struct {
	Repo string
	// Keep and Drop are the versions kept and dropped, newest first.
	Keep []Kept
	Drop []Version
}

// Decide splits versions (of one repository, in any order) into those the
// policy keeps and those it drops, at time now. deploys maps each
// environment to its deploy history, newest first (Registry.Deploys); a
// deploy of a version that is not among versions is ignored.
func (p Policy) Decide(versions []Version, deploys map[string][]Deploy, now time.Time) Decision {
	versions = slices.Clone(versions)
	slices.SortFunc(versions, func(a, b Version) int { return b.Number - a.Number })
	reasons := map[int][]string{}
	add := func(n int, why string) {
		if !slices.Contains(reasons[n], why) {
			reasons[n] = append(reasons[n], why)
		}
	}

	envs := make([]string, 0, len(deploys))
	for env := range deploys {
		envs = append(envs, env)
	}
	slices.Sort(envs)
	for _, env := range envs {
		succeeded := 0
		seen := map[int]bool{} // one reason per version and environment
		for _, d := range deploys[env] {
			switch {
			case !d.Done():
				add(d.Version, fmt.Sprintf("a deploy to %s is under way", env))
			case d.State == deploystate.Succeeded:
				// The newest success runs there now; it counts as the
				// first of the last p.Deploys.
				succeeded++
				switch {
				case seen[d.Version]:
				case succeeded == 1:
					add(d.Version, fmt.Sprintf("runs in %s now", env))
				case succeeded <= p.Deploys:
					add(d.Version, fmt.Sprintf("rollback target in %s (deploy %d of the last %d)", env, succeeded, p.Deploys))
				default:
					continue
				}
				seen[d.Version] = true
			}
		}
	}
	onDefault := 0
	for _, v := range versions {
		if v.PR != 0 {
			continue
		}
		onDefault++
		if onDefault <= p.DefaultBranch {
			add(v.Number, fmt.Sprintf("one of the last %d versions of the default branch", p.DefaultBranch))
		}
	}
	for _, v := range versions {
		if now.Sub(v.Created) < p.MaxAge {
			add(v.Number, fmt.Sprintf("recorded less than %s ago", ageText(p.MaxAge)))
		}
	}

	var d Decision
	if len(versions) > 0 {
		d.Repo = versions[0].Repo
	}
	for _, v := range versions {
		if why := reasons[v.Number]; len(why) > 0 {
			d.Keep = append(d.Keep, Kept{Version: v, Reasons: why})
		} else {
			d.Drop = append(d.Drop, v)
		}
	}
	return d
}

// ageText writes a retention age in days when it is whole days.
func ageText(d time.Duration) string {
	const day = 24 * time.Hour
	switch {
	case d == day:
		return "1 day"
	case d > 0 && d%day == 0:
		return fmt.Sprintf("%d days", d/day)
	}
	return d.String()
}
