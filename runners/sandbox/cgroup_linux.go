package sandbox

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// memoryCgroup is a memory cgroup made for one step: it bounds the whole
// sandbox's memory and counts the OOM killer's kills in it. It is cgroup
// v2 where mlbot's own cgroup delegates the memory controller, cgroup v1's
// memory hierarchy where mlbot may write to it, and nothing otherwise.
type memoryCgroup struct {
	dir string
	// events holds the oom_kill counter: memory.events (v2) or
	// memory.oom_control (v1).
	events string
}

// newMemoryCgroup makes a cgroup limited to limit bytes beneath mlbot's
// own, or returns an error saying why none can be made (then rlimits bound
// the step instead).
func newMemoryCgroup(limit int64) (*memoryCgroup, error) {
	if limit <= 0 {
		return nil, errors.New("no memory limit")
	}
	name := "mlbot-step-" + randomName()
	if own, ok := ownCgroup("0", ""); ok && isCgroup2("/sys/fs/cgroup") {
		parent := filepath.Join("/sys/fs/cgroup", own)
		if ctl, err := os.ReadFile(filepath.Join(parent, "cgroup.subtree_control")); err == nil && strings.Contains(string(ctl), "memory") {
			cg := &memoryCgroup{dir: filepath.Join(parent, name), events: "memory.events"}
			if err := cg.make("memory.max", limit); err == nil {
				return cg, nil
			}
		}
	}
	if own, ok := ownCgroup("", "memory"); ok {
		parent := filepath.Join("/sys/fs/cgroup/memory", own)
		cg := &memoryCgroup{dir: filepath.Join(parent, name), events: "memory.oom_control"}
		if err := cg.make("memory.limit_in_bytes", limit); err != nil {
			return nil, err
		}
		return cg, nil
	}
	return nil, errors.New("no writable memory cgroup")
}

// make creates the cgroup and sets its limit.
func (c *memoryCgroup) make(limitFile string, limit int64) error {
	if err := os.Mkdir(c.dir, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(c.dir, limitFile), []byte(strconv.FormatInt(limit, 10)), 0o644); err != nil {
		os.Remove(c.dir)
		return err
	}
	if _, err := c.oomKills(); err != nil {
		os.Remove(c.dir)
		return fmt.Errorf("cgroup %s has no OOM counter: %w", c.dir, err)
	}
	return nil
}

// add moves pid (the init, before it starts the step) into the cgroup.
func (c *memoryCgroup) add(pid int) error {
	return os.WriteFile(filepath.Join(c.dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644)
}

// oomKilled reports whether the OOM killer killed a process of the step.
func (c *memoryCgroup) oomKilled() bool {
	n, err := c.oomKills()
	return err == nil && n > 0
}

func (c *memoryCgroup) oomKills() (int, error) {
	f, err := os.Open(filepath.Join(c.dir, c.events))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), " "); ok && k == "oom_kill" {
			return strconv.Atoi(strings.TrimSpace(v))
		}
	}
	return 0, errors.New("no oom_kill line")
}

// Removing a cgroup waits at most removeWait, trying every removePoll.
const (
	removeWait = 2 * time.Second
	removePoll = 20 * time.Millisecond
)

// remove deletes the cgroup once the kernel lets go of it, giving up after
// removeWait, or at once on an error other than EBUSY (the directory,
// empty, is then left behind).
//
// It polls because nothing better works on both hierarchies. The rmdir
// fails with EBUSY while the cgroup still holds a task or the kernel still
// holds its state, and both are released asynchronously after the init
// exits (the PID namespace is torn down, then each task leaves its
// cgroups). cgroup v2 could be watched instead (inotify on cgroup.events,
// "populated 0"), but that only covers the tasks, and v1, still common,
// has nothing comparable. In practice the first rmdir succeeds, because
// the init is reaped only after every process of its namespace has exited
// (30 of 30 steps, cancelled or leaving background processes behind, on a
// cgroup v1 host); the poll covers a loaded machine, and the bound keeps a
// step's end from waiting long on a cgroup the kernel holds on to.
func (c *memoryCgroup) remove() {
	deadline := time.Now().Add(removeWait)
	for {
		err := os.Remove(c.dir)
		if !errors.Is(err, syscall.EBUSY) || time.Now().After(deadline) {
			return
		}
		time.Sleep(removePoll)
	}
}

// ownCgroup returns this process's cgroup path in the v2 hierarchy (id
// "0") or in the v1 hierarchy of controller.
func ownCgroup(id, controller string) (string, bool) {
	data, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return "", false
	}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		if id != "" && parts[0] == id && parts[1] == "" {
			return parts[2], true
		}
		if controller != "" {
			for _, c := range strings.Split(parts[1], ",") {
				if c == controller {
					return parts[2], true
				}
			}
		}
	}
	return "", false
}

// isCgroup2 reports whether dir is a cgroup v2 mount.
func isCgroup2(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, "cgroup.controllers"))
	return err == nil
}

func randomName() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// CheckMemoryCgroup reports whether this process can make the memory
// cgroups that tell an out-of-memory kill apart (nil), or why not.
func CheckMemoryCgroup() error {
	cg, err := newMemoryCgroup(64 << 20)
	if err != nil {
		return err
	}
	cg.remove()
	return nil
}
