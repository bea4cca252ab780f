package bot

import (
	"strings"
	"testing"
)

func TestParsePermission(t *testing.T) {
	tests := []struct {
		in      string
		want    Permission
		wantErr bool
	}{
		{"none", PermissionNone, false},
		{"read", PermissionRead, false},
		{"triage", PermissionTriage, false},
		{"write", PermissionWrite, false},
		{"maintain", PermissionMaintain, false},
		{"admin", PermissionAdmin, false},
		{"Write", PermissionWrite, false},
		{"ADMIN", PermissionAdmin, false},
		{" maintain\n", PermissionMaintain, false},
		{"", "", true},
		{"owner", "", true},
		{"developer", "", true},
		{"writer", "", true},
	}
	for _, tt := range tests {
		got, err := ParsePermission(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ParsePermission(%q) = %q, %v; want %q, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
		if err != nil {
			for _, level := range []string{"none", "read", "triage", "write", "maintain", "admin"} {
				if !strings.Contains(err.Error(), level) {
					t.Errorf("ParsePermission(%q) error %q does not name %q", tt.in, err, level)
				}
			}
		}
	}
}

func TestPermissionAtLeast(t *testing.T) {
	order := []Permission{PermissionNone, PermissionRead, PermissionTriage, PermissionWrite, PermissionMaintain, PermissionAdmin}
	for i, p := range order {
		for j, q := range order {
			if got, want := p.AtLeast(q), i >= j; got != want {
				t.Errorf("%q.AtLeast(%q) = %v, want %v", p, q, got, want)
			}
		}
	}
	tests := []struct {
		p, q Permission
		want bool
	}{
		{"", PermissionNone, false},
		{"bogus", PermissionRead, false},
		{PermissionAdmin, "", false},
		{PermissionAdmin, "Admin", false}, // not parsed: not a level
		{"", "", false},
	}
	for _, tt := range tests {
		if got := tt.p.AtLeast(tt.q); got != tt.want {
			t.Errorf("%q.AtLeast(%q) = %v, want %v", tt.p, tt.q, got, tt.want)
		}
	}
}
