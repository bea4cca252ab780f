package store

import (
	"bufio"
	"bytes"
	"os/exec"
	"sort"
	"strings"
	"testing"
)

// TestOnlyTheStoreTalksToRedis keeps Redis state in one owner: among
// mlbot's packages only this one imports go-redis (asynq's own client
// aside, which is not mlbot's), apart from the helpers that give tests a
// Redis of their own. It asks the go command, as `go list -deps` would show
// a reviewer.
func TestOnlyTheStoreTalksToRedis(t *testing.T) {
	const (
		module  = "github.com/mlbot/mlbot"
		goRedis = "github.com/redis/go-redis/v9"
	)
	// The packages that may import go-redis directly: the store, and the
	// test-support packages that connect tests to Redis (imported by
	// _test.go files only).
	allowed := map[string]bool{
		module + "/jobs/store":                 true,
		module + "/internal/redistest":         true,
		module + "/jobs/registry/registrytest": true,
	}
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to check the imports: %v", err)
	}
	// Imports, not TestImports: what a package's _test.go files import
	// is not part of it.
	out, err := exec.Command(goCmd, "list", "-f", `{{.ImportPath}}{{range .Imports}} {{.}}{{end}}`, module+"/...").Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			t.Fatalf("go list: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("go list: %v", err)
	}
	var importers []string
	packages := 0
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		packages++
		for _, imp := range f[1:] {
			if imp == goRedis {
				importers = append(importers, f[0])
			}
		}
	}
	if packages < 10 || len(importers) == 0 {
		t.Fatalf("go list listed %d packages, %d importing go-redis: not the module", packages, len(importers))
	}
	sort.Strings(importers)
	for _, p := range importers {
		if !allowed[p] {
			t.Errorf("%s imports go-redis; only jobs/store may talk to Redis (add a Store method instead)", p)
		}
	}
	if i := sort.SearchStrings(importers, module+"/jobs/store"); i == len(importers) || importers[i] != module+"/jobs/store" {
		t.Errorf("go list does not show jobs/store importing go-redis (importers: %v)", importers)
	}
}
