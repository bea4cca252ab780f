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
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mlbot/mlbot/internal/testreq"
)

// Cluster is a real Redis Cluster of three primaries, redis-server
// processes the test starts on free loopback ports (never 6379) with the
// 16384 slots split between them, and kills when it ends.
type Cluster struct {
	// Nodes are the primaries' addresses.
	Nodes []string
	r     *Replicated // the process bookkeeping of StartReplicated
}

// StartCluster starts a three-primary cluster and waits until every node
// says cluster_state:ok. Without redis-server it skips the test, or fails
// it where MLBOT_TEST_REQUIRE names cluster.
func StartCluster(t testing.TB) *Cluster {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		testreq.Missing(t, "cluster", "redis-server is not on PATH (Debian: apt-get install redis-server)")
	}
	r := &Replicated{t: t, dir: t.TempDir(), procs: map[string]*exec.Cmd{}}
	t.Cleanup(r.stopAll)
	c := &Cluster{r: r}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	type node struct {
		addr, bus string
		cl        *redis.Client
	}
	var nodes []node
	for range 3 {
		addr, bus := freeAddr(t), freeAddr(t)
		host, port, _ := net.SplitHostPort(addr)
		_, busPort, _ := net.SplitHostPort(bus)
		dir := filepath.Join(r.dir, port)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		// The bus port is chosen, not port+10000, which may be taken or
		// beyond 65535 for an ephemeral port.
		r.start(addr, "redis-server", "--port", port, "--bind", host, "--save", "", "--appendonly", "no", "--dir", dir,
			"--cluster-enabled", "yes", "--cluster-config-file", filepath.Join(dir, "nodes.conf"), "--cluster-port", busPort,
			"--cluster-node-timeout", "2000", "--logfile", filepath.Join(dir, "redis.log"))
		cl := redis.NewClient(&redis.Options{Addr: addr})
		t.Cleanup(func() { cl.Close() })
		nodes = append(nodes, node{addr, bus, cl})
		c.Nodes = append(c.Nodes, addr)
	}
	const slots = 16384
	for i, n := range nodes {
		lo, hi := i*slots/len(nodes), (i+1)*slots/len(nodes)-1
		if err := n.cl.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", lo, hi).Err(); err != nil {
			t.Fatalf("CLUSTER ADDSLOTSRANGE on %s: %v", n.addr, err)
		}
		if i == 0 {
			continue
		}
		host, port, _ := net.SplitHostPort(n.addr)
		_, busPort, _ := net.SplitHostPort(n.bus)
		if err := nodes[0].cl.Do(ctx, "CLUSTER", "MEET", host, port, busPort).Err(); err != nil {
			t.Fatalf("CLUSTER MEET %s: %v", n.addr, err)
		}
	}
	for _, n := range nodes {
		for {
			info, err := n.cl.ClusterInfo(ctx).Result()
			if err == nil && containsLine(info, "cluster_state:ok") && containsLine(info, "cluster_known_nodes:"+strconv.Itoa(len(nodes))) {
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("cluster node %s never became ok: %v\n%s", n.addr, err, info)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return c
}

// URL is the redis+cluster:// URL naming the cluster's nodes.
func (c *Cluster) URL() string { return "redis+cluster://" + strings.Join(c.Nodes, ",") }

// String names the cluster for logs.
func (c *Cluster) String() string { return fmt.Sprintf("cluster %v", c.Nodes) }
