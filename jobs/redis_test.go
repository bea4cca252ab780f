package jobs

import (
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/mlbot/mlbot/internal/redistest"
)

// jobsRedisDB is the jobs package's own Redis database (see redistest).
const jobsRedisDB = 1

// testRedis returns a client of the jobs package's Redis database, emptied
// for this test. Tests sharing the database must not run in parallel.
func testRedis(t *testing.T) *redis.Client {
	t.Helper()
	c := redis.NewClient(redistest.Options(t, jobsRedisDB))
	t.Cleanup(func() { c.Close() })
	return c
}
