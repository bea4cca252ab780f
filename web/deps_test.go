package web

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

// TestDependencies keeps the pages apart from the workers: web reads
// through the store and registry and must build without the task handlers
// of jobs, any part of asynq, the runners or the composition root, and
// without talking to Redis itself. It asks the go command, as `go list
// -deps ./web` would show a reviewer.
func TestDependencies(t *testing.T) {
	const module = "github.com/mlbot/mlbot/"
	// The packages of ours web may import directly (DESIGN.md, layout).
	allowed := map[string]bool{
		module + "jobs/store":    true,
		module + "jobs/registry": true,
		// The names of the deploy states, split from the registry.
		module + "jobs/deploystate": true,
		module + "jobs/report":      true,
		module + "bot":              true,
		module + "configs":          true,
		// Verifies the signed URLs of the comments' chart images.
		module + "internal/urlsig": true,
	}
	// Packages web must not reach, however indirectly: a prefix ending in
	// "/" forbids the whole tree, anything else that one package.
	forbidden := []string{
		"github.com/hibiken/asynq",
		"github.com/hibiken/asynq/",
		module + "jobs",
		module + "runners",
		module + "runners/",
		module + "cmd/",
	}

	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to check web's imports: %v", err)
	}
	out, err := exec.Command(goCmd, "list", "-json", ".").Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			t.Fatalf("go list: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("go list: %v", err)
	}
	var pkg struct {
		ImportPath string
		Imports    []string
		Deps       []string
	}
	if err := json.Unmarshal(out, &pkg); err != nil {
		t.Fatalf("go list -json: %v", err)
	}
	if pkg.ImportPath != module+"web" || len(pkg.Deps) == 0 {
		t.Fatalf("go list answered for %q with %d dependencies", pkg.ImportPath, len(pkg.Deps))
	}
	for _, imp := range pkg.Imports {
		if strings.HasPrefix(imp, module) && !allowed[imp] {
			t.Errorf("web imports %s; it may import only the store, registry (and its deploy states), report, bot and configs", imp)
		}
		if strings.HasPrefix(imp, "github.com/redis/go-redis/") {
			t.Errorf("web imports %s: it reads Redis only through the store and registry", imp)
		}
	}
	for _, dep := range pkg.Deps {
		for _, f := range forbidden {
			if dep == f || (strings.HasSuffix(f, "/") && strings.HasPrefix(dep, f)) {
				t.Errorf("web depends on %s (forbidden: %s)", dep, f)
			}
		}
	}
}
