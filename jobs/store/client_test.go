package store

import (
	"context"
	"errors"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mlbot/mlbot/internal/redistest"
)

func TestParseURL(t *testing.T) {
	for _, tc := range []struct {
		url string
		// want, for a valid URL
		sentinel     bool
		cluster      bool
		addrs        []string
		master       string
		db           int
		user, pass   string
		sUser, sPass string
		wait         int
		readTimeout  time.Duration
		// wantErr is a part of the error, for an invalid one
		wantErr string
	}{
		{url: "redis://:pw@10.0.0.1:6380/3", addrs: []string{"10.0.0.1:6380"}, db: 3, pass: "pw"},
		{url: "unix:///run/redis.sock?db=2", addrs: []string{"/run/redis.sock"}, db: 2},
		{url: "redis+sentinel://s1:26379,s2:26380,s3/mymaster", sentinel: true,
			addrs: []string{"s1:26379", "s2:26380", "s3:26379"}, master: "mymaster", wait: 1},
		{url: "redis+sentinel://alice:p%40ss@s1:26379/mymaster/7?sentinel_password=spw&wait_replicas=2&read_timeout=5s",
			sentinel: true, addrs: []string{"s1:26379"}, master: "mymaster", db: 7, user: "alice", pass: "p@ss",
			sPass: "spw", wait: 2, readTimeout: 5 * time.Second},
		{url: "redis+sentinel://:pw@[::1]:26379,127.0.0.1:26380/m?wait_replicas=0&sentinel_username=sen", sentinel: true,
			addrs: []string{"[::1]:26379", "127.0.0.1:26380"}, master: "m", pass: "pw", sUser: "sen", wait: 0},
		{url: "redis+cluster://n1:6379,n2:6380,n3", cluster: true, addrs: []string{"n1:6379", "n2:6380", "n3:6379"}, readTimeout: 5 * time.Second},
		{url: "redis+cluster://alice:p%40ss@n1:7000/?read_timeout=5s", cluster: true, addrs: []string{"n1:7000"}, user: "alice", pass: "p@ss",
			readTimeout: 5 * time.Second},
		{url: "redis+cluster://:pw@[::1]:7000,127.0.0.1:7001/0", cluster: true, addrs: []string{"[::1]:7000", "127.0.0.1:7001"}, pass: "pw",
			readTimeout: 5 * time.Second},
		{url: "redis+cluster://n1:6379/2", wantErr: "only database 0"},
		{url: "redis+cluster://n1:6379?wait_replicas=1", wantErr: "wait_replicas is not an option"},
		{url: "redis+cluster://n1:6379?addr=n2:6379", wantErr: "addr is not an option"},
		{url: "redis+cluster://n1:6379?bogus=1", wantErr: "bogus"},
		{url: "redis+cluster://:pw@:6379", wantErr: "not host:port"},
		{url: "redis+sentinel://s1:26379", wantErr: "/mastername"},
		{url: "redis+sentinel://s1:26379/m/x", wantErr: "database"},
		{url: "redis+sentinel://s1:26379/m/1/2", wantErr: "/mastername"},
		{url: "redis+sentinel://s1:26379/m?wait_replicas=-1", wantErr: "wait_replicas"},
		{url: "redis+sentinel://s1:26379/m?bogus=1", wantErr: "bogus"},
		{url: "redis+sentinel://s1:26379/m?password=pw", wantErr: "user information"},
		{url: "redis+sentinel://:26379/m", wantErr: "no host"},
		{url: "http://x", wantErr: "invalid URL scheme"},
		{url: "127.0.0.1:6379", wantErr: "not a URL"},
	} {
		t.Run(tc.url, func(t *testing.T) {
			ep, err := ParseURL(tc.url)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), "pw") {
					t.Errorf("error quotes a password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if ep.Sentinel() != tc.sentinel || ep.DB() != tc.db || ep.WaitReplicas != tc.wait {
				t.Fatalf("sentinel %v db %d wait %d, want %v %d %d", ep.Sentinel(), ep.DB(), ep.WaitReplicas, tc.sentinel, tc.db, tc.wait)
			}
			c := ep.Client()
			defer c.Close()
			if ep.Cluster() != tc.cluster {
				t.Fatalf("cluster %v, want %v", ep.Cluster(), tc.cluster)
			}
			if tc.cluster {
				co := ep.cluster
				if strings.Join(co.Addrs, " ") != strings.Join(tc.addrs, " ") || co.Username != tc.user || co.Password != tc.pass ||
					co.ReadTimeout != tc.readTimeout || ep.Prefix() != ClusterPrefix {
					t.Fatalf("cluster options %+v, prefix %q", co, ep.Prefix())
				}
				if _, ok := c.(*redis.ClusterClient); !ok {
					t.Fatalf("client %T, want a cluster client", c)
				}
				return
			}
			if ep.Prefix() != DefaultPrefix {
				t.Fatalf("prefix %q", ep.Prefix())
			}
			if !tc.sentinel {
				if o := c.(*redis.Client).Options(); o.Addr != tc.addrs[0] || o.Password != tc.pass {
					t.Fatalf("options %s %q", o.Addr, o.Password)
				}
				return
			}
			fo := ep.failover
			if strings.Join(fo.SentinelAddrs, " ") != strings.Join(tc.addrs, " ") || fo.MasterName != tc.master ||
				fo.Username != tc.user || fo.Password != tc.pass || fo.SentinelUsername != tc.sUser || fo.SentinelPassword != tc.sPass ||
				fo.ReadTimeout != tc.readTimeout {
				t.Fatalf("failover options %+v", fo)
			}
		})
	}
}

// TestWaitReplicas proves what an accepted webhook relies on: a write made
// on any connection is reported replicated only once the replica holds it.
// A paused replica (SIGSTOP) cannot acknowledge, so the wait must fail.
func TestWaitReplicas(t *testing.T) {
	ctx := context.Background()
	r := redistest.StartReplicated(t)
	writer := redis.NewClient(&redis.Options{Addr: r.Primary})
	defer writer.Close()
	waiter := redis.NewClient(&redis.Options{Addr: r.Primary})
	defer waiter.Close()
	s := New(waiter, DefaultPrefix)
	if err := s.WaitReplicas(ctx, 1, ReplicationTimeout); err != nil {
		t.Fatalf("healthy replica: %v", err)
	}
	// Warm the waiter's connection so that its last command predates the
	// write below, as a pooled connection's does.
	if err := waiter.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	r.Signal(r.Replica, syscall.SIGSTOP)
	if err := writer.Set(ctx, "written-elsewhere", "x", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := s.WaitReplicas(ctx, 1, 200*time.Millisecond); !errors.Is(err, ErrNotReplicated) {
		t.Fatalf("paused replica: err = %v, want ErrNotReplicated", err)
	}
	if err := s.WaitReplicas(ctx, 0, time.Millisecond); err != nil {
		t.Fatalf("zero replicas asked: %v", err)
	}
	if err := s.WaitReplicas(ctx, 2, 100*time.Millisecond); !errors.Is(err, ErrNotReplicated) {
		t.Fatalf("more replicas than exist: err = %v", err)
	}
	r.Signal(r.Replica, syscall.SIGCONT)
	if err := s.WaitReplicas(ctx, 1, ReplicationTimeout); err != nil {
		t.Fatalf("resumed replica: %v", err)
	}
	got, err := redis.NewClient(&redis.Options{Addr: r.Replica}).Get(ctx, "written-elsewhere").Result()
	if err != nil || got != "x" {
		t.Fatalf("replica holds %q, %v", got, err)
	}
}
