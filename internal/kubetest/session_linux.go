package kubetest

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// supported is true where the cluster can run.
const supported = true

// sysProcAttr puts a process in a session of its own (so that everything it
// starts can be found and killed by session id, even after reparenting)
// and kills it when the test process dies.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setsid: true, Pdeathsig: syscall.SIGKILL}
}

// procStat is what kubetest reads of /proc/<pid>/stat.
type procStat struct {
	pid, session int
	rssPages     int64
}

// sessionMembers lists the live processes of session sid with their
// resident memory.
func sessionMembers(sid int) []procStat {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []procStat
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// The command name is in parentheses and may hold anything: the
		// fields that follow start after the last ')'.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := bytes.Fields(b[i+1:])
		// f[0] is field 3 (state), f[3] field 6 (session), f[21] field 24 (rss).
		if len(f) < 22 || string(f[0]) == "Z" {
			continue
		}
		s, _ := strconv.Atoi(string(f[3]))
		if s != sid {
			continue
		}
		rss, _ := strconv.ParseInt(string(f[21]), 10, 64)
		out = append(out, procStat{pid: pid, session: s, rssPages: rss})
	}
	return out
}

// sessionRSS is the resident memory of session sid's processes, in bytes.
func sessionRSS(sid int) int64 {
	var pages int64
	for _, p := range sessionMembers(sid) {
		pages += p.rssPages
	}
	return pages * int64(os.Getpagesize())
}

// killSession SIGKILLs every process of session sid until none is left
// (a process forking meanwhile is caught on the next round).
func killSession(sid int) {
	for range 50 {
		ps := sessionMembers(sid)
		if len(ps) == 0 {
			return
		}
		for _, p := range ps {
			_ = syscall.Kill(p.pid, syscall.SIGKILL)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
