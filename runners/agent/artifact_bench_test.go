package agent

// An artifact's way through the agent API, beside what the same disk
// does for the same file with sha256sum then cp:
//
//	MLBOT_TEST_REDIS_URL=redis://127.0.0.1:6379 go test -run '^$' -bench ArtifactUpload -benchtime 2x ./runners/agent/
//
// MLBOT_BENCH_ARTIFACT_BYTES sets the file's size (default 2 GiB).

import (
	"context"
	"crypto/rand"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mlbot/mlbot/internal/redistest"
	"github.com/mlbot/mlbot/jobs/store"
	"github.com/mlbot/mlbot/runners/agentapi"
	"github.com/mlbot/mlbot/web/agentsrv"
)

// BenchmarkArtifactUpload reports MB/s for sha256sum+cp of one file and
// for the agent uploading it (digest, then a streamed PUT) to a hub that
// hashes it again on its way to the data dir. Target: the agent at least
// 70 % of sha256sum+cp.
func BenchmarkArtifactUpload(b *testing.B) {
	size := int64(2 << 30)
	if v, err := strconv.ParseInt(os.Getenv("MLBOT_BENCH_ARTIFACT_BYTES"), 10, 64); err == nil && v > 0 {
		size = v
	}
	work := b.TempDir()
	src := filepath.Join(work, "model.bin")
	writeArtifact(b, src, size)

	b.Run("sha256sum+cp", func(b *testing.B) {
		b.SetBytes(size)
		dst := filepath.Join(b.TempDir(), "copy.bin")
		for b.Loop() {
			if out, err := exec.Command("sha256sum", src).CombinedOutput(); err != nil {
				b.Fatalf("sha256sum: %v %s", err, out)
			}
			if out, err := exec.Command("cp", src, dst).CombinedOutput(); err != nil {
				b.Fatalf("cp: %v %s", err, out)
			}
			b.StopTimer()
			os.Remove(dst)
			b.StartTimer()
		}
	})
	b.Run("agent", func(b *testing.B) {
		b.SetBytes(size)
		rdb := redis.NewClient(redistest.Options(b, agentRedisDB))
		b.Cleanup(func() { rdb.Close() })
		hub, err := agentsrv.New(store.New(rdb, "mlbot:"), b.TempDir(), slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			b.Fatal(err)
		}
		srv := httptest.NewServer(hub.Handler())
		b.Cleanup(srv.Close)
		job := agentapi.Job{Artifacts: []string{"model.bin"}, MaxArtifactBytes: size}
		ctx := context.Background()
		i := 0
		for b.Loop() {
			b.StopTimer()
			i++
			id := "bench-artifact-" + strconv.Itoa(i)
			sess, err := hub.Open(ctx, id, job, b.TempDir(), time.Hour)
			if err != nil {
				b.Fatal(err)
			}
			c, err := agentapi.NewClient(srv.URL, sess.Token)
			if err != nil {
				b.Fatal(err)
			}
			a := &agent{opts: Options{Workdir: work}, client: c}
			b.StartTimer()
			if err := a.upload(ctx, job); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			if err := hub.Close(ctx, id); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
	})
}

// writeArtifact writes size bytes of a repeated random block to path.
func writeArtifact(b *testing.B, path string, size int64) {
	b.Helper()
	block := make([]byte, 4<<20)
	rand.Read(block)
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	for n := int64(0); n < size; n += int64(len(block)) {
		p := block[:min(int64(len(block)), size-n)]
		if _, err := f.Write(p); err != nil {
			b.Fatal(err)
		}
	}
}
