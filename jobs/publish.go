package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/hibiken/asynq"

	"github.com/mlbot/mlbot/bot"
	"github.com/mlbot/mlbot/jobs/report"
)

// handleReport publishes a finished run: the pull request's one comment
// (edited, never duplicated) and the commit status. It is a task of its own
// so that a host error retries the post, never the training.
func (w *Worker) handleReport(ctx context.Context, t *asynq.Task) error {
	defer observeStage(stageReport, time.Now())
	var p ReportPayload
	if err := json.Unmarshal(t.Payload(), &p); err != nil {
		return fmt.Errorf("report payload: %v: %w", err, asynq.SkipRetry)
	}
	run, err := w.store.GetRun(ctx, p.RunID)
	if err != nil {
		return err
	}
	if run.State != RunFinished {
		return fmt.Errorf("run %s is %s, not finished: %w", run.ID, run.State, asynq.SkipRetry)
	}
	if run.Sweep != "" {
		// A sweep's trial: its result goes to the sweep's comment and
		// status, and its end frees a place for the next trial.
		return w.advanceSweep(ctx, run.Sweep)
	}
	f, err := w.forgeOf(run.Repo)
	if err != nil {
		return fmt.Errorf("run %s: %w", run.ID, err)
	}
	c, err := w.comment(ctx, run)
	if err != nil {
		return err
	}
	// The status first: it is what gates a merge, and a comment the host
	// refuses for good must not keep it pending. A report retried after
	// its comment failed has set it already: setting it again would list
	// the result twice in the commit's statuses.
	statusKey := fmt.Sprintf("report-status:%s:%d", run.ID, run.Finished.UnixNano())
	if err := w.store.Once(ctx, statusKey, runRetention, func() error {
		return w.setStatus(ctx, f, run.Repo, run.SHA, refOf(run.PR, run.Branch), stateOf(run.Outcome), describe(run, c.Diff), w.runURL(run.ID),
			w.reportCheck(ctx, f, run, c))
	}); err != nil {
		return err
	}
	if run.PR != nil {
		head, err := w.store.Head(ctx, run.Repo, run.PR.Number)
		if err != nil {
			return err
		}
		// A newer push owns the comment; this commit still gets its status.
		if head == "" || head == run.SHA {
			if err := w.upsertComment(ctx, f, run.Repo, run.PR.Number, report.Render(c)); err != nil {
				return err
			}
		}
	}
	if run.Kind == KindBaseline {
		return w.deployOnMerge(ctx, f, run)
	}
	return nil
}

// comment assembles what the PR comment shows for run.
func (w *Worker) comment(ctx context.Context, run *Run) (report.Comment, error) {
	var base *Run
	if run.BaseRunID != "" {
		b, err := w.store.GetRun(ctx, run.BaseRunID)
		if err != nil && !errors.Is(err, ErrNoRun) {
			return report.Comment{}, err
		}
		base = b
	}
	c := CommentFor(run, base, w.runURL(run.ID))
	c.ChartURL = w.chartURL(run)
	return c, nil
}

// chartImageTTL is how long a comment's chart URL stays valid. Each new
// report of the pull request signs it afresh.
const chartImageTTL = 30 * 24 * time.Hour

// chartURL is the signed URL of run's chart image, "" when mlbot has no
// public URL or signer, or the run has no metrics to draw. It expires at
// the first midnight (UTC) chartImageTTL from now, so that reports of the
// same day sign the same URL.
func (w *Worker) chartURL(run *Run) string {
	if w.opts.ChartImages == nil || w.opts.PublicURL == "" || !run.HasMetrics() || len(run.Metrics) == 0 {
		return ""
	}
	exp := time.Now().UTC().Add(chartImageTTL).Truncate(24 * time.Hour).Add(24 * time.Hour)
	path := report.ChartImagePath(run.ID)
	return w.opts.PublicURL + path + "?" + w.opts.ChartImages.Query(path, exp)
}

// CommentFor assembles the PR comment of a finished run compared against
// base (nil when there is none); see store.Run.Comment, which the run
// page shares.
func CommentFor(run, base *Run, runURL string) report.Comment {
	return run.Comment(base, runURL)
}

// commenter keeps mlbot's comment on a pull or merge request.
type commenter interface {
	ListComments(ctx context.Context, repo bot.Repo, number int) ([]bot.Comment, error)
	CreateComment(ctx context.Context, repo bot.Repo, number int, body string) (bot.Comment, error)
	UpdateComment(ctx context.Context, repo bot.Repo, number int, id int64, body string) error
}

// sticky is one of mlbot's sticky comments on a pull request: found by
// its marker, its id remembered by the store.
type sticky struct {
	marker string
	lock   string
	id     func(ctx context.Context, repo bot.Repo, number int) (int64, error)
	setID  func(ctx context.Context, repo bot.Repo, number int, id int64) error
}

// upsertComment edits mlbot's comment on a pull request, creating it only
// when none exists (see upsertSticky).
func (w *Worker) upsertComment(ctx context.Context, f commenter, repo bot.Repo, number int, body string) error {
	return w.upsertSticky(ctx, f, repo, number, body, sticky{marker: report.Marker, lock: "comment:", id: w.store.CommentID, setID: w.store.SetCommentID})
}

// upsertSweepComment edits mlbot's sweep comment on a pull request, the
// second sticky comment, creating it only when none exists.
func (w *Worker) upsertSweepComment(ctx context.Context, f commenter, repo bot.Repo, number int, body string) error {
	return w.upsertSticky(ctx, f, repo, number, body, sticky{marker: report.SweepMarker, lock: "sweepcomment:", id: w.store.SweepCommentID, setID: w.store.SetSweepCommentID})
}

// upsertSticky edits the sticky comment s on a pull request, creating it
// only when none exists. A lease per pull request keeps two reports from
// both creating one; a crash between create and remembering its id is
// healed by finding the comment through its marker.
func (w *Worker) upsertSticky(ctx context.Context, f commenter, repo bot.Repo, number int, body string, s sticky) error {
	release, ok, err := w.store.Lock(ctx, s.lock+repoKey(repo)+":"+fmt.Sprint(number), time.Minute)
	if err != nil {
		return err
	}
	if !ok {
		return errors.New("another report is editing this pull request's comment")
	}
	defer release()
	id, err := s.id(ctx, repo, number)
	if err != nil {
		return err
	}
	if id != 0 {
		err := f.UpdateComment(ctx, repo, number, id, body)
		if !notOurs(err) {
			return err
		}
		// Deleted by someone: find another or create a new one.
	}
	comments, err := f.ListComments(ctx, repo, number)
	if err != nil {
		return err
	}
	for _, c := range comments {
		if !strings.HasPrefix(strings.TrimSpace(c.Body), s.marker) {
			continue
		}
		err := f.UpdateComment(ctx, repo, number, c.ID, body)
		if notOurs(err) {
			// Someone else wrote the marker into their own comment (it is
			// invisible when rendered): it must not block the report.
			continue
		}
		if err != nil {
			return err
		}
		return s.setID(ctx, repo, number, c.ID)
	}
	c, err := f.CreateComment(ctx, repo, number, body)
	if err != nil {
		return err
	}
	return s.setID(ctx, repo, number, c.ID)
}

// notOurs reports whether the host refused an edit because the comment is
// not mlbot's to edit.
func notOurs(err error) bool {
	var he *bot.HostError
	return errors.As(err, &he) && (he.StatusCode == 403 || he.StatusCode == 404)
}

// describe is the commit status description: the verdict and the first
// metric in a few words, without the format characters that could make
// a metric name or detail read as something else.
func describe(run *Run, d report.Diff) string {
	var s string
	switch run.Outcome {
	case report.OutcomePassed:
		s = "passed"
	case report.OutcomeGateFailed:
		s = "gate failed: " + strings.Join(d.Failed, ", ")
	case report.OutcomeConfigError:
		s = "invalid " + firstLine(run.Detail)
	case report.OutcomeCanceled:
		// GitHub has no cancelled state; its client says "cancelled: ".
		s = firstLine(run.Detail)
	case report.OutcomeSkipped:
		return skippedDescription(run)
	default:
		s = string(run.Outcome) + ": " + firstLine(run.Detail)
	}
	for _, r := range d.Rows {
		if r.Head != nil {
			s += fmt.Sprintf(" · %s %.4g", r.Name, *r.Head)
			if r.Abs != nil {
				s += fmt.Sprintf(" (%+.4g)", *r.Abs)
			}
			break
		}
	}
	s = report.StripFormat(s)
	// A default-branch commit has no comment: its status alone says what
	// it was judged against, and that part is kept whole.
	suffix := ""
	if run.Kind == KindBaseline && run.HasMetricsOutcome() {
		suffix = " · nothing to compare with"
		if run.BaseSHA != "" {
			suffix = " · compared with " + report.StripFormat(short(run.BaseSHA))
		}
	}
	if len(s)+len(suffix) > 140 {
		n := 137 - len(suffix)
		for n > 0 && !utf8.RuneStart(s[n]) {
			n--
		}
		s = s[:n] + "..."
	}
	return s + suffix
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// redact replaces every secret value in s.
func redact(s string, secrets []string) string {
	for _, v := range secrets {
		if len(v) >= 4 {
			s = strings.ReplaceAll(s, v, "***")
		}
	}
	return s
}
