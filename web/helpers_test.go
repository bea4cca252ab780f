package web

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/mlbot/mlbot/internal/redistest"
	"github.com/mlbot/mlbot/jobs/registry"
	"github.com/mlbot/mlbot/jobs/registry/registrytest"
	"github.com/mlbot/mlbot/jobs/store"
)

// webRedisDB is the Redis database of this package's tests.
const webRedisDB = 4

// repo is the repository key the models API tests record versions of.
const repo = "github:acme/model"

// testRedis returns a client of an empty Redis database (a real one with
// MLBOT_TEST_REDIS_URL).
func testRedis(t *testing.T) *redis.Client {
	t.Helper()
	c := redis.NewClient(redistest.Options(t, webRedisDB))
	t.Cleanup(func() { c.Close() })
	return c
}

// testStore returns the run store mlbot uses, on an empty database: only
// the store, no worker and no asynq server.
func testStore(t *testing.T) *store.Store {
	t.Helper()
	return store.New(testRedis(t), store.DefaultPrefix)
}

// newRegistry returns a registry on the registry tests' Redis with an
// artifact store in a temporary directory.
func newRegistry(t *testing.T) *registry.Registry {
	t.Helper()
	rdb, prefix := registrytest.Redis(t)
	return registry.New(store.New(rdb, prefix), &registry.ArtifactStore{Dir: t.TempDir()})
}

// writeFiles creates files (slash paths → content) under dir.
func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for p, content := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// digest is the hex SHA-256 of b, as the registry records artifacts.
func digest(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
