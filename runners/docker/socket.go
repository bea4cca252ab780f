package docker

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"time"
)

// runKey names a run's directory and container after its id: a hash,
// so that any id makes a short path and a valid name.
func runKey(id string) string {
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:8])
}

// runDir is the host directory of run id's socket.
func runDir(root, id string) string { return filepath.Join(root, runKey(id)) }

// socketPath is the host path of run id's socket.
func socketPath(root, id string) string { return filepath.Join(runDir(root, id), socketName) }

// nameUnsafe matches what a container name may not hold.
var nameUnsafe = regexp.MustCompile(`[^a-zA-Z0-9_.-]+`)

// containerName is the name of run id's container: readable, and unique
// per id, so that the engine refuses a second container for a run.
func containerName(id string) string {
	s := nameUnsafe.ReplaceAllString(id, "-")
	if len(s) > 40 {
		s = s[:40]
	}
	return "mlbot-" + s + "-" + runKey(id)
}

// agentSocket serves the hub's agent API on a run's Unix socket.
type agentSocket struct {
	srv *http.Server
	ln  net.Listener
}

// serveSocket listens on run id's socket, replacing a stale one (a
// re-attaching worker's), and serves the hub's handler on it. The run's
// directory is kept if it exists: a running container has it mounted,
// and a new directory at its path would not be what it sees.
func (r *Runner) serveSocket(id string) (*agentSocket, error) {
	dir := runDir(r.opts.RunDir, id)
	if err := os.Mkdir(dir, 0o711); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("run directory: %w", err)
	}
	// The container's user must traverse the directory but not list it;
	// Mkdir's mode went through the umask.
	if err := os.Chmod(dir, 0o711); err != nil {
		return nil, fmt.Errorf("run directory: %w", err)
	}
	path := filepath.Join(dir, socketName)
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("stale socket: %w", err)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("agent socket: %w", err)
	}
	// Any uid may connect: the container's user is not known to the host
	// (user namespaces remap it), and the run's token is what admits a
	// request. Only this run's container mounts the directory.
	if err := os.Chmod(path, 0o666); err != nil {
		ln.Close()
		return nil, fmt.Errorf("agent socket: %w", err)
	}
	s := &agentSocket{ln: ln, srv: &http.Server{Handler: r.opts.Hub.Handler(), ReadHeaderTimeout: 30 * time.Second}}
	go func() {
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			r.log.Warn("agent socket stopped serving", "run", id, "err", err)
		}
	}()
	return s, nil
}

// Close stops serving and removes the socket; the directory stays for a
// container that is still running (see removeRunDir).
func (s *agentSocket) Close() error { return s.srv.Close() }

// removeRunDir removes run id's directory once its container is gone.
func (r *Runner) removeRunDir(id string) error {
	if err := os.RemoveAll(runDir(r.opts.RunDir, id)); err != nil {
		return fmt.Errorf("run directory: %w", err)
	}
	return nil
}
