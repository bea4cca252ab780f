package agent

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencies keeps the agent small and apart from mlbot's server
// side: it speaks to mlbot only through runners/agentapi, so it must not
// reach the store, Redis, asynq, the web side or the task handlers. It
// asks the go command, as `go list -deps` would show a reviewer.
func TestDependencies(t *testing.T) {
	const module = "github.com/mlbot/mlbot/"
	forbidden := []string{
		"github.com/redis/", "github.com/hibiken/asynq", "github.com/alicebob/miniredis",
		module + "jobs", module + "web", module + "bot", module + "cmd/", module + "runners/local",
		module + "runners/sandbox", module + "runners/docker", module + "runners/kubernetes",
	}
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to check the imports: %v", err)
	}
	out, err := exec.Command(goCmd, "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 10 {
		t.Fatalf("go list -deps listed %d packages", len(deps))
	}
	for _, d := range deps {
		for _, f := range forbidden {
			if strings.HasPrefix(d, f) {
				t.Errorf("runners/agent depends on %s", d)
			}
		}
	}
}
