package bot

import (
	"errors"
	"strings"
	"testing"
)

// TestCheckCloneURL tries the clone URLs a sender who knows the webhook
// secret would put in a payload to receive mlbot's token.
func TestCheckCloneURL(t *testing.T) {
	const (
		github = "https://github.com/"
		ghe    = "https://ghe.example.com/"
		gitlab = "https://gitlab.example.com/"
		rooted = "https://example.com/gitlab/"
		sim    = "http://127.0.0.1:8080/"
	)
	tests := []struct {
		name, clone, base, repo string
		wantErr                 string // "" when accepted
	}{
		{"github", "https://github.com/acme/model.git", github, "acme/model", ""},
		{"github without .git", "https://github.com/acme/model", github, "acme/model", ""},
		{"names case-insensitive", "https://GitHub.com/ACME/Model.git", github, "acme/model", ""},
		{"explicit default port", "https://github.com:443/acme/model.git", github, "acme/model", ""},
		{"enterprise", "https://ghe.example.com/acme/model.git", ghe, "acme/model", ""},
		{"gitlab subgroup", "https://gitlab.example.com/group/sub/model.git", gitlab, "group/sub/model", ""},
		{"gitlab relative root", "https://example.com/gitlab/group/model.git", rooted, "group/model", ""},
		{"http simulator", "http://127.0.0.1:8080/acme/model.git", sim, "acme/model", ""},

		{"http downgrade", "http://github.com/acme/model.git", github, "acme/model", "not https"},
		{"other scheme", "ssh://github.com/acme/model.git", github, "acme/model", "not https"},
		{"scp syntax", "git@github.com:acme/model.git", github, "acme/model", "user information"},
		{"file", "file:///srv/git/acme/model.git", github, "acme/model", "not https"},
		{"other port", "https://github.com:8443/acme/model.git", github, "acme/model", "is not on"},
		{"other port on simulator", "http://127.0.0.1:9999/acme/model.git", sim, "acme/model", "is not on"},
		{"https default port against http simulator", "https://127.0.0.1/acme/model.git", sim, "acme/model", "is not on"},
		{"other host", "https://evil.example/acme/model.git", github, "acme/model", "is not on"},
		{"host suffix", "https://github.com.evil.example/acme/model.git", github, "acme/model", "is not on"},
		{"api host", "https://api.github.com/acme/model.git", github, "acme/model", "is not on"},
		{"other repository", "https://github.com/mallory/loot.git", github, "acme/model", "is not the repository"},
		{"other repository on simulator", "http://127.0.0.1:8080/acme/secret.git", sim, "acme/model", "is not the repository"},
		{"repository in a subgroup", "https://gitlab.example.com/evil/group/model.git", gitlab, "group/model", "is not the repository"},
		{"outside the relative root", "https://example.com/group/model.git", rooted, "group/model", "is not the repository"},
		{"prefix of the path", "https://github.com/acme/model.git/../loot.git", github, "acme/model", "is not the repository"},
		{"dot dot", "https://github.com/acme/../mallory/loot.git", github, "mallory/loot", "is not the repository"},
		{"encoded dot dot", "https://github.com/acme/model/%2e%2e/%2e%2e/mallory/loot.git", github, "acme/model", "escape"},
		{"encoded slash", "https://github.com/acme%2Fmodel.git", github, "acme/model", "escape"},
		{"userinfo", "https://x-access-token@github.com/acme/model.git", github, "acme/model", "user information"},
		{"userinfo hiding host", "https://github.com@evil.example/acme/model.git", github, "acme/model", "user information"},
		{"query", "https://github.com/acme/model.git?x=1", github, "acme/model", "query"},
		{"fragment", "https://github.com/acme/model.git#x", github, "acme/model", "fragment"},
		{"backslash", `https://github.com\@evil.example/acme/model.git`, github, "acme/model", "character"},
		{"space", "https://github.com/acme/model.git --upload-pack=x", github, "acme/model", "character"},
		{"trailing slash", "https://github.com/acme/model.git/", github, "acme/model", "is not the repository"},
		{"empty", "", github, "acme/model", "not https"},
		{"dot dot in the event's name", "https://github.com/acme/...git", github, "acme/..", "not a path of names"},
		{"one-segment name", "https://github.com/model.git", github, "model", "not owner/name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckCloneURL(tt.clone, tt.base, tt.repo)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("CheckCloneURL(%q, %q, %q) = %v, want nil", tt.clone, tt.base, tt.repo, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("CheckCloneURL(%q, %q, %q) accepted it", tt.clone, tt.base, tt.repo)
			}
			if !errors.Is(err, ErrForeignCloneHost) {
				t.Errorf("error does not wrap ErrForeignCloneHost: %v", err)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q does not say %q", err, tt.wantErr)
			}
		})
	}
}
