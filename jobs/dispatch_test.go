package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/mlbot/mlbot/jobs/store"
)

// dispatchFixture is a fair line on the jobs test database, emptied, with
// the signer its runs are signed with.
type dispatchFixture struct {
	rdb    *redis.Client
	st     *store.Store
	signer *TaskSigner
	insp   *asynq.Inspector
}

func newDispatchFixture(t *testing.T) *dispatchFixture {
	t.Helper()
	rdb := testRedis(t)
	signer, err := NewTaskSigner(newTaskKey())
	if err != nil {
		t.Fatal(err)
	}
	insp := asynq.NewInspectorFromRedisClient(rdb)
	return &dispatchFixture{rdb: rdb, st: store.New(rdb, store.DefaultPrefix), signer: signer, insp: insp}
}

// push queues run id of repo in the fair line of queue "default", signed
// by signer.
func (f *dispatchFixture) push(t *testing.T, signer *TaskSigner, repo, id string) {
	t.Helper()
	p, err := json.Marshal(PipelinePayload{RunID: id})
	if err != nil {
		t.Fatal(err)
	}
	task := signer.NewTask(TypePipeline, p)
	b, err := json.Marshal(fairTask{Type: task.Type(), Payload: task.Payload(), Headers: task.Headers()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.st.FairPush(context.Background(), "default", repo, id, b); err != nil {
		t.Fatal(err)
	}
}

// dispatcher returns a dispatcher of queue "default" with idle workers
// and its own asynq client.
func (f *dispatchFixture) dispatcher(t *testing.T, idle int, claim time.Duration) *dispatcher {
	t.Helper()
	client := asynq.NewClientFromRedisClient(f.rdb)
	return newDispatcher(dispatcherParams{logger: slog.New(slog.DiscardHandler), line: f.st, client: client,
		queues: []string{"default"}, idle: func() int { return idle }, claim: claim,
		options: func(queue, id string) []asynq.Option {
			return []asynq.Option{asynq.TaskID(pipelineTaskID(id)), asynq.Queue(queue), asynq.Retention(time.Hour)}
		}})
}

// take removes the pending tasks of queue "default" as a worker would
// take them, and returns their run ids.
func (f *dispatchFixture) take(t *testing.T) []string {
	t.Helper()
	tasks, err := f.insp.ListPendingTasks("default", asynq.PageSize(1000))
	if errors.Is(err, asynq.ErrQueueNotFound) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, ti := range tasks {
		var p PipelinePayload
		if err := json.Unmarshal(ti.Payload, &p); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, p.RunID)
		if err := f.insp.DeleteTask("default", ti.ID); err != nil {
			t.Fatal(err)
		}
	}
	return ids
}

func (f *dispatchFixture) waiting(t *testing.T) int64 {
	t.Helper()
	n, err := f.st.FairWaiting(context.Background(), "default")
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestDispatcherTakesRepositoriesInTurns hands runs over with one idle
// worker, taking each as a worker would before the next dispatch: the
// runs reach asynq one repository at a time, never more than idle at once.
func TestDispatcherTakesRepositoriesInTurns(t *testing.T) {
	cases := []struct {
		name   string
		pushes []string // repo/run pairs as "repo:run"
		idle   int
		want   [][]string // the run ids each dispatch hands over
	}{
		{"a burst waits behind the others' first runs", []string{"a:a1", "a:a2", "a:a3", "b:b1", "c:c1"}, 1,
			[][]string{{"a1"}, {"b1"}, {"c1"}, {"a2"}, {"a3"}, nil}},
		{"two idle workers get two repositories' runs", []string{"a:a1", "a:a2", "a:a3", "a:a4", "b:b1", "b:b2"}, 2,
			[][]string{{"a1", "b1"}, {"a2", "b2"}, {"a3", "a4"}, nil}},
		{"no idle worker, nothing handed over", []string{"a:a1"}, 0, [][]string{nil, nil}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newDispatchFixture(t)
			for _, p := range tc.pushes {
				var repo, id string
				fmt.Sscanf(p, "%1s:%s", &repo, &id)
				f.push(t, f.signer, repo, id)
			}
			d := f.dispatcher(t, tc.idle, time.Minute)
			for i, want := range tc.want {
				if _, err := d.dispatch(context.Background()); err != nil {
					t.Fatal(err)
				}
				got := f.take(t)
				slices.Sort(got)
				if !slices.Equal(got, want) {
					t.Fatalf("dispatch %d handed over %v, want %v", i+1, got, want)
				}
			}
		})
	}
}

// TestDispatcherKeepsPendingToIdleWorkers: the runs beyond the idle
// workers stay in their fair lines, where later runs of other repositories
// can still pass them.
func TestDispatcherKeepsPendingToIdleWorkers(t *testing.T) {
	f := newDispatchFixture(t)
	for i := range 10 {
		f.push(t, f.signer, "a", fmt.Sprintf("a%d", i))
	}
	d := f.dispatcher(t, 3, time.Minute)
	for range 2 {
		if _, err := d.dispatch(context.Background()); err != nil {
			t.Fatal(err)
		}
		pending, err := f.st.AsynqPending(context.Background(), "default")
		if err != nil {
			t.Fatal(err)
		}
		if pending != 3 || f.waiting(t) != 7 {
			t.Fatalf("pending in asynq %d, waiting %d; want 3 and 7", pending, f.waiting(t))
		}
	}
}

// TestDispatcherCrashBetweenSteps plays a dispatcher that dies at each
// point of claim → enqueue → ack, and another that takes over once the
// claim lapses: the run reaches asynq exactly once and leaves its line.
func TestDispatcherCrashBetweenSteps(t *testing.T) {
	cases := []struct {
		name string
		// die does what the dead dispatcher did.
		die func(t *testing.T, f *dispatchFixture, e store.FairEntry)
	}{
		{"after the claim", func(*testing.T, *dispatchFixture, store.FairEntry) {}},
		{"after the enqueue, before the ack", func(t *testing.T, f *dispatchFixture, e store.FairEntry) {
			var ft fairTask
			if err := json.Unmarshal(e.Task, &ft); err != nil {
				t.Fatal(err)
			}
			client := asynq.NewClientFromRedisClient(f.rdb)
			if _, err := client.Enqueue(asynq.NewTaskWithHeaders(ft.Type, ft.Payload, ft.Headers),
				asynq.TaskID(pipelineTaskID(e.RunID)), asynq.Queue("default")); err != nil {
				t.Fatal(err)
			}
		}},
		{"after the enqueue, the task already run and gone from pending", func(t *testing.T, f *dispatchFixture, e store.FairEntry) {
			var ft fairTask
			if err := json.Unmarshal(e.Task, &ft); err != nil {
				t.Fatal(err)
			}
			client := asynq.NewClientFromRedisClient(f.rdb)
			if _, err := client.Enqueue(asynq.NewTaskWithHeaders(ft.Type, ft.Payload, ft.Headers),
				asynq.TaskID(pipelineTaskID(e.RunID)), asynq.Queue("default"), asynq.Retention(time.Hour)); err != nil {
				t.Fatal(err)
			}
			// Completed tasks keep their id for their retention.
			if err := f.rdb.Eval(context.Background(), `redis.call("LREM", KEYS[1], 0, ARGV[1])
				redis.call("HSET", KEYS[2], "state", "completed")
				redis.call("ZADD", KEYS[3], 9999999999, ARGV[1])`,
				[]string{"asynq:{default}:pending", "asynq:{default}:t:" + pipelineTaskID(e.RunID), "asynq:{default}:completed"},
				pipelineTaskID(e.RunID)).Err(); err != nil && !errors.Is(err, redis.Nil) {
				t.Fatal(err)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newDispatchFixture(t)
			f.push(t, f.signer, "a", "a1")
			f.push(t, f.signer, "b", "b1")
			const claim = 300 * time.Millisecond
			e, ok, err := f.st.FairClaim(context.Background(), "default", claim)
			if err != nil || !ok || e.RunID != "a1" {
				t.Fatalf("claim = %+v, %v, %v", e, ok, err)
			}
			tc.die(t, f, e)
			// Before the claim lapses, the next dispatcher passes a1 over.
			d := f.dispatcher(t, 10, time.Minute)
			if _, err := d.dispatch(context.Background()); err != nil {
				t.Fatal(err)
			}
			if f.waiting(t) != 1 {
				t.Fatalf("%d runs waiting after the second dispatcher's first pass, want a1 alone", f.waiting(t))
			}
			time.Sleep(claim + 100*time.Millisecond)
			if _, err := d.dispatch(context.Background()); err != nil {
				t.Fatal(err)
			}
			if n := f.waiting(t); n != 0 {
				t.Fatalf("%d runs still waiting once the claim lapsed", n)
			}
			for _, id := range []string{"a1", "b1"} {
				if _, err := f.insp.GetTaskInfo("default", pipelineTaskID(id)); err != nil {
					t.Errorf("task of run %s: %v", id, err)
				}
			}
			if got := f.take(t); len(got) > 2 {
				t.Errorf("pending tasks %v: a run was handed over twice", got)
			}
		})
	}
}

// TestTwoDispatchersConcurrently: two processes' dispatchers drain one
// fair line at once; every run becomes exactly one asynq task.
func TestTwoDispatchersConcurrently(t *testing.T) {
	f := newDispatchFixture(t)
	var want []string
	for r := range 5 {
		for i := range 10 {
			id := fmt.Sprintf("r%d-%d", r, i)
			want = append(want, id)
			f.push(t, f.signer, fmt.Sprintf("r%d", r), id)
		}
	}
	var wg sync.WaitGroup
	for range 2 {
		d := f.dispatcher(t, 1000, time.Minute)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 200 {
				if _, err := d.dispatch(context.Background()); err != nil {
					t.Error(err)
					return
				}
				if n, _ := f.st.FairWaiting(context.Background(), "default"); n == 0 {
					return
				}
			}
		}()
	}
	wg.Wait()
	if n := f.waiting(t); n != 0 {
		t.Fatalf("%d runs still waiting", n)
	}
	got := f.take(t)
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("asynq got %d tasks %v, want each of %d runs once", len(got), got, len(want))
	}
}

// TestDispatchedTaskIsVerified: a run in the fair line reaches asynq with
// the signature it was made with, which the pipeline server checks; a run
// that someone else wrote into the line (signed with another key) is
// handed over too but refused by the signature check, never run.
func TestDispatchedTaskIsVerified(t *testing.T) {
	other, err := NewTaskSigner(newTaskKey())
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		signer  func(f *dispatchFixture) *TaskSigner
		wantRun bool
	}{
		{"signed by mlbot", func(f *dispatchFixture) *TaskSigner { return f.signer }, true},
		{"written by someone else", func(*dispatchFixture) *TaskSigner { return other }, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newDispatchFixture(t)
			f.push(t, tc.signer(f), "a", "a1")
			if _, err := f.dispatcher(t, 1, time.Minute).dispatch(context.Background()); err != nil {
				t.Fatal(err)
			}
			ti, err := f.insp.GetTaskInfo("default", pipelineTaskID("a1"))
			if err != nil {
				t.Fatal(err)
			}
			ran := false
			h := f.signer.Middleware(slog.New(slog.DiscardHandler))(asynq.HandlerFunc(func(context.Context, *asynq.Task) error {
				ran = true
				return nil
			}))
			err = h.ProcessTask(context.Background(), asynq.NewTaskWithHeaders(ti.Type, ti.Payload, ti.Headers))
			if ran != tc.wantRun {
				t.Errorf("handler ran = %v (err %v), want %v", ran, err, tc.wantRun)
			}
		})
	}
}
