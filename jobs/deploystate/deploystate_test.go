package deploystate

import (
	"os/exec"
	"strings"
	"testing"
)

func TestDone(t *testing.T) {
	tests := []struct {
		state string
		want  bool
	}{
		{Queued, false},
		{Running, false},
		{Succeeded, true},
		{Failed, true},
		{RolledBack, true},
		{Dropped, true},
		{Refused, true},
		{"", false},
		{"unknown", false},
	}
	for _, tt := range tests {
		if got := Done(tt.state); got != tt.want {
			t.Errorf("Done(%q) = %v, want %v", tt.state, got, tt.want)
		}
	}
}

// TestLeaves keeps the reason this package exists: the registry and the
// report share the deploy states through it, not through each other, and
// import nothing of mlbot's beyond the leaves listed here. It asks the go
// command, as `go list` would show a reviewer.
func TestLeaves(t *testing.T) {
	const module = "github.com/mlbot/mlbot/"
	allowed := map[string]map[string]bool{
		module + "jobs/registry":    {module + "internal/workspace": true, module + "jobs/deploystate": true},
		module + "jobs/report":      {module + "internal/workspace": true, module + "jobs/deploystate": true, module + "jobs/report/stats": true},
		module + "jobs/deploystate": {},
	}
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to check the imports: %v", err)
	}
	args := []string{"list", "-f", `{{.ImportPath}}{{range .Imports}} {{.}}{{end}}`}
	for p := range allowed {
		args = append(args, p)
	}
	out, err := exec.Command(goCmd, args...).Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			t.Fatalf("go list: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("go list: %v", err)
	}
	seen := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		ok, known := allowed[f[0]]
		if !known {
			t.Fatalf("go list answered for %q", f[0])
		}
		seen++
		for _, imp := range f[1:] {
			if strings.HasPrefix(imp, module) && !ok[imp] {
				t.Errorf("%s imports %s; it must stay a leaf", f[0], imp)
			}
		}
	}
	if seen != len(allowed) {
		t.Fatalf("go list listed %d of %d packages", seen, len(allowed))
	}
}
