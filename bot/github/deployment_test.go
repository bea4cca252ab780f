package github

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	gh "github.com/google/go-github/v60/github"

	"github.com/mlbot/mlbot/bot"
	"github.com/mlbot/mlbot/bot/forgesim"
)

const deploySHA = "c4c79227ed610f1151f05bbc5be33b4f340d39c8"

func TestDeploymentLifecycle(t *testing.T) {
	long := strings.Repeat("é", 150)
	tests := []struct {
		name       string
		production bool
		states     []bot.DeploymentState
		desc       string
		wantDesc   string
	}{
		{"in progress then success", true, []bot.DeploymentState{bot.DeploymentInProgress, bot.DeploymentSuccess}, "model v7", "model v7"},
		{"queued, in progress, failure", false, []bot.DeploymentState{bot.DeploymentQueued, bot.DeploymentInProgress, bot.DeploymentFailure}, "", ""},
		{"error", false, []bot.DeploymentState{bot.DeploymentError}, "boom", "boom"},
		{"success then inactive", true, []bot.DeploymentState{bot.DeploymentSuccess, bot.DeploymentInactive}, "", ""},
		{"description cut to 140", false, []bot.DeploymentState{bot.DeploymentSuccess}, long, strings.Repeat("é", 139) + "…"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			c, sim, _ := newTestClient(t)
			// mlbot's own status on the commit is still pending: GitHub
			// would refuse the deployment without required_contexts=[].
			sim.Rec.Reset()
			if err := c.CreateStatus(ctx, testRepo, deploySHA, bot.Status{Context: "mlbot/train-eval", State: bot.StatePending}); err != nil {
				t.Fatal(err)
			}
			in := bot.Deployment{Environment: "production", Ref: "main", SHA: deploySHA, Description: "model v7", Production: tt.production}
			got, err := c.CreateDeployment(ctx, testRepo, in)
			if err != nil {
				t.Fatal(err)
			}
			if got.ID == 0 || got.Environment != in.Environment || got.SHA != deploySHA || got.Ref != "main" || got.Production != tt.production {
				t.Errorf("CreateDeployment = %+v", got)
			}
			for i, st := range tt.states {
				err := c.UpdateDeployment(ctx, testRepo, got.ID, bot.DeploymentStatus{
					State: st, LogURL: "https://mlbot.example/runs/1", EnvironmentURL: "https://models.example/v7", Description: tt.desc,
				})
				if err != nil {
					t.Fatalf("UpdateDeployment #%d (%s): %v", i, st, err)
				}
			}
			deps := sim.Deployments("acme/model")
			if len(deps) != 1 {
				t.Fatalf("simulator holds %d deployments", len(deps))
			}
			d := deps[0]
			if d.ID != got.ID || d.Ref != deploySHA || d.SHA != deploySHA || d.Environment != "production" ||
				d.Description != "model v7" || d.Production != tt.production || d.Transient || d.Task != "deploy" {
				t.Errorf("deployment = %+v", d)
			}
			if len(d.Statuses) != len(tt.states) {
				t.Fatalf("statuses = %+v, want %v", d.Statuses, tt.states)
			}
			for i, st := range d.Statuses {
				if st.State != string(tt.states[i]) || st.LogURL != "https://mlbot.example/runs/1" ||
					st.EnvironmentURL != "https://models.example/v7" || st.Description != tt.wantDesc || st.AutoInactive {
					t.Errorf("status %d = %+v, want %s", i, st, tt.states[i])
				}
			}

			// What went over the wire.
			calls := sim.Rec.Find(http.MethodPost, "/deployments")
			if len(calls) != 1+len(tt.states) {
				t.Fatalf("%d POSTs", len(calls))
			}
			var body map[string]any
			if err := json.Unmarshal(calls[0].Body, &body); err != nil {
				t.Fatal(err)
			}
			rc, ok := body["required_contexts"].([]any)
			if body["ref"] != deploySHA || body["auto_merge"] != false || !ok || len(rc) != 0 ||
				body["transient_environment"] != false || body["production_environment"] != tt.production || calls[0].Status != 201 {
				t.Errorf("create body = %s (answer %d)", calls[0].Body, calls[0].Status)
			}
			for _, call := range calls[1:] {
				var sb map[string]any
				if err := json.Unmarshal(call.Body, &sb); err != nil {
					t.Fatal(err)
				}
				if sb["auto_inactive"] != false || call.Status != 201 {
					t.Errorf("status body = %s (answer %d)", call.Body, call.Status)
				}
			}
		})
	}
}

// A successful deployment with auto_inactive off leaves the previous one
// alone; mlbot marks it inactive itself.
func TestDeploymentNoAutoInactive(t *testing.T) {
	ctx := context.Background()
	c, sim, _ := newTestClient(t)
	var ids []int64
	for range 2 {
		d, err := c.CreateDeployment(ctx, testRepo, bot.Deployment{Environment: "staging", Ref: "main", SHA: deploySHA})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.UpdateDeployment(ctx, testRepo, d.ID, bot.DeploymentStatus{State: bot.DeploymentSuccess}); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, d.ID)
	}
	deps := sim.Deployments("acme/model")
	if len(deps) != 2 || len(deps[0].Statuses) != 1 || deps[0].Statuses[0].State != "success" {
		t.Fatalf("deployments = %+v", deps)
	}
	if err := c.UpdateDeployment(ctx, testRepo, ids[0], bot.DeploymentStatus{State: bot.DeploymentInactive}); err != nil {
		t.Fatal(err)
	}
	if st := sim.Deployments("acme/model")[0].Statuses; len(st) != 2 || st[1].State != "inactive" || st[1].AutoInactive {
		t.Errorf("statuses of the replaced deployment = %+v", st)
	}
}

func TestDeploymentErrors(t *testing.T) {
	reset := time.Now().Add(2 * time.Minute)
	hostError := func(code int, msg string, temporary bool) func(*testing.T, error) {
		return func(t *testing.T, err error) {
			t.Helper()
			var he *bot.HostError
			if !errors.As(err, &he) || he.StatusCode != code || !strings.Contains(he.Message, msg) || he.Temporary() != temporary {
				t.Errorf("err = %#v, want a HostError %d with %q", err, code, msg)
			}
		}
	}
	rateLimit := func(t *testing.T, err error) {
		t.Helper()
		var rl *bot.RateLimitError
		if !errors.As(err, &rl) || rl.RetryAfter < time.Second {
			t.Errorf("err = %#v, want a RateLimitError", err)
		}
	}
	tests := []struct {
		name   string
		setup  func(*Simulator)
		create bot.Deployment      // used when update is false
		update bool                // call UpdateDeployment on a fresh deployment
		id     int64               // deployment to update; 0 is the fresh one
		state  bot.DeploymentState // for updates
		check  func(*testing.T, error)
	}{
		{
			name:  "create: 502 is temporary",
			setup: func(s *Simulator) { s.Faults.Add(forgesim.Fault{Status: http.StatusBadGateway}) },
			check: hostError(502, "injected fault", true),
		},
		{
			name:   "update: 502 is temporary",
			setup:  func(s *Simulator) { s.Faults.Add(forgesim.Fault{Status: http.StatusBadGateway}) },
			update: true, state: bot.DeploymentSuccess,
			check: hostError(502, "injected fault", true),
		},
		{
			name: "create: 429",
			setup: func(s *Simulator) {
				s.Faults.Add(forgesim.Fault{Status: http.StatusTooManyRequests, Header: map[string]string{"Retry-After": "7"}})
			},
			check: rateLimit,
		},
		{
			name:   "update: primary rate limit",
			setup:  func(s *Simulator) { s.SetRateLimit(0, reset) },
			update: true, state: bot.DeploymentSuccess,
			check: rateLimit,
		},
		{
			name:   "update: invalid state",
			update: true, state: "rolled_back",
			check: hostError(422, "state is not included in the list", false),
		},
		{
			name:   "update: unknown deployment",
			update: true, id: 424242, state: bot.DeploymentSuccess,
			check: func(t *testing.T, err error) {
				hostError(404, "Not Found", false)(t, err)
				if !errors.Is(err, bot.ErrNotFound) {
					t.Errorf("err = %v is not ErrNotFound", err)
				}
			},
		},
		{
			name:   "create: missing ref",
			create: bot.Deployment{Environment: "production", Ref: "main"},
			check:  hostError(422, `"ref" wasn't supplied`, false),
		},
		{
			name:   "create: unknown ref",
			create: bot.Deployment{Environment: "production", SHA: "v7-not-a-sha"},
			check:  hostError(422, "No ref found for: v7-not-a-sha", false),
		},
		{
			name: "create: 202 auto-merge is an error",
			setup: func(s *Simulator) {
				s.Faults.Add(forgesim.Fault{Method: http.MethodPost, Status: http.StatusAccepted,
					Body: `{"message":"Auto-merged master into topic-branch on deployment."}`})
			},
			check: hostError(202, "Auto-merged master", false),
		},
		{
			name: "create: other 2xx is an error",
			setup: func(s *Simulator) {
				s.Faults.Add(forgesim.Fault{Method: http.MethodPost, Status: http.StatusOK, Body: `{"id":1}`})
			},
			check: hostError(200, "unexpected 200", false),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			c, sim, _ := newTestClient(t)
			var err error
			if tt.update {
				d, cerr := c.CreateDeployment(ctx, testRepo, bot.Deployment{Environment: "production", Ref: "main", SHA: deploySHA})
				if cerr != nil {
					t.Fatal(cerr)
				}
				id := tt.id
				if id == 0 {
					id = d.ID
				}
				if tt.setup != nil {
					tt.setup(sim)
				}
				err = c.UpdateDeployment(ctx, testRepo, id, bot.DeploymentStatus{State: tt.state, Description: "x"})
				if n := len(sim.Deployments("acme/model")[0].Statuses); n != 0 {
					t.Errorf("a refused update left %d statuses", n)
				}
			} else {
				if tt.setup != nil {
					tt.setup(sim)
				}
				in := tt.create
				if in.Environment == "" {
					in = bot.Deployment{Environment: "production", Ref: "main", SHA: deploySHA}
				}
				var got bot.Deployment
				got, err = c.CreateDeployment(ctx, testRepo, in)
				if got != (bot.Deployment{}) {
					t.Errorf("deployment %+v alongside error %v", got, err)
				}
			}
			tt.check(t, err)
			if err != nil && strings.Contains(err.Error(), testToken) {
				t.Errorf("error %q contains the token", err)
			}
		})
	}
}

// The simulator behaves as GitHub does where mlbot's parameters keep it
// from mattering: required contexts, auto_inactive, branches, listings.
func TestSimulatorDeployments(t *testing.T) {
	ctx := context.Background()
	c, sim, _ := newTestClient(t)
	cl, _, _, err := c.restFor(ctx, testRepo)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.CreateStatus(ctx, testRepo, deploySHA, bot.Status{Context: "ci", State: bot.StatePending}); err != nil {
		t.Fatal(err)
	}

	// Without required_contexts every context must be success.
	_, _, err = cl.Repositories.CreateDeployment(ctx, "acme", "model", &gh.DeploymentRequest{Ref: gh.String(deploySHA)})
	var er *gh.ErrorResponse
	if !errors.As(err, &er) || er.Response.StatusCode != http.StatusConflict || !strings.Contains(er.Message, "Commit status checks failed") {
		t.Errorf("deployment over a pending status: err = %v", err)
	}
	// Naming a context that was never set fails too.
	_, _, err = cl.Repositories.CreateDeployment(ctx, "acme", "model", &gh.DeploymentRequest{Ref: gh.String(deploySHA), RequiredContexts: &[]string{"security"}})
	if !errors.As(err, &er) || er.Response.StatusCode != http.StatusConflict {
		t.Errorf("deployment requiring a missing context: err = %v", err)
	}

	// A branch resolves to its commit; the environment defaults to
	// production, which is then a production environment.
	sim.SetBranch("acme/model", "main", deploySHA)
	d, resp, err := cl.Repositories.CreateDeployment(ctx, "acme", "model", &gh.DeploymentRequest{Ref: gh.String("main"), RequiredContexts: &[]string{}})
	if err != nil || resp.StatusCode != 201 || d.GetSHA() != deploySHA || d.GetRef() != "main" || d.GetEnvironment() != "production" {
		t.Fatalf("branch deployment = %v, %v", d, err)
	}
	if got := sim.Deployments("acme/model")[0]; !got.Production {
		t.Errorf("default production environment is not production: %+v", got)
	}

	// auto_inactive (default on) marks the previous successful
	// non-production deployment of the environment inactive.
	var staging []int64
	for range 3 {
		d, err := c.CreateDeployment(ctx, testRepo, bot.Deployment{Environment: "staging", SHA: deploySHA})
		if err != nil {
			t.Fatal(err)
		}
		staging = append(staging, d.ID)
	}
	if err := c.UpdateDeployment(ctx, testRepo, staging[0], bot.DeploymentStatus{State: bot.DeploymentSuccess}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := cl.Repositories.CreateDeploymentStatus(ctx, "acme", "model", staging[2], &gh.DeploymentStatusRequest{State: gh.String("success")}); err != nil {
		t.Fatal(err)
	}
	deps := sim.Deployments("acme/model")
	if st := deps[1].Statuses; len(st) != 2 || st[1].State != "inactive" || !st[1].AutoInactive {
		t.Errorf("earlier successful deployment's statuses = %+v", st)
	}
	if st := deps[2].Statuses; len(st) != 0 {
		t.Errorf("deployment that never succeeded got statuses %+v", st)
	}

	// Listing: newest first, filtered, paginated.
	list, resp, err := cl.Repositories.ListDeployments(ctx, "acme", "model", &gh.DeploymentsListOptions{Environment: "staging", SHA: deploySHA, ListOptions: gh.ListOptions{PerPage: 2}})
	if err != nil || len(list) != 2 || list[0].GetID() != staging[2] || resp.NextPage != 2 {
		t.Fatalf("ListDeployments = %v, next %d, %v", list, resp.NextPage, err)
	}
	list, _, err = cl.Repositories.ListDeployments(ctx, "acme", "model", &gh.DeploymentsListOptions{Environment: "staging", ListOptions: gh.ListOptions{PerPage: 2, Page: 2}})
	if err != nil || len(list) != 1 || list[0].GetID() != staging[0] {
		t.Errorf("page 2 = %v, %v", list, err)
	}
	if list, _, err := cl.Repositories.ListDeployments(ctx, "acme", "model", &gh.DeploymentsListOptions{Environment: "qa"}); err != nil || len(list) != 0 {
		t.Errorf("other environment = %v, %v", list, err)
	}
	statuses, _, err := cl.Repositories.ListDeploymentStatuses(ctx, "acme", "model", staging[0], nil)
	if err != nil || len(statuses) != 2 || statuses[0].GetState() != "inactive" || statuses[1].GetState() != "success" {
		t.Errorf("ListDeploymentStatuses = %v, %v", statuses, err)
	}
	if got, _, err := cl.Repositories.GetDeployment(ctx, "acme", "model", staging[1]); err != nil || got.GetEnvironment() != "staging" {
		t.Errorf("GetDeployment = %v, %v", got, err)
	}
	if _, resp, err := cl.Repositories.ListDeploymentStatuses(ctx, "acme", "other", staging[0], nil); err == nil || resp.StatusCode != 404 {
		t.Errorf("statuses through another repository: %v", err)
	}
}
