package bot

import (
	"fmt"
	"strings"
)

// Permission is a user's access to a repository, in GitHub's vocabulary,
// which GitLab's access levels map onto.
type Permission string

// Permission levels, from least to most access.
const (
	PermissionNone     Permission = "none"
	PermissionRead     Permission = "read"
	PermissionTriage   Permission = "triage"
	PermissionWrite    Permission = "write"
	PermissionMaintain Permission = "maintain"
	PermissionAdmin    Permission = "admin"
)

// permissionOrder lists the levels from least to most access.
var permissionOrder = []Permission{
	PermissionNone,
	PermissionRead,
	PermissionTriage,
	PermissionWrite,
	PermissionMaintain,
	PermissionAdmin,
}

// ParsePermission parses a permission level case-insensitively, ignoring
// surrounding space ("Write", " admin "). Any other word is an error that
// names the valid levels.
func ParsePermission(s string) (Permission, error) {
	p := Permission(strings.ToLower(strings.TrimSpace(s)))
	if p.rank() >= 0 {
		return p, nil
	}
	names := make([]string, len(permissionOrder))
	for i, q := range permissionOrder {
		names[i] = string(q)
	}
	return "", fmt.Errorf("unknown permission %q: want one of %s", s, strings.Join(names, ", "))
}

// AtLeast reports whether p grants at least the access q does, in the order
// none < read < triage < write < maintain < admin. It fails closed: a
// permission outside that list (the zero value "", a typo) neither reaches
// nor is reached by any level.
func (p Permission) AtLeast(q Permission) bool {
	rp, rq := p.rank(), q.rank()
	return rp >= 0 && rq >= 0 && rp >= rq
}

// rank is p's position in permissionOrder, or -1 when p is not a level.
func (p Permission) rank() int {
	for i, q := range permissionOrder {
		if p == q {
			return i
		}
	}
	return -1
}
