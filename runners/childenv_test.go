package runners

import (
	"slices"
	"testing"
)

func TestChildEnv(t *testing.T) {
	tests := []struct {
		name    string
		parent  []string
		secrets []string
		extra   []string
		want    []string
	}{
		{
			name:   "keeps ordinary variables and sets CI",
			parent: []string{"PATH=/usr/bin", "HOME=/home/w", "LANG=C.UTF-8"},
			want:   []string{"PATH=/usr/bin", "HOME=/home/w", "LANG=C.UTF-8", "CI=true"},
		},
		{
			name: "drops bot and git credential variables",
			parent: []string{"MLBOT_GITHUB_TOKEN=x", "MLBOT_REDIS_URL=redis://", "PATH=/bin",
				"GIT_CONFIG_COUNT=1", "GIT_CONFIG_KEY_0=http.extraHeader", "GIT_CONFIG_VALUE_0=Authorization: y",
				"GIT_CONFIG_PARAMETERS='a.b'='c'", "GIT_CONFIG=/etc/x", "GIT_ASKPASS=/bin/echo", "GIT_AUTHOR_NAME=bot"},
			want: []string{"PATH=/bin", "GIT_AUTHOR_NAME=bot", "CI=true"},
		},
		{
			name:    "drops values equal to or containing a secret",
			parent:  []string{"TOKEN=s3cr3tvalue", "URL=https://u:s3cr3tvalue@host/", "OTHER=s3cr3t", "SHORT=ab"},
			secrets: []string{"s3cr3tvalue", "ab", ""},
			want:    []string{"OTHER=s3cr3t", "SHORT=ab", "CI=true"},
		},
		{
			name:    "extra is kept even when secret and overrides parent",
			parent:  []string{"MODE=parent", "KEEP=1"},
			secrets: []string{"deploykey"},
			extra:   []string{"MODE=extra", "DEPLOY_KEY=deploykey"},
			want:    []string{"MODE=extra", "KEEP=1", "DEPLOY_KEY=deploykey", "CI=true"},
		},
		{
			name:   "CI is forced and appears once",
			parent: []string{"CI=false", "A=1"},
			extra:  []string{"CI=0"},
			want:   []string{"CI=true", "A=1"},
		},
		{
			name:   "malformed entries dropped",
			parent: []string{"NOEQUALS", "=nameless", "EMPTY="},
			extra:  []string{"bad"},
			want:   []string{"EMPTY=", "CI=true"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			parent := slices.Clone(tt.parent)
			got := ChildEnv(parent, tt.secrets, tt.extra...)
			if !slices.Equal(got, tt.want) {
				t.Errorf("ChildEnv = %q, want %q", got, tt.want)
			}
			if !slices.Equal(parent, tt.parent) {
				t.Error("ChildEnv modified parent")
			}
		})
	}
}
