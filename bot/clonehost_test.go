package bot

import "testing"

func TestCloneHostMatches(t *testing.T) {
	tests := []struct {
		clone, api string
		want       bool
	}{
		{"https://github.com/acme/model.git", "https://api.github.com/", true},
		{"https://ghe.example.com/acme/model.git", "https://ghe.example.com/api/v3/", true},
		{"https://gitlab.com/group/model.git", "https://gitlab.com", true},
		{"http://127.0.0.1:8080/git/acme/model.git", "http://127.0.0.1:8080/", true},
		{"http://127.0.0.1:9999/git/acme/model.git", "http://127.0.0.1:8080/", false},
		{"https://evil.example/acme/model.git", "https://api.github.com/", false},
		{"https://github.com.evil.example/x.git", "https://api.github.com/", false},
		{"git@github.com:acme/model.git", "https://api.github.com/", false},
		{"", "https://api.github.com/", false},
	}
	for _, tt := range tests {
		if got := CloneHostMatches(tt.clone, tt.api); got != tt.want {
			t.Errorf("CloneHostMatches(%q, %q) = %v, want %v", tt.clone, tt.api, got, tt.want)
		}
	}
}
