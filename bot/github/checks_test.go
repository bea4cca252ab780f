package github

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/mlbot/mlbot/bot"
	"github.com/mlbot/mlbot/bot/forgesim"
)

// newAppClient starts a simulator with App appID installed on acme/model
// and returns a client authenticated as that App.
func newAppClient(t *testing.T, appID int64) (*Client, *Simulator, *httptest.Server) {
	t.Helper()
	key := testKey(t)
	sim := NewSimulator()
	sim.AddApp(appID, &key.PublicKey, appID*10, "acme/model")
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	return newAppClientOn(t, srv, appID, keyPEM(key)), sim, srv
}

func newAppClientOn(t *testing.T, srv *httptest.Server, appID int64, pemKey []byte) *Client {
	t.Helper()
	c, err := New(Options{BaseURL: srv.URL, AppID: appID, PrivateKey: pemKey})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestCheckRunLifecycle follows one run's statuses through an App: one
// check run per commit and name, created once and then updated from
// queued to in progress to completed, with its output, external id,
// details URL and buttons; asked to run again, the same check run goes
// back to queued and loses its buttons.
func TestCheckRunLifecycle(t *testing.T) {
	key := testKey(t)
	sim := NewSimulator()
	sim.AddApp(42, &key.PublicKey, 420, "acme/model")
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	c := newAppClientOn(t, srv, 42, keyPEM(key))
	if !c.ShowsCheckRuns() {
		t.Fatal("an App client does not show check runs")
	}
	ctx := context.Background()
	sha := strings.Repeat("c", 40)
	set := func(st bot.Status) {
		t.Helper()
		st.Context = "mlbot/train-eval"
		if err := c.CreateStatus(ctx, testRepo, sha, st); err != nil {
			t.Fatal(err)
		}
	}
	actions := []bot.CheckAction{
		{Label: "Retrain", Description: "Run the pipeline again", Identifier: "retrain"},
		{Label: "Deploy to staging", Description: "Deploy this model to staging", Identifier: "deploy-staging"},
	}
	set(bot.Status{State: bot.StatePending, Description: "queued: train and evaluate", TargetURL: "https://mlbot.example.com/runs/r1", ExternalID: "r1", Actions: actions})
	set(bot.Status{State: bot.StateRunning, Description: "running", Title: "Training", Summary: "Training `ccccccc`.", ExternalID: "r1", TargetURL: "https://mlbot.example.com/runs/r1"})
	set(bot.Status{State: bot.StateSuccess, Description: "passed", Title: "accuracy 0.93 (+0.03) · 2 gates passed",
		Summary: "| Metric | base | head |", Text: "notes", ExternalID: "r1", TargetURL: "https://mlbot.example.com/runs/r1", Actions: actions})

	runs := sim.CheckRuns("acme/model", sha)
	if len(runs) != 1 {
		t.Fatalf("%d check runs, want 1", len(runs))
	}
	cr := runs[0]
	if cr.Name != "mlbot/train-eval" || cr.Status != CheckCompleted || cr.Conclusion != ConclusionSuccess || cr.ExternalID != "r1" ||
		cr.DetailsURL != "https://mlbot.example.com/runs/r1" || cr.Title != "accuracy 0.93 (+0.03) · 2 gates passed" ||
		cr.Summary != "| Metric | base | head |" || cr.Text != "notes" || cr.AppID != 42 {
		t.Errorf("check run = %+v", cr.CheckRun)
	}
	if len(cr.Actions) != 2 || cr.Actions[1] != actions[1] {
		t.Errorf("actions = %+v", cr.Actions)
	}
	var seq []string
	for _, h := range cr.History {
		seq = append(seq, h.Status+"/"+h.Conclusion+fmt.Sprint(len(h.Actions)))
	}
	if got := strings.Join(seq, " "); got != "queued/0 in_progress/0 completed/success2" {
		t.Errorf("history = %s, want queued, in progress, then completed with buttons", got)
	}
	if n := len(sim.Rec.Find(http.MethodPost, "/check-runs")); n != 1 {
		t.Errorf("%d check runs created, want 1", n)
	}

	// A second client (another process, or this one restarted) finds the
	// check run through the list endpoint instead of creating another.
	c2 := newAppClientOn(t, srv, 42, keyPEM(key))
	sim.Rec.Reset()
	if err := c2.CreateStatus(ctx, testRepo, sha, bot.Status{Context: "mlbot/train-eval", State: bot.StatePending, Description: "queued", ExternalID: "r2"}); err != nil {
		t.Fatal(err)
	}
	if n := len(sim.Rec.Find(http.MethodGet, "/commits/"+sha+"/check-runs")); n != 1 {
		t.Errorf("%d lookups, want 1", n)
	}
	if n := len(sim.Rec.Find(http.MethodPost, "/check-runs")); n != 0 {
		t.Errorf("%d check runs created by a client that could find the old one", n)
	}
	runs = sim.CheckRuns("acme/model", sha)
	if len(runs) != 1 || runs[0].Status != CheckQueued || runs[0].Conclusion != "" || runs[0].ExternalID != "r2" || len(runs[0].Actions) != 0 {
		t.Errorf("run again: %+v", runs[0].CheckRun)
	}
}

// TestCheckRunConclusions maps each status onto the check run GitHub shows.
func TestCheckRunConclusions(t *testing.T) {
	c, sim, _ := newAppClient(t, 7)
	tests := []struct {
		st               bot.Status
		status, conclude string
	}{
		{bot.Status{State: bot.StatePending}, CheckQueued, ""},
		{bot.Status{State: bot.StatePending, Conclusion: bot.ConclusionActionRequired}, CheckCompleted, "action_required"},
		{bot.Status{State: bot.StateRunning}, CheckInProgress, ""},
		{bot.Status{State: bot.StateSuccess}, CheckCompleted, "success"},
		{bot.Status{State: bot.StateSuccess, Conclusion: bot.ConclusionNeutral}, CheckCompleted, "neutral"},
		{bot.Status{State: bot.StateFailure}, CheckCompleted, "failure"},
		{bot.Status{State: bot.StateFailure, Conclusion: bot.ConclusionTimedOut}, CheckCompleted, "timed_out"},
		{bot.Status{State: bot.StateError}, CheckCompleted, "failure"},
		{bot.Status{State: bot.StateCanceled}, CheckCompleted, "cancelled"},
	}
	for i, tt := range tests {
		sha := fmt.Sprintf("%040x", i+1)
		tt.st.Context, tt.st.Description = "mlbot/train-eval", "d"
		if err := c.CreateStatus(context.Background(), testRepo, sha, tt.st); err != nil {
			t.Fatalf("%+v: %v", tt.st, err)
		}
		runs := sim.CheckRuns("acme/model", sha)
		if len(runs) != 1 || runs[0].Status != tt.status || runs[0].Conclusion != tt.conclude {
			t.Errorf("%s%s: check runs %+v, want %s/%s", tt.st.State, tt.st.Conclusion, runs, tt.status, tt.conclude)
		}
	}
	if err := c.CreateStatus(context.Background(), testRepo, strings.Repeat("d", 40), bot.Status{Context: "x", State: "weird"}); err == nil {
		t.Error("CreateStatus with an unknown state succeeded")
	}
	if len(sim.Statuses("acme/model", fmt.Sprintf("%040x", 1))) != 0 {
		t.Error("an App set a commit status besides its check run")
	}
}

// TestCheckRunLimits sends more than GitHub accepts through the client,
// which keeps within the limits, and straight to the simulator, which
// refuses it as GitHub does.
func TestCheckRunLimits(t *testing.T) {
	c, sim, srv := newAppClient(t, 9)
	ctx := context.Background()
	sha := strings.Repeat("e", 40)
	huge := strings.Repeat("é", bot.MaxCheckText+10)
	four := []bot.CheckAction{
		{Label: "A label far longer than twenty", Description: strings.Repeat("d", 50), Identifier: "a"},
		{Label: "B", Description: "b", Identifier: "an-identifier-longer-than-twenty"},
		{Label: "C", Description: "c", Identifier: "c"},
		{Label: "D", Description: "d", Identifier: "d"},
		{Label: "E", Description: "e", Identifier: "e"},
	}
	err := c.CreateStatus(ctx, testRepo, sha, bot.Status{Context: "mlbot/train-eval", State: bot.StateSuccess, Title: "a\nb", Summary: huge, Text: huge, Actions: four})
	if err != nil {
		t.Fatal(err)
	}
	cr := sim.CheckRuns("acme/model", sha)[0]
	// GitHub counts the limit in bytes (github/docs#35252): two-byte
	// characters are cut to half as many, whole.
	for _, v := range []string{cr.Summary, cr.Text} {
		if len(v) > bot.MaxCheckText || len(v) < bot.MaxCheckText-4 || !utf8.ValidString(v) || !strings.HasSuffix(v, "…") {
			t.Errorf("summary or text of %d bytes (valid UTF-8 %v), want at most %d ending in …", len(v), utf8.ValidString(v), bot.MaxCheckText)
		}
	}
	// Fewer characters than the limit but more bytes: still cut.
	wide := strings.Repeat("é", bot.MaxCheckText/2+1)
	if err := c.CreateStatus(ctx, testRepo, sha, bot.Status{Context: "mlbot/wide", State: bot.StateSuccess, Title: "t", Summary: wide}); err != nil {
		t.Fatalf("a summary of %d characters in %d bytes: %v", utf8.RuneCountInString(wide), len(wide), err)
	}
	if cr.Title != "a b" {
		t.Errorf("title %q, want one line", cr.Title)
	}
	var ids []string
	for _, a := range cr.Actions {
		ids = append(ids, a.Identifier)
	}
	if strings.Join(ids, ",") != "a,c,d" || utf8.RuneCountInString(cr.Actions[0].Label) != bot.MaxActionLabel ||
		utf8.RuneCountInString(cr.Actions[0].Description) != bot.MaxActionDescription {
		t.Errorf("actions %+v, want a, c and d with label and description cut", cr.Actions)
	}

	// The simulator itself answers GitHub's 422s.
	tok, err := c.app.installs[90].tr.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	post := func(body map[string]any) (int, string) {
		b, _ := json.Marshal(body)
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/repos/acme/model/check-runs", bytes.NewReader(b))
		req.Header.Set("Authorization", "token "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var e struct{ Message string }
		_ = json.NewDecoder(resp.Body).Decode(&e)
		return resp.StatusCode, e.Message
	}
	action := map[string]any{"label": "L", "description": "D", "identifier": "i"}
	for _, tt := range []struct {
		name string
		body map[string]any
		want string
	}{
		{"no name", map[string]any{"head_sha": sha}, `"name" wasn't supplied`},
		{"unknown commit", map[string]any{"name": "n", "head_sha": "main-ish"}, "No commit found"},
		{"bad status", map[string]any{"name": "n", "head_sha": sha, "status": "waiting"}, "is not a member"},
		{"completed without conclusion", map[string]any{"name": "n", "head_sha": sha, "status": "completed"}, `"conclusion" wasn't supplied`},
		{"bad conclusion", map[string]any{"name": "n", "head_sha": sha, "conclusion": "stale"}, "is not a member"},
		{"summary too long", map[string]any{"name": "n", "head_sha": sha, "output": map[string]any{"title": "t", "summary": huge}}, "summary exceeds a maximum bytesize of 65535"},
		{"text too long in bytes", map[string]any{"name": "n", "head_sha": sha, "output": map[string]any{"title": "t", "summary": "s", "text": strings.Repeat("é", bot.MaxCheckText/2+1)}}, "text exceeds a maximum bytesize"},
		{"output without summary", map[string]any{"name": "n", "head_sha": sha, "output": map[string]any{"title": "t"}}, `"summary" wasn't supplied`},
		{"four actions", map[string]any{"name": "n", "head_sha": sha, "actions": []any{action, action, action, action}}, "Only 3 actions"},
		{"long label", map[string]any{"name": "n", "head_sha": sha, "actions": []any{map[string]any{"label": strings.Repeat("l", 21), "description": "d", "identifier": "i"}}}, "label is too long"},
	} {
		if code, msg := post(tt.body); code != http.StatusUnprocessableEntity || !strings.Contains(msg, tt.want) {
			t.Errorf("%s: %d %q, want 422 %q", tt.name, code, msg, tt.want)
		}
	}
	if code, _ := post(map[string]any{"name": "n", "head_sha": sha}); code != http.StatusCreated {
		t.Errorf("a minimal check run: %d, want 201", code)
	}
}

// TestCheckRunsNeedAnApp: a personal access token keeps commit statuses,
// and the Checks API refuses it as GitHub does.
func TestCheckRunsNeedAnApp(t *testing.T) {
	c, sim, _ := newTestClient(t)
	ctx := context.Background()
	sha := strings.Repeat("f", 40)
	if c.ShowsCheckRuns() {
		t.Error("a token client says it shows check runs")
	}
	st := bot.Status{Context: "mlbot/train-eval", State: bot.StateSuccess, Description: "passed", Title: "t", Summary: "s", ExternalID: "r1",
		Actions: []bot.CheckAction{{Label: "Retrain", Description: "again", Identifier: "retrain"}}}
	if err := c.CreateStatus(ctx, testRepo, sha, st); err != nil {
		t.Fatal(err)
	}
	if ss := sim.Statuses("acme/model", sha); len(ss) != 1 || ss[0].State != "success" || ss[0].Description != "passed" {
		t.Errorf("statuses %+v, want one success", ss)
	}
	if n := len(sim.Rec.Find("", "/check-runs")); n != 0 {
		t.Errorf("%d Checks API calls with a token", n)
	}
	_, err := c.CreateCheckRun(ctx, testRepo, CheckRun{Name: "mlbot/train-eval", HeadSHA: sha, Status: CheckQueued, Title: "t", Summary: "s"})
	var he *bot.HostError
	if !errors.As(err, &he) || he.StatusCode != http.StatusForbidden || !strings.Contains(he.Message, "You must authenticate via a GitHub App") {
		t.Errorf("CreateCheckRun with a token = %v, want GitHub's 403", err)
	}
}

// TestCheckRunOwnership: a check run can only be changed by the App that
// created it, and one gone from GitHub is created anew.
func TestCheckRunOwnership(t *testing.T) {
	key1, key2 := testKey(t), testKey(t)
	sim := NewSimulator()
	sim.AddApp(1, &key1.PublicKey, 10, "acme/model")
	sim.AddApp(2, &key2.PublicKey, 20, "acme/model")
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	a, b := newAppClientOn(t, srv, 1, keyPEM(key1)), newAppClientOn(t, srv, 2, keyPEM(key2))
	ctx := context.Background()
	sha := strings.Repeat("1", 40)
	got, err := a.CreateCheckRun(ctx, testRepo, CheckRun{Name: "mlbot/train-eval", HeadSHA: sha, Status: CheckQueued, Title: "t", Summary: "s"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = b.UpdateCheckRun(ctx, testRepo, got.ID, CheckRun{Name: "mlbot/train-eval", Status: CheckInProgress, Title: "t", Summary: "s"})
	var he *bot.HostError
	if !errors.As(err, &he) || he.StatusCode != http.StatusForbidden || !strings.Contains(he.Message, "can only be modified by the GitHub App that created it") {
		t.Errorf("UpdateCheckRun by another App = %v, want 403", err)
	}
	// Each App sees its own check run of the name.
	if err := b.CreateStatus(ctx, testRepo, sha, bot.Status{Context: "mlbot/train-eval", State: bot.StateRunning}); err != nil {
		t.Fatal(err)
	}
	if runs := sim.CheckRuns("acme/model", sha); len(runs) != 2 || runs[0].Status != CheckQueued || runs[1].AppID != 2 {
		t.Errorf("check runs %+v, want App 1's untouched and App 2's own", runs)
	}
	list, err := a.ListCheckRunsForRef(ctx, testRepo, sha, "mlbot/train-eval")
	if err != nil || len(list) != 1 || list[0].ID != got.ID {
		t.Errorf("App 1's list = %+v, %v", list, err)
	}

	// A check run GitHub no longer has is made again.
	sim.Faults.Add(forgesim.Fault{Method: http.MethodPatch, PathSubstr: "/check-runs/", Status: http.StatusNotFound})
	if err := a.CreateStatus(ctx, testRepo, sha, bot.Status{Context: "mlbot/train-eval", State: bot.StateSuccess}); err != nil {
		t.Fatal(err)
	}
	if n := len(sim.CheckRuns("acme/model", sha)); n != 3 {
		t.Errorf("%d check runs, want a new one for App 1", n)
	}
}

// TestListCheckRunsForRef checks the listing's filters and pagination.
func TestListCheckRunsForRef(t *testing.T) {
	c, _, _ := newAppClient(t, 5)
	ctx := context.Background()
	sha := strings.Repeat("2", 40)
	var last int64
	for i := range 105 {
		name := fmt.Sprintf("check-%03d", i)
		if i >= 100 {
			name = "mlbot/train-eval"
		}
		got, err := c.CreateCheckRun(ctx, testRepo, CheckRun{Name: name, HeadSHA: sha, Status: CheckQueued, Title: "t", Summary: "s"})
		if err != nil {
			t.Fatal(err)
		}
		last = got.ID
	}
	all, err := c.ListCheckRunsForRef(ctx, testRepo, sha, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 101 || all[0].ID != last {
		t.Errorf("%d check runs listed (newest %d), want the latest of 101 names, newest first (%d)", len(all), all[0].ID, last)
	}
	one, err := c.ListCheckRunsForRef(ctx, testRepo, sha, "mlbot/train-eval")
	if err != nil || len(one) != 1 || one[0].ID != last {
		t.Errorf("by name: %+v, %v", one, err)
	}
}

// TestCheckPayloads builds check deliveries from the simulator's check
// runs and reads them back as mlbot's webhook does.
func TestCheckPayloads(t *testing.T) {
	c, sim, _ := newAppClient(t, 3)
	ctx := context.Background()
	sha := strings.Repeat("3", 40)
	st := bot.Status{Context: "mlbot/train-eval", State: bot.StateSuccess, ExternalID: "run-1",
		Actions: []bot.CheckAction{{Label: "Deploy to staging", Description: "d", Identifier: "deploy-staging"}}}
	if err := c.CreateStatus(ctx, testRepo, sha, st); err != nil {
		t.Fatal(err)
	}
	cr := sim.CheckRuns("acme/model", sha)[0]
	pr := CheckPullRequest{Number: 4, HeadRef: "feature", HeadSHA: sha, BaseRef: "main", BaseSHA: strings.Repeat("0", 40)}
	w := &Webhook{}
	press := func(identifier string) ([]byte, error) {
		o, err := sim.CheckRunPress("acme/model", cr.ID, "maria", identifier)
		o.PullRequests = []CheckPullRequest{pr}
		return CheckRunPayload(o), err
	}
	rerun := func(sender string, prs ...CheckPullRequest) ([]byte, error) {
		o, err := sim.CheckSuiteRerun("acme/model", sha, 3, sender)
		o.PullRequests = prs
		return CheckSuitePayload(o), err
	}
	tests := []struct {
		name, event string
		body        func() ([]byte, error)
		want        bot.CheckRequest
		action      bot.Action
	}{
		{"re-run", "check_run", func() ([]byte, error) { return press("") },
			bot.CheckRequest{RunID: cr.ID, SuiteID: cr.SuiteID, Name: "mlbot/train-eval", HeadSHA: sha, ExternalID: "run-1"}, bot.ActionRerequested},
		{"button", "check_run", func() ([]byte, error) { return press("deploy-staging") },
			bot.CheckRequest{RunID: cr.ID, SuiteID: cr.SuiteID, Name: "mlbot/train-eval", HeadSHA: sha, ExternalID: "run-1", Identifier: "deploy-staging"}, bot.ActionRequestedAction},
		{"re-run all", "check_suite", func() ([]byte, error) { return rerun("maria", pr) },
			bot.CheckRequest{SuiteID: cr.SuiteID, HeadSHA: sha}, bot.ActionRerequested},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body, err := tt.body()
			if err != nil {
				t.Fatal(err)
			}
			if err := w.Precheck(tt.event, body); err != nil {
				t.Fatalf("Precheck: %v", err)
			}
			ev, err := w.Parse(tt.event, body)
			if err != nil {
				t.Fatal(err)
			}
			got := *ev.Check
			got.Updated = tt.want.Updated
			if ev.Kind != bot.KindCheck || ev.Action != tt.action || got != tt.want || ev.Sender != "maria" || ev.Repo.FullName != "acme/model" {
				t.Errorf("event %+v check %+v, want %+v", ev, got, tt.want)
			}
			if ev.PR == nil || ev.PR.Number != 4 || ev.PR.HeadSHA != sha || ev.PR.HeadRef != "feature" || ev.PR.BaseRef != "main" {
				t.Errorf("PR = %+v", ev.PR)
			}
			if tt.event == "check_suite" && ev.Check.Updated.IsZero() {
				t.Error("a suite's request carries no time")
			}
		})
	}
	// Each Re-run all moves the suite's time, which tells two requests apart.
	b1, _ := rerun("maria")
	b2, _ := rerun("maria")
	e1, _ := w.Parse("check_suite", b1)
	e2, _ := w.Parse("check_suite", b2)
	if !e2.Check.Updated.After(e1.Check.Updated) || e1.PR != nil {
		t.Errorf("suite times %v, %v; PR %+v", e1.Check.Updated, e2.Check.Updated, e1.PR)
	}
	if _, err := press("deploy-production"); err == nil {
		t.Error("a button the check run does not show was pressed")
	}
}

// TestPrecheckChecks lets only pressed buttons through.
func TestPrecheckChecks(t *testing.T) {
	w := &Webhook{}
	for _, tt := range []struct {
		event, action string
		pass          bool
	}{
		{"check_run", "rerequested", true},
		{"check_run", "requested_action", true},
		{"check_run", "created", false},
		{"check_run", "completed", false},
		{"check_suite", "rerequested", true},
		{"check_suite", "requested", false},
		{"check_suite", "completed", false},
		{"push", "", true},
	} {
		err := w.Precheck(tt.event, []byte(`{"action":"`+tt.action+`"}`))
		if (err == nil) != tt.pass || (err != nil && !errors.Is(err, bot.ErrIgnoredEvent)) {
			t.Errorf("Precheck(%s.%s) = %v, want pass %v", tt.event, tt.action, err, tt.pass)
		}
	}
	for _, f := range []string{"check_run.created.octokit.json", "check_suite.requested.katex.json", "check_suite.completed.octokit.json"} {
		if err := w.Precheck(eventType(f), readFixture(t, f)); !errors.Is(err, bot.ErrIgnoredEvent) {
			t.Errorf("Precheck(%s) = %v, want ignored", f, err)
		}
	}
	for _, f := range []string{"check_run.requested_action.octokit.json", "check_run.rerequested.octokit.json", "check_suite.rerequested.octokit.json"} {
		if err := w.Precheck(eventType(f), readFixture(t, f)); err != nil {
			t.Errorf("Precheck(%s) = %v", f, err)
		}
	}
}
