package jobs

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/mlbot/mlbot/jobs/store"
)

// TestQueueCollector puts tasks in every state into two queues of a real
// Redis (one served by an asynq server whose handlers block or fail, one
// served by nobody) and reads them back through the Worker's collector
// in a pedantic registry, as a scrape would. Two runs wait in the fair
// line of the pipeline queue "default", which asynq has not seen yet.
func TestQueueCollector(t *testing.T) {
	rdb := testRedis(t)
	w := newRouteWorkerOn(t, rdb, &fakeForge{}, nil)
	for _, id := range []string{"run-1", "run-2"} {
		if _, err := w.store.FairPush(context.Background(), "default", "github/acme/model", id, []byte("task")); err != nil {
			t.Fatal(err)
		}
	}
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(w.QueueCollector()); err != nil {
		t.Fatal(err)
	}
	client := asynq.NewClientFromRedisClient(rdb)
	enqueue := func(typ string, opts ...asynq.Option) *asynq.TaskInfo {
		t.Helper()
		info, err := client.Enqueue(asynq.NewTask(typ, nil), opts...)
		if err != nil {
			t.Fatal(err)
		}
		return info
	}
	// "idle" is served by nobody: 3 pending, 1 scheduled, 1 archived.
	for range 3 {
		enqueue("work", asynq.Queue("idle"))
	}
	enqueue("work", asynq.Queue("idle"), asynq.ProcessIn(time.Hour))
	arch := enqueue("work", asynq.Queue("idle"))
	if err := asynq.NewInspectorFromRedisClient(rdb).ArchiveTask("idle", arch.ID); err != nil {
		t.Fatal(err)
	}
	// "busy" is served: one task blocks (active), one fails (retry).
	release := make(chan struct{})
	srv := asynq.NewServerFromRedisClient(rdb, asynq.Config{
		Concurrency: 2, Queues: map[string]int{"busy": 1}, TaskCheckInterval: 10 * time.Millisecond,
		RetryDelayFunc: func(int, error, *asynq.Task) time.Duration { return time.Hour },
		LogLevel:       asynq.FatalLevel, ShutdownTimeout: time.Second,
	})
	mux := asynq.NewServeMux()
	mux.HandleFunc("block", func(ctx context.Context, _ *asynq.Task) error {
		select {
		case <-release:
		case <-ctx.Done():
		}
		return nil
	})
	mux.HandleFunc("fail", func(context.Context, *asynq.Task) error { return errors.New("no") })
	if err := srv.Start(mux); err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	defer close(release)
	enqueue("block", asynq.Queue("busy"))
	enqueue("fail", asynq.Queue("busy"), asynq.MaxRetry(5))
	time.Sleep(50 * time.Millisecond) // the oldest pending task of "idle" ages

	want := map[[2]string]float64{
		{"idle", "pending"}: 3, {"idle", "active"}: 0, {"idle", "scheduled"}: 1, {"idle", "retry"}: 0, {"idle", "archived"}: 1,
		{"busy", "pending"}: 0, {"busy", "active"}: 1, {"busy", "scheduled"}: 0, {"busy", "retry"}: 1, {"busy", "archived"}: 0,
		{"idle", "waiting"}: 0, {"busy", "waiting"}: 0, {"default", "waiting"}: 2, {"default", "pending"}: 0,
	}
	var diffs []string
	for deadline := time.Now().Add(10 * time.Second); ; {
		diffs = diffs[:0]
		for k, v := range want {
			got, ok := gather(t, reg, "mlbot_queue_tasks", map[string]string{"queue": k[0], "state": k[1]})
			if !ok || got.value != v {
				diffs = append(diffs, k[0]+"/"+k[1])
			}
		}
		if len(diffs) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(diffs) > 0 {
		t.Fatalf("mlbot_queue_tasks wrong for %v", diffs)
	}
	if up, _ := gather(t, reg, "mlbot_queue_stats_up", nil); up.value != 1 {
		t.Errorf("mlbot_queue_stats_up = %v, want 1", up.value)
	}
	idle, _ := gather(t, reg, "mlbot_queue_latency_seconds", map[string]string{"queue": "idle"})
	if idle.value < 0.05 || idle.value > 60 {
		t.Errorf("latency of idle = %vs, want the age of its oldest pending task (>= 50ms)", idle.value)
	}
	if line, _ := gather(t, reg, "mlbot_queue_latency_seconds", map[string]string{"queue": "default"}); line.value < 0.05 || line.value > 60 {
		t.Errorf("latency of default = %vs, want the age of the oldest run in its fair line (>= 50ms)", line.value)
	}
	if busy, ok := gather(t, reg, "mlbot_queue_latency_seconds", map[string]string{"queue": "busy"}); !ok || busy.value != 0 {
		t.Errorf("latency of busy = %v (exported %v), want 0: nothing pending", busy.value, ok)
	}
}

// TestQueueCollectorHungRedis scrapes through a Redis that accepts
// connections and never answers: the scrape ends within the collector's
// time limit, reports mlbot_queue_stats_up 0, and a scrape while the
// abandoned read still hangs starts no second one.
func TestQueueCollectorHungRedis(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close() // held open, never answered
		}
	}()
	rdb := redis.NewClient(&redis.Options{Addr: ln.Addr().String(), ReadTimeout: time.Second, MaxRetries: -1})
	defer rdb.Close()
	c := newQueueCollector(asynq.NewInspectorFromRedisClient(rdb), store.New(rdb, "mlbot:"), []string{"default"}, 200*time.Millisecond)
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(c); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		start := time.Now()
		up, ok := gather(t, reg, "mlbot_queue_stats_up", nil)
		if took := time.Since(start); took > 700*time.Millisecond {
			t.Errorf("scrape %d took %v, want about the 200ms limit", i, took)
		}
		if !ok || up.value != 0 {
			t.Errorf("scrape %d: mlbot_queue_stats_up = %v (exported %v), want 0", i, up.value, ok)
		}
		if _, ok := gather(t, reg, "mlbot_queue_tasks", nil); ok {
			t.Errorf("scrape %d exported queue counts from a Redis that never answered", i)
		}
	}
	// The abandoned read ends with Redis's read timeout.
	for deadline := time.Now().Add(5 * time.Second); c.reading.Load(); {
		if time.Now().After(deadline) {
			t.Fatal("the abandoned read never ended")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
