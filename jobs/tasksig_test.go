package jobs

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
)

const testTaskKey = "0123456789abcdef0123456789abcdef-test"

func testSigner(t *testing.T, key string) *TaskSigner {
	t.Helper()
	s, err := NewTaskSigner([]byte(key))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestTaskSignature tampers with a signed task the ways someone with write
// access to Redis could: every change to its type, payload or headers, and
// every signature not made with the key, fails verification.
func TestTaskSignature(t *testing.T) {
	s := testSigner(t, testTaskKey)
	headers := map[string]string{"forge": "github", "delivery": "d1", "event": "push"}
	signed := s.NewTaskWithHeaders(TypeWebhook, []byte(`{"ref":"refs/heads/main"}`), headers)
	if err := s.Verify(signed); err != nil {
		t.Fatalf("a signed task fails verification: %v", err)
	}
	if err := s.Verify(s.NewTask(TypeReport, []byte(`{"run_id":"r"}`))); err != nil {
		t.Fatalf("a signed task without headers fails verification: %v", err)
	}
	with := func(h map[string]string, k, v string) map[string]string {
		out := map[string]string{}
		for hk, hv := range h {
			out[hk] = hv
		}
		if v == "" {
			delete(out, k)
		} else {
			out[k] = v
		}
		return out
	}
	sh := signed.Headers()
	other := testSigner(t, strings.Repeat("x", 32))
	tests := []struct {
		name string
		task *asynq.Task
	}{
		{"unsigned", asynq.NewTaskWithHeaders(TypeWebhook, signed.Payload(), headers)},
		{"signed with another key", other.NewTaskWithHeaders(TypeWebhook, signed.Payload(), headers)},
		{"payload changed", asynq.NewTaskWithHeaders(TypeWebhook, []byte(`{"ref":"refs/heads/evil"}`), sh)},
		{"type changed", asynq.NewTaskWithHeaders(TypePipeline, signed.Payload(), sh)},
		{"header changed", asynq.NewTaskWithHeaders(TypeWebhook, signed.Payload(), with(sh, "event", "pull_request"))},
		{"header added", asynq.NewTaskWithHeaders(TypeWebhook, signed.Payload(), with(sh, "extra", "1"))},
		{"header removed", asynq.NewTaskWithHeaders(TypeWebhook, signed.Payload(), with(sh, "delivery", ""))},
		{"signature not hex", asynq.NewTaskWithHeaders(TypeWebhook, signed.Payload(), with(sh, headerSignature, "v1=zz"))},
		{"signature without version", asynq.NewTaskWithHeaders(TypeWebhook, signed.Payload(), with(sh, headerSignature, strings.TrimPrefix(sh[headerSignature], "v1=")))},
		{"signature truncated", asynq.NewTaskWithHeaders(TypeWebhook, signed.Payload(), with(sh, headerSignature, sh[headerSignature][:20]))},
		// Moving bytes between fields must not keep the MAC.
		{"bytes moved from type to payload", asynq.NewTaskWithHeaders("mlbot:webhoo", append([]byte("k"), signed.Payload()...), sh)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := s.Verify(tt.task); !errors.Is(err, errBadSignature) {
				t.Errorf("Verify = %v, want errBadSignature", err)
			}
		})
	}
	if _, err := NewTaskSigner([]byte("short")); err == nil {
		t.Error("a 5-byte key was accepted")
	}
}

// TestSignatureMiddleware runs a real asynq server with the middleware
// against Redis: a forged task is archived without reaching its handler,
// with an error log naming its type and id; a signed one runs.
func TestSignatureMiddleware(t *testing.T) {
	rdb := testRedis(t)
	s := testSigner(t, testTaskKey)
	var logBuf syncBuffer
	log := slog.New(slog.NewTextHandler(&logBuf, nil))
	ran := make(chan string, 4)
	mux := asynq.NewServeMux()
	mux.Use(s.Middleware(log))
	mux.HandleFunc(TypeReport, func(_ context.Context, t *asynq.Task) error {
		ran <- string(t.Payload())
		return nil
	})
	srv := asynq.NewServerFromRedisClient(rdb, asynq.Config{Concurrency: 1, Queues: map[string]int{QueueReport: 1},
		TaskCheckInterval: 10 * time.Millisecond, Logger: asynqLogger{slog.New(slog.DiscardHandler)}, LogLevel: asynq.FatalLevel})
	if err := srv.Start(mux); err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	client := asynq.NewClientFromRedisClient(rdb)
	forger := testSigner(t, strings.Repeat("w", 32))
	for id, task := range map[string]*asynq.Task{
		"forged":    asynq.NewTask(TypeReport, []byte("forged")),
		"wrong-key": forger.NewTask(TypeReport, []byte("wrong-key")),
	} {
		if _, err := client.Enqueue(task, asynq.TaskID(id), asynq.Queue(QueueReport), asynq.MaxRetry(5)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := client.Enqueue(s.NewTask(TypeReport, []byte("signed")), asynq.TaskID("signed"), asynq.Queue(QueueReport)); err != nil {
		t.Fatal(err)
	}
	if got := <-ran; got != "signed" {
		t.Fatalf("handler ran %q", got)
	}
	in := asynq.NewInspectorFromRedisClient(rdb)
	for range 500 {
		if archived, _ := in.ListArchivedTasks(QueueReport); len(archived) == 2 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	archived, _ := in.ListArchivedTasks(QueueReport)
	if len(archived) != 2 {
		t.Fatalf("%d archived tasks, want the 2 forged ones archived at the first attempt", len(archived))
	}
	for _, a := range archived {
		if a.Retried != 0 || !strings.Contains(a.LastErr, "signature") {
			t.Errorf("archived %s after %d retries with %q", a.ID, a.Retried, a.LastErr)
		}
	}
	select {
	case got := <-ran:
		t.Fatalf("the handler ran a forged task %q", got)
	default:
	}
	logs := logBuf.String()
	for _, want := range []string{"level=ERROR", "type=" + TypeReport, "id=forged", "id=wrong-key"} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %q:\n%s", want, logs)
		}
	}
}

// TestLoadTaskKey covers the generated key file: made with mode 0600,
// the same key on every load, refused once group or others may read it.
func TestLoadTaskKey(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	k1, err := LoadTaskKey("", dir)
	if err != nil {
		t.Fatal(err)
	}
	name := filepath.Join(dir, TaskKeyFile)
	info, err := os.Stat(name)
	if err != nil {
		t.Fatal(err)
	}
	if perm := info.Mode().Perm(); perm != 0o600 {
		t.Errorf("task.key mode %#o, want 0600", perm)
	}
	if len(k1) < MinTaskKeyLen {
		t.Errorf("generated key of %d bytes", len(k1))
	}
	k2, err := LoadTaskKey("", dir)
	if err != nil || !bytes.Equal(k1, k2) {
		t.Fatalf("second load = %q, %v; want the first key %q", k2, err, k1)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, TaskKeyFile+".tmp-*")); len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}
	// The configured key wins and touches no file.
	if k, err := LoadTaskKey(testTaskKey, t.TempDir()); err != nil || string(k) != testTaskKey {
		t.Errorf("configured key: %q, %v", k, err)
	}
	if _, err := LoadTaskKey("too-short", dir); err == nil {
		t.Error("a 9-character MLBOT_TASK_KEY was accepted")
	}

	if err := os.Chmod(name, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadTaskKey("", dir); err == nil || !strings.Contains(err.Error(), "chmod 600 "+name) {
		t.Errorf("a 0644 task.key: %v, want a refusal naming the file and chmod 600", err)
	}

	// A symbolic link planted where the key goes is not followed.
	other := t.TempDir()
	if err := os.WriteFile(filepath.Join(other, "k"), []byte(testTaskKey), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(other, "k"), filepath.Join(other, TaskKeyFile)); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadTaskKey("", other); err == nil {
		t.Error("a task.key symlink was followed")
	}
}

// TestLoadTaskKeyConcurrently starts several processes' worth of loads on
// one fresh data directory at once: all end up with the same key.
func TestLoadTaskKeyConcurrently(t *testing.T) {
	dir := t.TempDir()
	keys := make([][]byte, 8)
	var wg sync.WaitGroup
	for i := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k, err := LoadTaskKey("", dir)
			if err != nil {
				t.Error(err)
			}
			keys[i] = k
		}()
	}
	wg.Wait()
	for _, k := range keys[1:] {
		if !bytes.Equal(k, keys[0]) {
			t.Fatalf("loads disagree: %q vs %q", k, keys[0])
		}
	}
}

// syncBuffer collects log output written by the server's goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
