package jobs

import (
	"path/filepath"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/mlbot/mlbot/internal/redistest"
	"github.com/mlbot/mlbot/jobs/registry"
	"github.com/mlbot/mlbot/jobs/store"
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

// testState returns the store and registry a Worker on rdb is given, built
// as cmd/mlbot builds them, with the artifacts under dataDir.
func testState(rdb redis.UniversalClient, dataDir string) (*store.Store, *registry.Registry) {
	st := store.New(rdb, store.DefaultPrefix)
	return st, registry.New(st, &registry.ArtifactStore{Dir: filepath.Join(dataDir, "artifacts")})
}
