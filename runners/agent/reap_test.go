package agent

import (
	"bytes"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// TestReaperReapsOrphansOnly makes two zombie children of the test
// process, one of them registered as the agent's own: a scan must reap
// the other and leave the registered one to its Wait.
func TestReaperReapsOrphansOnly(t *testing.T) {
	r := &reaper{own: map[int]bool{}}
	var own int
	r.start(func() int {
		pid, err := syscall.ForkExec("/bin/true", []string{"true"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		own = pid
		return pid
	})
	orphan, err := syscall.ForkExec("/bin/true", []string{"true"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	waitZombie(t, own)
	waitZombie(t, orphan)
	if n := r.scan(os.Getpid()); n < 1 {
		t.Errorf("scan reaped %d, want the orphan", n)
	}
	if _, err := os.Stat("/proc/" + itoa(orphan)); err == nil {
		t.Errorf("the orphan %d is still in the process table", orphan)
	}
	var ws syscall.WaitStatus
	if n, err := syscall.Wait4(own, &ws, 0, nil); err != nil || n != own || ws.ExitStatus() != 0 {
		t.Errorf("Wait4 of the agent's own child = %d, %v, status %d: the reaper took it", n, err, ws.ExitStatus())
	}
	r.done(own)
}

func itoa(n int) string { return strconv.Itoa(n) }

// stateOf is the state letter of a /proc/<pid>/stat line.
func stateOf(stat []byte) byte {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 || i+2 >= len(stat) {
		return 0
	}
	return stat[i+2]
}

// waitZombie waits until pid has exited and not been waited for.
func waitZombie(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		b, err := os.ReadFile("/proc/" + itoa(pid) + "/stat")
		if err == nil && stateOf(b) == 'Z' {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("process %d did not become a zombie", pid)
}
