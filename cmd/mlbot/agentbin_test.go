package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// The container runners refuse an agent binary that needs a dynamic
// loader, and name the fix; a static one is accepted.
func TestAgentBinaryMustBeStatic(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go command to build the binaries")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "main.go")
	os.WriteFile(src, []byte("package main\nimport \"net\"\nfunc main() { net.Dial(\"tcp\", \"x:1\") }\n"), 0o644)
	build := func(name string, cgo string, extra ...string) string {
		out := filepath.Join(dir, name)
		cmd := exec.Command("go", append([]string{"build", "-o", out}, append(extra, src)...)...)
		cmd.Env = append(os.Environ(), "CGO_ENABLED="+cgo, "GOFLAGS=")
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build: %v\n%s", err, b)
		}
		return out
	}
	static := build("static", "0")
	if got, err := agentBinary(static); err != nil || got != static {
		t.Errorf("agentBinary(static) = %q, %v", got, err)
	}
	if _, err := exec.LookPath("gcc"); err == nil {
		dynamic := build("dynamic", "1", "-ldflags=-linkmode=external")
		if _, err := agentBinary(dynamic); !errors.Is(err, errAgentNotStatic) {
			t.Errorf("agentBinary(dynamic) = %v, want errAgentNotStatic", err)
		}
	}
	if _, err := agentBinary(filepath.Join(dir, "missing")); err == nil {
		t.Error("agentBinary(missing) = nil error")
	}
}
