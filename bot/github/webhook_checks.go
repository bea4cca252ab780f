package github

import (
	"encoding/json"
	"fmt"

	"github.com/mlbot/mlbot/bot"
)

var _ bot.Prechecker = (*Webhook)(nil)

// Precheck implements bot.Prechecker: of the check_run and check_suite
// deliveries, which GitHub sends for every check of every App on each
// push, only the buttons people press reach a worker: a check run's
// Re-run (rerequested) or action button (requested_action), and a check
// suite's Re-run all (rerequested).
func (*Webhook) Precheck(eventType string, body []byte) error {
	if eventType != "check_run" && eventType != "check_suite" {
		return nil
	}
	var p struct {
		Action string `json:"action"`
	}
	if err := json.Unmarshal(body, &p); err != nil {
		return fmt.Errorf("github webhook: %s: malformed JSON: %w", eventType, err)
	}
	switch {
	case p.Action == "rerequested", eventType == "check_run" && p.Action == "requested_action":
		return nil
	}
	return fmt.Errorf("%s action %q: %w", eventType, p.Action, bot.ErrIgnoredEvent)
}

// checkPullRequest is an entry of a check run's or suite's pull_requests:
// the open pull requests whose head is the checked commit, from branches
// of the repository itself (never from forks).
type checkPullRequest struct {
	Number int `json:"number"`
	Head   struct {
		Ref string `json:"ref"`
		SHA string `json:"sha"`
	} `json:"head"`
	Base struct {
		Ref string `json:"ref"`
		SHA string `json:"sha"`
	} `json:"base"`
}

// pullRequestOf is the first pull request a check names, as far as the
// check tells: number, head and base. Its author, fork and trust are not
// in the payload; mlbot reads them from what it stored of the pull
// request's own events.
func pullRequestOf(prs []checkPullRequest) *bot.PullRequest {
	if len(prs) == 0 {
		return nil
	}
	p := prs[0]
	return &bot.PullRequest{Number: p.Number, HeadSHA: p.Head.SHA, HeadRef: p.Head.Ref, BaseRef: p.Base.Ref, BaseSHA: p.Base.SHA}
}

type checkSuite struct {
	ID           int64              `json:"id"`
	HeadBranch   string             `json:"head_branch"`
	HeadSHA      string             `json:"head_sha"`
	UpdatedAt    string             `json:"updated_at"`
	PullRequests []checkPullRequest `json:"pull_requests"`
}

type checkRunPayload struct {
	envelope
	CheckRun *struct {
		ID           int64              `json:"id"`
		Name         string             `json:"name"`
		HeadSHA      string             `json:"head_sha"`
		ExternalID   string             `json:"external_id"`
		CheckSuite   *checkSuite        `json:"check_suite"`
		PullRequests []checkPullRequest `json:"pull_requests"`
	} `json:"check_run"`
	RequestedAction *struct {
		Identifier string `json:"identifier"`
	} `json:"requested_action"`
}

// parseCheckRun normalises a check_run delivery: rerequested and
// requested_action become bot.KindCheck, every other action KindOther.
func parseCheckRun(ev *bot.Event, body []byte) error {
	var p checkRunPayload
	if err := decode(body, &p); err != nil {
		return err
	}
	p.fill(ev)
	ev.Kind = bot.KindOther
	var action bot.Action
	switch p.Action {
	case "rerequested":
		action = bot.ActionRerequested
	case "requested_action":
		action = bot.ActionRequestedAction
	default:
		return nil
	}
	cr := p.CheckRun
	if cr == nil {
		return fmt.Errorf("no check_run object")
	}
	ev.Kind, ev.Action = bot.KindCheck, action
	req := &bot.CheckRequest{RunID: cr.ID, Name: cr.Name, HeadSHA: cr.HeadSHA, ExternalID: cr.ExternalID}
	if cr.CheckSuite != nil {
		req.SuiteID = cr.CheckSuite.ID
	}
	if action == bot.ActionRequestedAction {
		if p.RequestedAction == nil || p.RequestedAction.Identifier == "" {
			return fmt.Errorf("requested_action without an identifier")
		}
		req.Identifier = p.RequestedAction.Identifier
	}
	ev.Check = req
	ev.PR = pullRequestOf(cr.PullRequests)
	return nil
}

type checkSuitePayload struct {
	envelope
	CheckSuite *checkSuite `json:"check_suite"`
}

// parseCheckSuite normalises a check_suite delivery: rerequested (Re-run
// all) becomes bot.KindCheck, every other action KindOther.
func parseCheckSuite(ev *bot.Event, body []byte) error {
	var p checkSuitePayload
	if err := decode(body, &p); err != nil {
		return err
	}
	p.fill(ev)
	ev.Kind = bot.KindOther
	if p.Action != "rerequested" {
		return nil
	}
	cs := p.CheckSuite
	if cs == nil {
		return fmt.Errorf("no check_suite object")
	}
	ev.Kind, ev.Action = bot.KindCheck, bot.ActionRerequested
	ev.Check = &bot.CheckRequest{SuiteID: cs.ID, HeadSHA: cs.HeadSHA, Updated: parseTime(cs.UpdatedAt)}
	ev.PR = pullRequestOf(cs.PullRequests)
	return nil
}
