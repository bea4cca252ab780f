// Package registrytest connects tests of the registry, and of what serves
// it, to Redis.
package registrytest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/mlbot/mlbot/internal/redistest"
)

// DB is the Redis database of the registry's tests.
const DB = 3

// Redis returns a client and a key prefix for one test. With
// MLBOT_TEST_REDIS_URL it uses database DB of that Redis without flushing
// it, under a prefix of its own whose keys are deleted when the test ends:
// the tests of jobs/registry and of cmd/mlbot's models command share DB and
// run in parallel (go test runs packages concurrently), so a flush by one
// would wipe the other's keys mid-test. Without MLBOT_TEST_REDIS_URL it is
// redistest's in-process Redis.
func Redis(t testing.TB) (redis.UniversalClient, string) {
	t.Helper()
	url := os.Getenv("MLBOT_TEST_REDIS_URL")
	if url == "" {
		c := redis.NewClient(redistest.Options(t, DB))
		t.Cleanup(func() { c.Close() })
		return c, "mlbot:"
	}
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatalf("MLBOT_TEST_REDIS_URL: %v", err)
	}
	opt.DB = DB
	c := redis.NewClient(opt)
	if err := c.Ping(context.Background()).Err(); err != nil {
		c.Close()
		t.Fatalf("redis at %s db %d: %v", opt.Addr, opt.DB, err)
	}
	b := make([]byte, 6)
	rand.Read(b)
	prefix := "mlbottest:" + hex.EncodeToString(b) + ":"
	t.Cleanup(func() {
		defer c.Close()
		ctx := context.Background()
		iter := c.Scan(ctx, 0, prefix+"*", 500).Iterator()
		for iter.Next(ctx) {
			c.Del(ctx, iter.Val())
		}
	})
	return c, prefix
}
