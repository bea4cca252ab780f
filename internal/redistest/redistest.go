// Package redistest gives each test package its own Redis database, so that
// `go test ./...` can run packages in parallel against one Redis server.
package redistest

import (
	"context"
	"os"
	"strconv"
	"testing"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/mlbot/mlbot/internal/testreq"
)

// Options returns connection options for database db of the Redis named by
// MLBOT_TEST_REDIS_URL, flushing that one database first (never FLUSHALL).
// Without MLBOT_TEST_REDIS_URL it starts an in-process Redis for the test,
// unless MLBOT_TEST_REQUIRE names redis: then the test fails.
// Every test package must pass a db number no other package uses.
func Options(t testing.TB, db int) *redis.Options {
	t.Helper()
	url := os.Getenv("MLBOT_TEST_REDIS_URL")
	var opt *redis.Options
	if url == "" {
		if testreq.Required("redis") {
			t.Fatalf("redistest: %s names redis but MLBOT_TEST_REDIS_URL is unset: set it to a real Redis, such as redis://127.0.0.1:6379", testreq.Env)
		}
		mr := miniredis.RunT(t)
		opt = &redis.Options{Addr: mr.Addr()}
	} else {
		var err error
		opt, err = redis.ParseURL(url)
		if err != nil {
			t.Fatalf("MLBOT_TEST_REDIS_URL: %v", err)
		}
		opt.DB = db
	}
	c := redis.NewClient(opt)
	defer c.Close()
	if err := c.FlushDB(context.Background()).Err(); err != nil {
		t.Fatalf("redis at %s db %d: %v", opt.Addr, opt.DB, err)
	}
	return opt
}

// URL is Options rendered as a redis:// URL, for code configured by URL.
func URL(t testing.TB, db int) string {
	opt := Options(t, db)
	u := "redis://"
	if opt.Password != "" {
		u += ":" + opt.Password + "@"
	}
	return u + opt.Addr + "/" + strconv.Itoa(opt.DB)
}
