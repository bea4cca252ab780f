package main

import (
	"debug/elf"
	"errors"
	"fmt"
	"os"
)

// errAgentNotStatic is wrapped by agentBinary's error for a binary that
// needs a dynamic loader, which an arbitrary training image may lack.
var errAgentNotStatic = errors.New("is not statically linked")

// agentBinary returns the mlbot binary that the container runners inject
// to run `mlbot agent` in any image: configured, or this process's own
// executable. It must be statically linked (CGO_ENABLED=0, as the
// Dockerfile and the release builds are), since the image it lands in
// may have no C library at all.
func agentBinary(configured string) (string, error) {
	path := configured
	if path == "" {
		exe, err := os.Executable()
		if err != nil {
			return "", fmt.Errorf("MLBOT_AGENT_BINARY is not set and this executable cannot be found: %w", err)
		}
		path = exe
	}
	f, err := elf.Open(path)
	if err != nil {
		return "", fmt.Errorf("MLBOT_AGENT_BINARY %s: %w", path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return "", fmt.Errorf("MLBOT_AGENT_BINARY %s %w (it asks for a dynamic loader); build one with CGO_ENABLED=0 go build -o mlbot-static ./cmd/mlbot and point MLBOT_AGENT_BINARY at it", path, errAgentNotStatic)
		}
	}
	return path, nil
}
