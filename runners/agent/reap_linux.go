package agent

import (
	"bytes"
	"os"
	"strconv"
	"syscall"
)

// scan waits for every zombie whose parent is parent (the agent's pid)
// and that the agent did not start itself, and returns how many it
// reaped. It reads the process table from /proc.
func (r *reaper) scan(parent int) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	reaped := 0
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || r.own[pid] {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// "pid (comm) state ppid …": comm may hold anything, so the
		// fields are counted from its last ')'.
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		f := bytes.Fields(stat[i+1:])
		if len(f) < 2 || string(f[0]) != "Z" || string(f[1]) != strconv.Itoa(parent) {
			continue
		}
		var ws syscall.WaitStatus
		if n, err := syscall.Wait4(pid, &ws, syscall.WNOHANG, nil); err == nil && n == pid {
			reaped++
		}
	}
	return reaped
}
