package store

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// UniversalClient is a connection to Redis as the Store, and asynq beside
// it, use it: a single server, a sentinel failover or a cluster.
type UniversalClient = redis.UniversalClient

// Client is a connection to a single Redis server, or to the primary that
// Redis Sentinel names (a failover client is a Client too).
type Client = redis.Client

// URL schemes of MLBOT_REDIS_URL beyond go-redis's own (redis://,
// rediss://, unix://).
const (
	// SchemeSentinel names a primary through Redis Sentinel:
	//
	//	redis+sentinel://[[user]:password@]host1:26379[,host2:26379…]/mastername[/db][?option=value…]
	SchemeSentinel = "redis+sentinel"
	// SchemeCluster names a Redis Cluster by some of its nodes (the
	// client learns the rest):
	//
	//	redis+cluster://[[user]:password@]host1:6379[,host2:6379…][?option=value…]
	SchemeCluster = "redis+cluster"
)

// ClusterPrefix starts every key of the Store on a Redis Cluster. The
// hash tag {mlbot} puts them all in one slot, so that the Store's
// multi-key Lua scripts and MULTI blocks (agent sessions, the registry's
// version counter, pull request heads) never fail with CROSSSLOT; asynq's
// own keys carry a tag per queue ({default}, {events}, …) and spread over
// the cluster by queue.
const ClusterPrefix = "{mlbot}:"

// DefaultWaitReplicas is how many replicas must hold an accepted webhook
// before it is acknowledged, for a redis+sentinel:// URL without
// wait_replicas.
const DefaultWaitReplicas = 1

// ReplicationTimeout bounds how long an acknowledgement waits for the
// replicas (WAIT's timeout). Replicas on a healthy network answer within a
// millisecond; the primary asks them at once (REPLCONF GETACK).
const ReplicationTimeout = time.Second

// ErrNotReplicated is returned by WaitReplicas when fewer replicas than
// asked hold the writes within the timeout.
var ErrNotReplicated = errors.New("write not replicated")

// Endpoint is the Redis deployment a URL names: a single server, a
// primary found through Redis Sentinel, or a Redis Cluster.
type Endpoint struct {
	single   *redis.Options
	failover *redis.FailoverOptions
	cluster  *redis.ClusterOptions
	// WaitReplicas is how many replicas must hold a write before mlbot
	// tells a code host that its webhook is accepted (0: no wait).
	WaitReplicas int
}

// ParseURL reads the Redis URL of MLBOT_REDIS_URL:
//
//   - redis://[[user]:password@]host:port[/db], rediss://… and
//     unix://[[user]:password@]/path?db=N, as go-redis parses them;
//
//   - redis+sentinel://[[user]:password@]host1:26379[,host2:26379…]/mastername[/db]
//     with the optional query parameters sentinel_username and
//     sentinel_password (the sentinels' own credentials; the userinfo is
//     the primary's and replicas'), wait_replicas (how many replicas must
//     hold an accepted webhook, default DefaultWaitReplicas; 0 turns the
//     wait off) and go-redis's failover options (dial_timeout,
//     read_timeout, pool_size, …).
//
//   - redis+cluster://[[user]:password@]host1:6379[,host2:6379…][/0] with
//     go-redis's cluster options; the Store's keys then start with
//     ClusterPrefix (Endpoint.Prefix), and no wait_replicas is accepted.
//
// Errors never quote the URL, which may hold a password.
func ParseURL(raw string) (*Endpoint, error) {
	scheme, _, ok := strings.Cut(raw, "://")
	if !ok {
		return nil, errors.New("not a URL: want redis://, rediss://, unix://, redis+sentinel:// or redis+cluster://")
	}
	switch strings.ToLower(scheme) {
	case SchemeSentinel:
		return parseSentinelURL(raw)
	case SchemeCluster:
		return parseClusterURL(raw)
	}
	opt, err := redis.ParseURL(raw)
	if err != nil {
		return nil, err
	}
	return &Endpoint{single: opt}, nil
}

// parseSentinelURL reads a redis+sentinel:// URL. The host part lists the
// sentinels separated by commas, which is not one URL host, so the URL is
// split by hand.
func parseSentinelURL(raw string) (*Endpoint, error) {
	rest := raw[len(SchemeSentinel+"://"):]
	authority, path, _ := strings.Cut(rest, "/")
	path, query, _ := strings.Cut(path, "?")
	if i := strings.IndexByte(authority, '?'); i >= 0 {
		authority, query = authority[:i], authority[i+1:]
	}
	var user *url.Userinfo
	if i := strings.LastIndexByte(authority, '@'); i >= 0 {
		u, err := url.Parse("redis://" + authority[:i+1] + "localhost")
		if err != nil {
			return nil, errors.New("redis+sentinel URL: malformed user information")
		}
		user, authority = u.User, authority[i+1:]
	}
	var sentinels []string
	for _, hp := range strings.Split(authority, ",") {
		if !strings.Contains(hp, ":") {
			hp += ":26379"
		}
		host, port, err := net.SplitHostPort(hp)
		if err != nil {
			return nil, fmt.Errorf("redis+sentinel URL: sentinel address %q: %w", hp, err)
		}
		if host == "" || port == "" {
			return nil, fmt.Errorf("redis+sentinel URL: sentinel address %q has no host or port", hp)
		}
		sentinels = append(sentinels, net.JoinHostPort(host, port))
	}
	parts := strings.Split(strings.Trim(path, "/"), "/")
	if parts[0] == "" || len(parts) > 2 {
		return nil, errors.New("redis+sentinel URL: the path must be /mastername or /mastername/db")
	}
	master, err := url.PathUnescape(parts[0])
	if err != nil {
		return nil, errors.New("redis+sentinel URL: malformed master name")
	}
	db := 0
	if len(parts) == 2 {
		if db, err = strconv.Atoi(parts[1]); err != nil || db < 0 {
			return nil, fmt.Errorf("redis+sentinel URL: database %q is not a number", parts[1])
		}
	}
	q, err := url.ParseQuery(query)
	if err != nil {
		return nil, errors.New("redis+sentinel URL: malformed query")
	}
	ep := &Endpoint{WaitReplicas: DefaultWaitReplicas}
	if v := q.Get("wait_replicas"); v != "" {
		if ep.WaitReplicas, err = strconv.Atoi(v); err != nil || ep.WaitReplicas < 0 {
			return nil, fmt.Errorf("redis+sentinel URL: wait_replicas %q is not a count", v)
		}
	}
	sentinelUser, sentinelPassword := q.Get("sentinel_username"), q.Get("sentinel_password")
	for _, k := range []string{"master_name", "addr", "db", "username", "password"} {
		if q.Has(k) {
			return nil, fmt.Errorf("redis+sentinel URL: %s is not a query option: the sentinels are the host part, the master name and database the path, the credentials the user information", k)
		}
	}
	for _, k := range []string{"wait_replicas", "sentinel_username", "sentinel_password"} {
		q.Del(k)
	}
	// The remaining options are go-redis's own, which it validates.
	q.Set("master_name", master)
	fo, err := redis.ParseFailoverURL("redis://" + sentinels[0] + "?" + q.Encode())
	if err != nil {
		return nil, fmt.Errorf("redis+sentinel URL: %w", err)
	}
	fo.SentinelAddrs = sentinels
	fo.SentinelUsername, fo.SentinelPassword = sentinelUser, sentinelPassword
	fo.DB = db
	if user != nil {
		fo.Username = user.Username()
		fo.Password, _ = user.Password()
	}
	ep.failover = fo
	return ep, nil
}

// parseClusterURL reads redis+cluster://[[user]:password@]host:port[,host:port…][/][?option=value…]:
// some nodes of the cluster (the client discovers the others) and
// go-redis's cluster options (dial_timeout, read_timeout, …). A cluster
// has one database, so no path names another; and WAIT cannot make an
// acknowledgement durable across a cluster's shards, so wait_replicas is
// refused rather than silently weaker.
func parseClusterURL(raw string) (*Endpoint, error) {
	rest := raw[len(SchemeCluster+"://"):]
	authority, path, _ := strings.Cut(rest, "/")
	path, query, _ := strings.Cut(path, "?")
	if i := strings.IndexByte(authority, '?'); i >= 0 {
		authority, query = authority[:i], authority[i+1:]
	}
	if p := strings.Trim(path, "/"); p != "" && p != "0" {
		return nil, fmt.Errorf("redis+cluster URL: a cluster has only database 0, not %q", p)
	}
	userinfo := ""
	if i := strings.LastIndexByte(authority, '@'); i >= 0 {
		userinfo, authority = authority[:i+1], authority[i+1:]
	}
	q, err := url.ParseQuery(query)
	if err != nil {
		return nil, errors.New("redis+cluster URL: malformed query")
	}
	for _, k := range []string{"wait_replicas", "addr", "db"} {
		if q.Has(k) {
			return nil, fmt.Errorf("redis+cluster URL: %s is not an option of a cluster URL: the nodes are the host part, separated by commas", k)
		}
	}
	var nodes []string
	for _, hp := range strings.Split(authority, ",") {
		if !strings.Contains(hp, ":") {
			hp += ":6379"
		}
		host, port, err := net.SplitHostPort(hp)
		if err != nil || host == "" || port == "" {
			return nil, fmt.Errorf("redis+cluster URL: node address %q is not host:port", hp)
		}
		nodes = append(nodes, net.JoinHostPort(host, port))
	}
	for _, n := range nodes[1:] {
		q.Add("addr", n)
	}
	co, err := redis.ParseClusterURL("redis://" + userinfo + nodes[0] + "?" + q.Encode())
	if err != nil {
		return nil, fmt.Errorf("redis+cluster URL: %w", err)
	}
	return &Endpoint{cluster: co}, nil
}

// Sentinel reports whether the endpoint finds its primary through Redis
// Sentinel.
func (e *Endpoint) Sentinel() bool { return e.failover != nil }

// Cluster reports whether the endpoint is a Redis Cluster.
func (e *Endpoint) Cluster() bool { return e.cluster != nil }

// DB is the database number the endpoint selects (always 0 on a cluster).
func (e *Endpoint) DB() int {
	if e.cluster != nil {
		return 0
	}
	if e.failover != nil {
		return e.failover.DB
	}
	return e.single.DB
}

// Client returns a client of the endpoint, without connecting yet: for a
// sentinel URL a failover client, which asks the sentinels for the primary
// and follows it when they fail over.
func (e *Endpoint) Client() UniversalClient {
	switch {
	case e.cluster != nil:
		return redis.NewClusterClient(e.cluster)
	case e.failover != nil:
		return redis.NewFailoverClient(e.failover)
	}
	return redis.NewClient(e.single)
}

// Prefix is what the Store's keys start with on this deployment:
// ClusterPrefix on a cluster, DefaultPrefix elsewhere.
func (e *Endpoint) Prefix() string {
	if e.cluster != nil {
		return ClusterPrefix
	}
	return DefaultPrefix
}

// Dial returns a client of the single Redis, or of the primary Sentinel
// names, that url names (see ParseURL), without connecting yet. A cluster
// URL is refused: a cluster's client is Endpoint.Client's.
func Dial(url string) (*Client, error) {
	ep, err := ParseURL(url)
	if err != nil {
		return nil, err
	}
	if ep.cluster != nil {
		return nil, errors.New("Dial: a redis+cluster URL names several servers: use ParseURL and Endpoint.Client")
	}
	return ep.Client().(*Client), nil
}

// DialAddr returns a client of the Redis at addr (host:port) that requires
// password, without connecting yet.
func DialAddr(addr, password string) *Client {
	return redis.NewClient(&redis.Options{Addr: addr, Password: password})
}

// WaitReplicas returns once at least n replicas hold every write that the
// primary had applied when it was called (every write whose reply any
// client has already read), or ErrNotReplicated after timeout. Replication
// is one ordered stream, so waiting for the primary's offset at a PING on
// this connection covers the writes of every other connection: WAIT
// measures from the last command of its own connection.
func (s *Store) WaitReplicas(ctx context.Context, n int, timeout time.Duration) error {
	if n <= 0 {
		return nil
	}
	var wait *redis.Cmd
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Ping(ctx)
		wait = p.Do(ctx, "WAIT", n, timeout.Milliseconds())
		return nil
	})
	if err != nil {
		return fmt.Errorf("wait for %d replicas: %w", n, err)
	}
	got, err := wait.Int64()
	if err != nil {
		return fmt.Errorf("wait for %d replicas: %w", n, err)
	}
	if got < int64(n) {
		return fmt.Errorf("%w: %d of %d replicas acknowledged within %s", ErrNotReplicated, got, n, timeout)
	}
	return nil
}
