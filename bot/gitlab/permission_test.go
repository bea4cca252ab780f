package gitlab

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	gl "gitlab.com/gitlab-org/api/client-go"

	"github.com/mlbot/mlbot/bot"
	"github.com/mlbot/mlbot/bot/forgesim"
)

func TestGetPermission(t *testing.T) {
	ctx := context.Background()
	c, sim := newTestClient(t, testToken)
	sim.SetMember(testProject, "gus", AccessGuest)
	sim.SetMember(testProject, "rita", AccessReporter)
	sim.SetMember(testProject, "dev", AccessDeveloper)
	sim.SetMember(testProject, "maria", AccessMaintainer)
	sim.SetMember(testProject, "olga", AccessOwner)
	sim.SetMember(testProject, "min", 5) // Minimal access
	sim.SetMember(testProject, "gone", AccessDeveloper)
	sim.SetMember(testProject, "gone", 0) // removed again: the user exists
	sim.SetMember("other/project", "stranger", AccessOwner)
	tests := []struct {
		user string
		repo bot.Repo
		want bot.Permission
	}{
		{"gus", bot.Repo{ID: testID}, bot.PermissionRead},
		{"rita", bot.Repo{ID: testID}, bot.PermissionRead},
		{"dev", bot.Repo{ID: testID}, bot.PermissionWrite},
		{"maria", bot.Repo{FullName: testProject}, bot.PermissionMaintain},
		{"Maria", bot.Repo{FullName: testProject}, bot.PermissionMaintain}, // usernames fold case
		{"olga", bot.Repo{ID: testID}, bot.PermissionAdmin},
		{"min", bot.Repo{ID: testID}, bot.PermissionNone},
		{"gone", bot.Repo{ID: testID}, bot.PermissionNone},          // member lookup is a 404
		{"stranger", bot.Repo{ID: testID}, bot.PermissionNone},      // member elsewhere only
		{"nobody", bot.Repo{ID: testID}, bot.PermissionNone},        // no such user
		{"ml", bot.Repo{FullName: testProject}, bot.PermissionNone}, // no prefix match
	}
	for _, tt := range tests {
		got, err := c.GetPermission(ctx, tt.repo, tt.user)
		if err != nil || got != tt.want {
			t.Errorf("GetPermission(%q) = %q, %v; want %q", tt.user, got, err, tt.want)
		}
	}
	// Neither "nobody" nor "ml" is a user, so neither is looked up.
	if calls := sim.Rec.Find(http.MethodGet, "/members/all/"); len(calls) != len(tests)-2 {
		t.Errorf("%d member lookups, want one per existing user (%d)", len(calls), len(tests)-2)
	}
}

func TestAccessPermission(t *testing.T) {
	tests := []struct {
		level gl.AccessLevelValue
		want  bot.Permission
	}{
		{gl.NoPermissions, bot.PermissionNone},
		{gl.MinimalAccessPermissions, bot.PermissionNone},
		{gl.GuestPermissions, bot.PermissionRead},
		{gl.PlannerPermissions, bot.PermissionRead},
		{gl.ReporterPermissions, bot.PermissionRead},
		{gl.DeveloperPermissions, bot.PermissionWrite},
		{gl.MaintainerPermissions, bot.PermissionMaintain},
		{gl.OwnerPermissions, bot.PermissionAdmin},
		{gl.AdminPermissions, bot.PermissionAdmin},
		{-1, bot.PermissionNone},
	}
	for _, tt := range tests {
		if got := accessPermission(tt.level); got != tt.want {
			t.Errorf("accessPermission(%d) = %q, want %q", tt.level, got, tt.want)
		}
	}
}

func TestGetPermissionErrors(t *testing.T) {
	tests := []struct {
		name  string
		token string
		user  string
		setup func(*Simulator)
		check func(*testing.T, error)
	}{
		{
			name:  "502 on the user lookup",
			setup: func(s *Simulator) { s.Faults.Add(forgesim.Fault{PathSubstr: "/users", Status: http.StatusBadGateway}) },
			check: func(t *testing.T, err error) {
				var he *bot.HostError
				if !errors.As(err, &he) || he.StatusCode != 502 || !he.Temporary() || he.Path != "/api/v4/users" {
					t.Errorf("err = %#v", err)
				}
			},
		},
		{
			name: "502 on the member lookup",
			setup: func(s *Simulator) {
				s.Faults.Add(forgesim.Fault{PathSubstr: "/members/all/", Status: http.StatusBadGateway})
			},
			check: func(t *testing.T, err error) {
				var he *bot.HostError
				if !errors.As(err, &he) || he.StatusCode != 502 || !strings.Contains(he.Path, "/members/all/") {
					t.Errorf("err = %#v", err)
				}
			},
		},
		{
			name: "403 is not mistaken for none",
			setup: func(s *Simulator) {
				s.Faults.Add(forgesim.Fault{PathSubstr: "/members/all/", Status: http.StatusForbidden, Body: `{"message":"403 Forbidden"}`})
			},
			check: func(t *testing.T, err error) {
				var he *bot.HostError
				if !errors.As(err, &he) || he.StatusCode != 403 {
					t.Errorf("err = %#v", err)
				}
			},
		},
		{
			name: "rate limit",
			setup: func(s *Simulator) {
				s.Faults.Add(forgesim.Fault{Status: http.StatusTooManyRequests, Header: map[string]string{"Retry-After": "11"}})
			},
			check: wantRateLimit(11 * time.Second),
		},
		{
			name:  "bad token",
			token: "glpat-revoked",
			check: func(t *testing.T, err error) {
				var he *bot.HostError
				if !errors.As(err, &he) || he.StatusCode != 401 || strings.Contains(err.Error(), "glpat-revoked") {
					t.Errorf("err = %#v", err)
				}
			},
		},
		{
			name: "empty username",
			user: "-",
			check: func(t *testing.T, err error) {
				if err == nil {
					t.Error("no error")
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			token := tt.token
			if token == "" {
				token = testToken
			}
			c, sim := newTestClient(t, token)
			sim.SetMember(testProject, "dev", AccessDeveloper)
			if tt.setup != nil {
				tt.setup(sim)
			}
			user := "dev"
			if tt.user == "-" {
				user = ""
			}
			got, err := c.GetPermission(context.Background(), bot.Repo{ID: testID}, user)
			if got != "" {
				t.Errorf("permission %q alongside error %v", got, err)
			}
			tt.check(t, err)
		})
	}
}

func TestCreateReaction(t *testing.T) {
	ctx := context.Background()
	c, sim := newTestClient(t, testToken)
	repo := bot.Repo{FullName: testProject}
	n, err := sim.AddNote(testProject, 5, "alice", "/mlbot retrain", false)
	if err != nil {
		t.Fatal(err)
	}
	for _, emoji := range []string{"eyes", "eyes", "+1", "-1", "rocket", "confused", "heart", "hooray", "laugh", "+1"} {
		if err := c.CreateReaction(ctx, repo, 5, n.ID, emoji); err != nil {
			t.Fatalf("CreateReaction(%q): %v", emoji, err)
		}
	}
	got := sim.Notes(testProject, 5)[0].Awards
	if want := "eyes,thumbsup,thumbsdown,rocket,confused,heart,tada,laughing"; strings.Join(got, ",") != want {
		t.Errorf("awards = %v, want %s", got, want)
	}
	var codes []int
	for _, call := range sim.Rec.Find(http.MethodPost, "/award_emoji") {
		codes = append(codes, call.Status)
	}
	if len(codes) != 10 || codes[0] != 201 || codes[1] != 404 || codes[9] != 404 {
		t.Errorf("answers = %v, want a 404 for each repeat", codes)
	}

	sim.Rec.Reset()
	if err := c.CreateReaction(ctx, repo, 5, n.ID, "thumbsup"); err == nil || !strings.Contains(err.Error(), "thumbsup") {
		t.Errorf("GitLab name instead of GitHub's: err = %v", err)
	}
	if calls := sim.Rec.Calls(); len(calls) != 0 {
		t.Errorf("unknown reaction made %d calls", len(calls))
	}

	// A note that does not exist is a 404 that is no success, and GitLab's
	// message survives although gl drops 404 bodies.
	err = c.CreateReaction(ctx, bot.Repo{ID: testID}, 5, n.ID+1000, "eyes")
	var he *bot.HostError
	if !errors.As(err, &he) || he.StatusCode != 404 || !errors.Is(err, bot.ErrNotFound) ||
		he.Message != "404 Note Not Found" || !strings.HasSuffix(he.Path, "/notes/"+itoa(n.ID+1000)+"/award_emoji") {
		t.Errorf("unknown note: err = %#v", err)
	}
	err = c.CreateReaction(ctx, bot.Repo{ID: 7}, 5, n.ID, "eyes")
	if !errors.As(err, &he) || he.StatusCode != 404 || he.Message != "404 Project Not Found" {
		t.Errorf("unknown project: err = %#v", err)
	}

	// An award that already exists counts as done when GitLab answers 400
	// for it, as it also may, and a different 400 does not.
	sim.Faults.Add(forgesim.Fault{PathSubstr: "/award_emoji", Status: 400, Body: `{"message":{"name":["has already been taken"]}}`})
	if err := c.CreateReaction(ctx, repo, 5, n.ID, "heart"); err != nil {
		t.Errorf("400 already taken: %v", err)
	}
	sim.Faults.Add(forgesim.Fault{PathSubstr: "/award_emoji", Status: 400, Body: `{"error":"name is missing"}`})
	if err := c.CreateReaction(ctx, repo, 5, n.ID, "heart"); !errors.As(err, &he) || he.StatusCode != 400 {
		t.Errorf("other 400: err = %#v", err)
	}
	sim.Faults.Add(forgesim.Fault{PathSubstr: "/award_emoji", Status: 429, Header: map[string]string{"Retry-After": "3"}})
	wantRateLimit(3*time.Second)(t, c.CreateReaction(ctx, repo, 5, n.ID, "heart"))
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
