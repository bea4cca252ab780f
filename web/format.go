package web

import (
	"fmt"
	"html/template"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/mlbot/mlbot/bot"
	"github.com/mlbot/mlbot/jobs/report"
	"github.com/mlbot/mlbot/jobs/store"
)

// funcs are the helpers the page templates use.
var funcs = template.FuncMap{
	"dur":      report.HumanDuration,
	"num":      report.FormatNumber,
	"ago":      ago,
	"when":     when,
	"iso":      func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	"short":    shortSHA,
	"size":     humanBytes,
	"repoHref": repoHref,
	"repoName": func(r bot.Repo) string { return r.FullName },
	"forge":    forgeTitle,
	"commit":   commitURL,
	"pr":       pullRequestURL,
	"badge":    badgeClass,
	"runLabel": runLabel,
	"runTime":  runDuration,
	"modelHref": func(repo string, n int) string {
		forge, name, _ := strings.Cut(repo, ":")
		return "/models/" + forge + "/" + escapePath(name) + "/" + strconv.Itoa(n)
	},
	"add":   func(a, b int) int { return a + b },
	"state": runState,
	"px":    px,
	"deref": func(f *float64) float64 { return *f },
	"plus":  func(a, b float64) float64 { return a + b },
	"inc":   func(i int) int { return i + 1 },
}

// now is the clock relative times are told by.
var now = time.Now

// ago tells how long ago t was: "just now", "5m ago", "3h ago", "2d ago";
// "" for the zero time.
func ago(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	d := now().Sub(t)
	switch {
	case d < 0:
		return "in " + report.HumanDuration(-d)
	case d < 10*time.Second:
		return "just now"
	case d < time.Minute:
		return strconv.Itoa(int(d/time.Second)) + "s ago"
	case d < time.Hour:
		return strconv.Itoa(int(d/time.Minute)) + "m ago"
	case d < 48*time.Hour:
		return strconv.Itoa(int(d/time.Hour)) + "h ago"
	default:
		return strconv.Itoa(int(d/(24*time.Hour))) + "d ago"
	}
}

// when writes t as a date and time in UTC; "" for the zero time.
func when(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

// shortSHA is the usual 7 characters of a commit.
func shortSHA(sha string) string {
	if len(sha) > 7 {
		return sha[:7]
	}
	return sha
}

// humanBytes writes a size as "512 B", "1.5 KiB", "2.3 MiB".
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatInt(n, 10) + " B"
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}

// escapePath escapes each segment of a slash-separated name.
func escapePath(name string) string {
	segs := strings.Split(name, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/")
}

// repoHref is the page of a repository.
func repoHref(r bot.Repo) string {
	return "/repos/" + url.PathEscape(r.Forge) + "/" + escapePath(strings.ToLower(r.FullName))
}

// hostURL returns the repository's page on its host joined with path, or
// "" when the repository's web URL is not an http(s) URL.
func hostURL(r bot.Repo, path string) string {
	u, err := url.Parse(r.WebURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return ""
	}
	return strings.TrimSuffix(r.WebURL, "/") + path
}

// commitURL is a commit's page on the host.
func commitURL(r bot.Repo, sha string) string {
	if sha == "" {
		return ""
	}
	if r.Forge == "gitlab" {
		return hostURL(r, "/-/commit/"+url.PathEscape(sha))
	}
	return hostURL(r, "/commit/"+url.PathEscape(sha))
}

// pullRequestURL is a pull or merge request's page on the host: the one
// its events named, or the host's usual address.
func pullRequestURL(r bot.Repo, pr *bot.PullRequest) string {
	if pr == nil {
		return ""
	}
	if u, err := url.Parse(pr.URL); err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != "" {
		return pr.URL
	}
	if r.Forge == "gitlab" {
		return hostURL(r, "/-/merge_requests/"+strconv.Itoa(pr.Number))
	}
	return hostURL(r, "/pull/"+strconv.Itoa(pr.Number))
}

// badgeClass is the CSS class of a state or outcome's badge.
func badgeClass(state string) string {
	switch state {
	case string(report.OutcomePassed), "succeeded", "success":
		return "badge ok"
	case string(report.OutcomeGateFailed), string(report.OutcomeStepFailed), string(report.OutcomeError), "failed", "rolled_back":
		return "badge bad"
	case string(report.OutcomeTimedOut), string(report.OutcomeConfigError), "refused":
		return "badge warn"
	case string(store.RunRunning):
		return "badge live"
	default:
		return "badge"
	}
}

// runLabel says what a run ran: "#3 Tune the learning rate" for a pull
// request, the branch otherwise.
func runLabel(r *store.Run) string {
	if r.PR != nil {
		s := "#" + strconv.Itoa(r.PR.Number)
		if r.PR.Title != "" {
			s += " " + r.PR.Title
		}
		return s
	}
	if r.Branch != "" {
		return r.Branch
	}
	if r.Repo.DefaultBranch != "" {
		return r.Repo.DefaultBranch
	}
	return string(r.Kind)
}

// runDuration says how long a run took, or has been running.
func runDuration(r *store.Run) string {
	switch {
	case !r.Started.IsZero() && !r.Finished.IsZero():
		return report.HumanDuration(r.Finished.Sub(r.Started))
	case !r.Started.IsZero() && r.State == store.RunRunning:
		return report.HumanDuration(now().Sub(r.Started)) + " so far"
	case r.Train+r.Evaluate > 0:
		return report.HumanDuration(r.Train + r.Evaluate)
	}
	return ""
}

// runState is what a run's badge says: its outcome once it has one.
func runState(r *store.Run) string {
	if r.Outcome != "" {
		return string(r.Outcome)
	}
	return string(r.State)
}
