package kubetest

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// process is one control plane component the cluster started.
type process struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error // cmd.Wait's, once done is closed
}

// startProcess runs bin with args in its own session, stdout and stderr
// into dir/name.log.
func startProcess(dir, name, bin string, args ...string) (*process, error) {
	logPath := filepath.Join(dir, name+".log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	fmt.Fprintf(logf, "+ %s %s\n", bin, strings.Join(args, " "))
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// exited reports whether the process has ended.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop asks the process to end (SIGTERM), kills its session after grace
// and waits for it.
func (p *process) stop(grace time.Duration) {
	if p.exited() {
		killSession(p.cmd.Process.Pid)
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
	}
	killSession(p.cmd.Process.Pid)
	<-p.done
}

// tail returns the last n lines of the process's log.
func (p *process) tail(n int) string {
	return tailFile(p.log, n)
}

// tailFile returns the last n lines of the file at path.
func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

// errPortTaken is returned when a component could not bind a port picked
// for it (another process took it in between); the caller retries.
var errPortTaken = errors.New("port taken")

// waitReady polls ready every 100ms until it returns nil, the process
// exits or timeout passes.
func (p *process) waitReady(timeout time.Duration, ready func() error) error {
	deadline := time.Now().Add(timeout)
	last := errors.New("not polled")
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			tail := p.tail(30)
			if strings.Contains(tail, "address already in use") {
				return fmt.Errorf("%s: %w:\n%s", p.name, errPortTaken, tail)
			}
			return fmt.Errorf("%s exited (%v) before it was ready:\n%s", p.name, p.err, tail)
		case <-time.After(100 * time.Millisecond):
		}
		if last = ready(); last == nil {
			return nil
		}
	}
	return fmt.Errorf("%s not ready after %v: %v\n%s", p.name, timeout, last, p.tail(30))
}

// freePorts returns n distinct loopback ports nothing listens on now.
func freePorts(n int) ([]int, error) {
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
