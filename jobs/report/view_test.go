package report

import (
	"strings"
	"testing"
	"time"
)

// TestViewShowsWhatTheCommentShows renders each comment both ways and
// checks that the page's plain text is the comment's markdown with the
// markdown taken out: the same rows, cells, gates, headline and verdict.
func TestViewShowsWhatTheCommentShows(t *testing.T) {
	base := map[string]float64{"accuracy": 0.9421, "loss": 0.2134, "per_class.0": 0.91}
	tests := []struct {
		name        string
		c           Comment
		wantVerdict string // the plain verdict line
		wantHead    string
	}{
		{
			name: "passed",
			c: Comment{Outcome: OutcomePassed, HeadSHA: headSHA, BaseSHA: baseSHA, Train: 72 * time.Second, Eval: 400 * time.Millisecond,
				Diff: Compute(base, map[string]float64{"accuracy": 0.951, "loss": 0.2011, "per_class.0": 0.93}, specs, order)},
			wantVerdict: "passed — 3 gates pass; accuracy improved by 0.0089; loss improved by 0.0123.",
		},
		{
			name: "gate failed",
			c: Comment{Outcome: OutcomeGateFailed, HeadSHA: headSHA, BaseSHA: baseSHA,
				Diff: Compute(base, map[string]float64{"accuracy": 0.9221, "loss": 0.61}, specs, order)},
			wantVerdict: "failed — accuracy: drop 0.02 > max_drop 0.005; loss: 0.61 > max 0.5.",
			wantHead:    "accuracy dropped more than allowed (and 1 more)",
		},
		{
			name: "passed outcome with a failing gate shows failed",
			c: Comment{Outcome: OutcomePassed, HeadSHA: headSHA, BaseSHA: baseSHA,
				Diff: Compute(base, map[string]float64{"loss": 0.2}, specs, order)},
			wantVerdict: "failed — accuracy: missing from head (min 0.9), missing from head (max_drop 0.005).",
			wantHead:    "accuracy missing",
		},
		{
			name:        "timed out",
			c:           Comment{Outcome: OutcomeTimedOut, HeadSHA: headSHA},
			wantVerdict: "timed out — the run reached pipeline.timeout and was stopped.",
		},
		{
			name:        "hostile detail",
			c:           Comment{Outcome: OutcomeError, HeadSHA: headSHA, Detail: "clone of <https://x> failed\n@octocat"},
			wantVerdict: "error — mlbot could not run the pipeline. clone of <https://x> failed @octocat.",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			md := Render(tc.c)
			v := ViewOf(tc.c)
			if got := v.Verdict + " — " + v.Summary; got != tc.wantVerdict {
				t.Errorf("verdict %q, want %q", got, tc.wantVerdict)
			}
			if v.Headline != tc.wantHead {
				t.Errorf("headline %q, want %q", v.Headline, tc.wantHead)
			}
			// Every row of the page is a row of the comment.
			for _, r := range v.Rows {
				var gates []string
				for _, g := range r.Gates {
					mark := "✅ "
					if !g.Pass {
						mark = "❌ "
					}
					s := mark + g.Rule
					if g.Note != "" {
						s += " (" + g.Note + ")"
					}
					gates = append(gates, s)
				}
				delta := r.Delta
				switch r.Better {
				case 1:
					delta += " 🟢"
				case -1:
					delta += " 🔴"
				}
				row := "| `" + r.Name + "` | " + r.Base + " | " + r.Head + " | " + delta + " | " + strings.Join(gates, " · ") + " |"
				if !strings.Contains(md, row+"\n") {
					t.Errorf("the comment has no row %q:\n%s", row, md)
				}
			}
			if got, want := len(v.Rows), strings.Count(md, "\n| `"); got != want {
				t.Errorf("the page has %d rows, the comment %d", got, want)
			}
			if strings.ContainsAny(v.Summary+v.Headline, "`*\\") {
				t.Errorf("markdown in the plain text: %q %q", v.Headline, v.Summary)
			}
		})
	}
}

func TestHumanDuration(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{0, "0s"},
		{12790220 * time.Nanosecond, "13ms"},
		{850 * time.Millisecond, "850ms"},
		{3200 * time.Millisecond, "3.2s"},
		{12790 * time.Millisecond, "13s"},
		{72 * time.Second, "1m 12s"},
		{72*time.Second + 400*time.Millisecond, "1m 12s"},
		{2 * time.Minute, "2m"},
		{2*time.Hour + 5*time.Minute + 30*time.Second, "2h 5m"},
		{2 * time.Hour, "2h"},
		{27 * time.Hour, "1d 3h"},
		{-90 * time.Second, "1m 30s"},
	}
	for _, tc := range tests {
		if got := HumanDuration(tc.d); got != tc.want {
			t.Errorf("HumanDuration(%s) = %q, want %q", tc.d, got, tc.want)
		}
	}
}
