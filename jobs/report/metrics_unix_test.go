//go:build unix

package report

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A run can leave a FIFO where the metrics file should be; opening it for
// reading would block the worker until someone writes.
func TestReadFilesFIFO(t *testing.T) {
	dir := t.TempDir()
	if err := syscall.Mkfifo(filepath.Join(dir, "metrics.json"), 0o644); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := ReadFiles(context.Background(), dir, []string{"metrics.json"})
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), `metrics file "metrics.json": not a regular file (a named pipe (FIFO))`) {
			t.Fatalf("ReadFiles() error = %v, want not a regular file", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ReadFiles blocked on a FIFO")
	}
}

// A process the training left behind swaps metrics.json between a regular
// file and a FIFO while the worker reads it (a stat before the open does
// not help: the FIFO arrives in between). Every read must end.
func TestReadFilesFIFORace(t *testing.T) {
	dir := t.TempDir()
	p, tmp := filepath.Join(dir, "metrics.json"), filepath.Join(dir, "metrics.tmp")
	stop, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		for {
			select {
			case <-stop:
				return
			default:
			}
			os.WriteFile(tmp, []byte(`{"accuracy": 0.9}`), 0o644)
			os.Rename(tmp, p)
			os.Remove(p)
			if err := syscall.Mkfifo(p, 0o644); err != nil {
				return
			}
			os.Remove(p)
		}
	}()
	defer func() { close(stop); <-stopped }()
	done := make(chan struct{})
	var read, refused int
	go func() {
		defer close(done)
		for end := time.Now().Add(2 * time.Second); time.Now().Before(end); {
			m, err := ReadFiles(context.Background(), dir, []string{"metrics.json"})
			switch {
			case err == nil && m["accuracy"] == 0.9:
				read++
			case err != nil && strings.Contains(err.Error(), "not a regular file"):
				refused++
			}
		}
	}()
	select {
	case <-done:
		t.Logf("%d reads, %d FIFOs refused", read, refused)
	case <-time.After(60 * time.Second):
		t.Fatal("ReadFiles blocked on a FIFO swapped in for the metrics file")
	}
}
