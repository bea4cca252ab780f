package redistest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mlbot/mlbot/internal/testreq"
)

// MasterName is the name the sentinels of StartSentinels monitor the
// primary under.
const MasterName = "mlbotmaster"

// Replicated is a real Redis primary and replica, redis-server processes
// the test starts on free loopback ports (never 6379) and kills when it
// ends. Both nodes refuse writes while no replica is connected
// (min-replicas-to-write 1), as mlbot's README recommends.
type Replicated struct {
	t   testing.TB
	dir string
	// Primary and Replica are the nodes' addresses as started; after a
	// failover the roles swap, and the sentinels know which is which.
	Primary, Replica string

	mu    sync.Mutex
	procs map[string]*exec.Cmd // by address
}

// StartReplicated starts a primary and a replica of it, and waits until the
// replica is in sync. Without redis-server it skips the test, or fails it
// where MLBOT_TEST_REQUIRE names sentinel.
func StartReplicated(t testing.TB) *Replicated {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		testreq.Missing(t, "sentinel", "redis-server is not on PATH (Debian: apt-get install redis-server redis-sentinel)")
	}
	r := &Replicated{t: t, dir: t.TempDir(), procs: map[string]*exec.Cmd{}}
	t.Cleanup(r.stopAll)
	r.Primary, r.Replica = freeAddr(t), freeAddr(t)
	r.startNode(r.Primary, "")
	r.startNode(r.Replica, r.Primary)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := redis.NewClient(&redis.Options{Addr: r.Replica})
	defer c.Close()
	for {
		info, err := c.Info(ctx, "replication").Result()
		if err == nil && containsLine(info, "master_link_status:up") {
			return r
		}
		if ctx.Err() != nil {
			t.Fatalf("replica %s never synced with %s: %v %s", r.Replica, r.Primary, err, info)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// startNode starts a data node on addr, a replica of primary unless it is
// empty. Nothing is persisted: a restarted node comes back empty.
func (r *Replicated) startNode(addr, primary string) {
	r.t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	dir := filepath.Join(r.dir, port)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		r.t.Fatal(err)
	}
	args := []string{"--port", port, "--bind", host, "--save", "", "--appendonly", "no", "--dir", dir,
		"--min-replicas-to-write", "1", "--min-replicas-max-lag", "10", "--repl-diskless-sync-delay", "0", "--logfile", filepath.Join(dir, "redis.log")}
	if primary != "" {
		ph, pp, _ := net.SplitHostPort(primary)
		args = append(args, "--replicaof", ph, pp)
	}
	r.start(addr, "redis-server", args...)
}

// start runs name with args, serving on addr, and waits for it to answer.
func (r *Replicated) start(addr, name string, args ...string) {
	r.t.Helper()
	cmd := exec.Command(name, args...)
	if err := cmd.Start(); err != nil {
		r.t.Fatalf("start %s: %v", name, err)
	}
	r.mu.Lock()
	r.procs[addr] = cmd
	r.mu.Unlock()
	// A server accepts connections once it is ready (nothing to load).
	deadline := time.Now().Add(10 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			conn.Close()
			return
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("%s on %s does not answer: %v", name, addr, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Kill ends the node or sentinel on addr with SIGKILL: no goodbye to its
// clients or replicas, as when its machine dies.
func (r *Replicated) Kill(addr string) {
	r.t.Helper()
	r.mu.Lock()
	cmd := r.procs[addr]
	delete(r.procs, addr)
	r.mu.Unlock()
	if cmd == nil {
		r.t.Fatalf("nothing of the test runs on %s", addr)
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
}

// Signal sends sig to the process on addr (SIGSTOP pauses a replica).
func (r *Replicated) Signal(addr string, sig syscall.Signal) {
	r.t.Helper()
	r.mu.Lock()
	cmd := r.procs[addr]
	r.mu.Unlock()
	if cmd == nil {
		r.t.Fatalf("nothing of the test runs on %s", addr)
	}
	if err := cmd.Process.Signal(sig); err != nil {
		r.t.Fatal(err)
	}
}

// Restart starts a data node again on addr, killed before, as the primary
// it was configured as: with sentinels watching, they turn it into a
// replica of the new primary.
func (r *Replicated) Restart(addr string) {
	r.t.Helper()
	r.startNode(addr, "")
}

func (r *Replicated) stopAll() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for addr, cmd := range r.procs {
		_ = cmd.Process.Signal(syscall.SIGCONT)
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		delete(r.procs, addr)
	}
}

// Sentinels is a Replicated pair watched by three real sentinels, a quorum
// of two.
type Sentinels struct {
	*Replicated
	// Addrs are the sentinels' addresses.
	Addrs []string
}

// StartSentinels starts a primary, its replica and three sentinels
// monitoring the primary as MasterName, and waits until every sentinel
// knows the replica and the two other sentinels, so that a failover can
// be voted. Without redis-server and redis-sentinel it skips the test, or
// fails it where MLBOT_TEST_REQUIRE names sentinel.
func StartSentinels(t testing.TB) *Sentinels {
	t.Helper()
	const name = "redis-sentinel"
	if _, err := exec.LookPath(name); err != nil {
		testreq.Missing(t, "sentinel", "redis-sentinel is not on PATH (Debian: apt-get install redis-sentinel)")
	}
	s := &Sentinels{Replicated: StartReplicated(t)}
	ph, pp, _ := net.SplitHostPort(s.Primary)
	for range 3 {
		addr := freeAddr(t)
		host, port, _ := net.SplitHostPort(addr)
		dir := filepath.Join(s.dir, "sentinel-"+port)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		conf := filepath.Join(dir, "sentinel.conf")
		body := fmt.Sprintf("port %s\nbind %s\ndir %s\nlogfile %s\n"+
			"sentinel monitor %s %s %s 2\n"+
			"sentinel down-after-milliseconds %[5]s 1000\n"+
			"sentinel failover-timeout %[5]s 5000\n"+
			"sentinel parallel-syncs %[5]s 1\n",
			port, host, dir, filepath.Join(dir, "sentinel.log"), MasterName, ph, pp)
		if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		s.start(addr, name, conf)
		s.Addrs = append(s.Addrs, addr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, addr := range s.Addrs {
		sc := redis.NewSentinelClient(&redis.Options{Addr: addr})
		for {
			m, err := sc.Master(ctx, MasterName).Result()
			if err == nil && m["num-other-sentinels"] == "2" && m["num-slaves"] == "1" {
				break
			}
			if ctx.Err() != nil {
				sc.Close()
				t.Fatalf("sentinel %s never saw the whole set: %v %v", addr, m, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
		sc.Close()
	}
	return s
}

// URL is the redis+sentinel:// URL of database db, with query (without
// its "?") appended when not empty.
func (s *Sentinels) URL(db int, query string) string {
	u := "redis+sentinel://"
	for i, a := range s.Addrs {
		if i > 0 {
			u += ","
		}
		u += a
	}
	u += "/" + MasterName + "/" + strconv.Itoa(db)
	if query != "" {
		u += "?" + query
	}
	return u
}

// WaitPrimary waits until every sentinel names the same primary, other
// than except (empty: any), and that node answers as a primary with at
// least replicas replicas connected; it returns the primary's address.
func (s *Sentinels) WaitPrimary(ctx context.Context, except string, replicas int) (string, error) {
	var last string
	for {
		agreed := ""
		for _, a := range s.Addrs {
			sc := redis.NewSentinelClient(&redis.Options{Addr: a, MaxRetries: -1})
			hp, err := sc.GetMasterAddrByName(ctx, MasterName).Result()
			sc.Close()
			if err != nil || len(hp) != 2 {
				agreed = ""
				break
			}
			addr := net.JoinHostPort(hp[0], hp[1])
			if agreed != "" && addr != agreed {
				agreed = ""
				break
			}
			agreed = addr
		}
		if agreed != "" && agreed != except {
			c := redis.NewClient(&redis.Options{Addr: agreed, MaxRetries: -1})
			info, err := c.Info(ctx, "replication").Result()
			c.Close()
			if err == nil && containsLine(info, "role:master") && connectedReplicas(info) >= replicas {
				return agreed, nil
			}
		}
		last = agreed
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("no agreed primary other than %q with %d replicas (last seen %q): %w", except, replicas, last, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// connectedReplicas reads connected_slaves from INFO replication.
func connectedReplicas(info string) int {
	for _, l := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSuffix(l, "\r"), "connected_slaves:"); ok {
			n, _ := strconv.Atoi(v)
			return n
		}
	}
	return 0
}

// freeAddr returns a loopback address no one listens on just now.
func freeAddr(t testing.TB) string {
	t.Helper()
	for {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		if _, port, _ := net.SplitHostPort(addr); port != "6379" && port != "26379" {
			return addr
		}
	}
}

// containsLine reports whether INFO output holds line.
func containsLine(info, line string) bool {
	for _, l := range strings.Split(info, "\n") {
		if strings.TrimSuffix(l, "\r") == line {
			return true
		}
	}
	return false
}
