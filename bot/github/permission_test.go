package github

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mlbot/mlbot/bot"
	"github.com/mlbot/mlbot/bot/forgesim"
)

func TestGetPermission(t *testing.T) {
	ctx := context.Background()
	c, sim, _ := newTestClient(t)
	tests := []struct {
		name  string
		setup func(user string)
		user  string
		want  bot.Permission
	}{
		{"admin", func(u string) { sim.SetPermission("acme/model", u, "admin") }, "ada", bot.PermissionAdmin},
		{"maintain from role_name", func(u string) { sim.SetPermission("acme/model", u, "maintain") }, "max", bot.PermissionMaintain},
		{"write", func(u string) { sim.SetPermission("acme/model", u, "write") }, "wes", bot.PermissionWrite},
		{"triage from role_name", func(u string) { sim.SetPermission("acme/model", u, "triage") }, "tia", bot.PermissionTriage},
		{"read", func(u string) { sim.SetPermission("acme/model", u, "read") }, "rey", bot.PermissionRead},
		{"none", func(u string) { sim.SetPermission("acme/model", u, "none") }, "nob", bot.PermissionNone},
		{"custom role on write", func(u string) { sim.SetCustomRole("acme/model", u, "ml-reviewer", "write") }, "cus", bot.PermissionWrite},
		{"custom role on maintain counts as write", func(u string) { sim.SetCustomRole("acme/model", u, "release-manager", "maintain") }, "rel", bot.PermissionWrite},
		{"custom role on triage counts as read", func(u string) { sim.SetCustomRole("acme/model", u, "labeler", "triage") }, "lab", bot.PermissionRead},
		{"login case folds", func(string) { sim.SetPermission("acme/model", "MixedCase", "write") }, "mixedcase", bot.PermissionWrite},
		{"bot login is escaped", func(u string) { sim.SetPermission("acme/model", u, "write") }, "dependabot[bot]", bot.PermissionWrite},
		{"other repository's collaborator", func(u string) { sim.SetPermission("acme/other", u, "admin") }, "eve", bot.PermissionNone},
		{"unknown user is 404", func(string) {}, "nobody", bot.PermissionNone},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.setup(tt.user)
			got, err := c.GetPermission(ctx, testRepo, tt.user)
			if err != nil || got != tt.want {
				t.Errorf("GetPermission(%q) = %q, %v; want %q", tt.user, got, err, tt.want)
			}
		})
	}
	calls := sim.Rec.Find(http.MethodGet, "/collaborators/dependabot[bot]/permission")
	if len(calls) != 1 || calls[0].Status != http.StatusOK {
		t.Errorf("calls for the bot login = %+v", calls)
	}
}

func TestPermissionMapping(t *testing.T) {
	tests := []struct {
		role, legacy string
		want         bot.Permission
		wantErr      bool
	}{
		{"admin", "admin", bot.PermissionAdmin, false},
		{"maintain", "write", bot.PermissionMaintain, false},
		{"write", "write", bot.PermissionWrite, false},
		{"triage", "read", bot.PermissionTriage, false},
		{"read", "read", bot.PermissionRead, false},
		{"", "write", bot.PermissionWrite, false}, // GHES without role_name
		{"", "none", bot.PermissionNone, false},
		{"none", "none", bot.PermissionNone, false},
		{"security-manager", "read", bot.PermissionRead, false},
		{"Admin", "write", bot.PermissionWrite, false}, // a custom role, not the built-in one
		{"", "", "", true},
		{"", "superuser", "", true},
	}
	for _, tt := range tests {
		got, err := permission(tt.role, tt.legacy)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("permission(%q, %q) = %q, %v; want %q, error %v", tt.role, tt.legacy, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestGetPermissionErrors(t *testing.T) {
	reset := time.Now().Add(2 * time.Minute)
	tests := []struct {
		name   string
		setup  func(*Simulator)
		check  func(*testing.T, error)
		user   string
		noCall bool
	}{
		{
			name:  "502 is a temporary host error",
			setup: func(s *Simulator) { s.Faults.Add(forgesim.Fault{Status: http.StatusBadGateway}) },
			check: func(t *testing.T, err error) {
				var he *bot.HostError
				if !errors.As(err, &he) || he.StatusCode != http.StatusBadGateway || !he.Temporary() ||
					he.Path != "/repos/acme/model/collaborators/someone/permission" {
					t.Errorf("err = %#v", err)
				}
			},
		},
		{
			name:  "rate limit",
			setup: func(s *Simulator) { s.SetRateLimit(0, reset) },
			check: func(t *testing.T, err error) {
				var rl *bot.RateLimitError
				if !errors.As(err, &rl) || rl.RetryAfter < time.Minute {
					t.Errorf("err = %#v", err)
				}
			},
		},
		{
			name: "403 is not mistaken for none",
			setup: func(s *Simulator) {
				s.Faults.Add(forgesim.Fault{Status: http.StatusForbidden, Body: `{"message":"Resource not accessible by integration"}`})
			},
			check: func(t *testing.T, err error) {
				var he *bot.HostError
				if !errors.As(err, &he) || he.StatusCode != http.StatusForbidden || !strings.Contains(err.Error(), "not accessible") {
					t.Errorf("err = %#v", err)
				}
			},
		},
		{
			name: "unknown permission word",
			setup: func(s *Simulator) {
				s.Faults.Add(forgesim.Fault{Status: http.StatusOK, Body: `{"permission":"superuser","role_name":"superuser"}`})
			},
			check: func(t *testing.T, err error) {
				if err == nil || !strings.Contains(err.Error(), "superuser") {
					t.Errorf("err = %v", err)
				}
			},
		},
		{
			name:   "empty user",
			user:   "-",
			noCall: true,
			check: func(t *testing.T, err error) {
				if err == nil {
					t.Error("no error")
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, sim, _ := newTestClient(t)
			sim.SetPermission("acme/model", "someone", "admin")
			if tt.setup != nil {
				tt.setup(sim)
			}
			user := "someone"
			if tt.user == "-" {
				user = ""
			}
			got, err := c.GetPermission(context.Background(), testRepo, user)
			if got != "" {
				t.Errorf("permission = %q alongside error %v", got, err)
			}
			tt.check(t, err)
			if err != nil && strings.Contains(err.Error(), testToken) {
				t.Errorf("error %q contains the token", err)
			}
			if n := len(sim.Rec.Calls()); (n == 0) != tt.noCall {
				t.Errorf("%d calls", n)
			}
		})
	}
}

func TestCreateReaction(t *testing.T) {
	ctx := context.Background()
	c, sim, _ := newTestClient(t)
	cm := sim.AddComment("acme/model", 7, "octocat", "/mlbot retrain")
	for _, emoji := range []string{"eyes", "eyes", "+1", "rocket"} {
		if err := c.CreateReaction(ctx, testRepo, 7, cm.ID, emoji); err != nil {
			t.Fatalf("CreateReaction(%q): %v", emoji, err)
		}
	}
	got := sim.Comments("acme/model", 7)[0].Reactions
	if strings.Join(got, ",") != "eyes,+1,rocket" {
		t.Errorf("Reactions = %v", got)
	}
	var codes []int
	for _, call := range sim.Rec.Find(http.MethodPost, "/reactions") {
		codes = append(codes, call.Status)
	}
	if len(codes) != 4 || codes[0] != 201 || codes[1] != 200 {
		t.Errorf("answers = %v, want 201 then 200 for the repeat", codes)
	}

	// Every GitHub reaction name is accepted.
	for _, emoji := range []string{"-1", "laugh", "confused", "heart", "hooray"} {
		if err := c.CreateReaction(ctx, testRepo, 7, cm.ID, emoji); err != nil {
			t.Errorf("CreateReaction(%q): %v", emoji, err)
		}
	}

	sim.Rec.Reset()
	if err := c.CreateReaction(ctx, testRepo, 7, cm.ID, "thumbsup"); err == nil || !strings.Contains(err.Error(), "thumbsup") {
		t.Errorf("unknown reaction: err = %v", err)
	}
	if n := len(sim.Rec.Calls()); n != 0 {
		t.Errorf("unknown reaction made %d calls", n)
	}

	err := c.CreateReaction(ctx, testRepo, 7, 999999, "eyes")
	var he *bot.HostError
	if !errors.As(err, &he) || he.StatusCode != http.StatusNotFound || !errors.Is(err, bot.ErrNotFound) ||
		he.Path != "/repos/acme/model/issues/comments/999999/reactions" {
		t.Errorf("missing comment: err = %#v", err)
	}

	sim.Faults.Add(forgesim.Fault{Status: http.StatusTooManyRequests, Header: map[string]string{"Retry-After": "9"}})
	var rl *bot.RateLimitError
	if err := c.CreateReaction(ctx, testRepo, 7, cm.ID, "eyes"); !errors.As(err, &rl) || rl.RetryAfter != 9*time.Second {
		t.Errorf("rate limited: err = %#v", err)
	}
}
