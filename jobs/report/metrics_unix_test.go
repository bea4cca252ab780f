//go:build unix

package report

import (
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
		_, err := ReadFiles(dir, []string{"metrics.json"})
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Fatalf("ReadFiles() error = %v, want not a regular file", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ReadFiles blocked on a FIFO")
	}
}
