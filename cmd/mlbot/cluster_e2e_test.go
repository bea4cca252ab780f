package main

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/mlbot/mlbot/configs"
	"github.com/mlbot/mlbot/internal/redistest"
	"github.com/mlbot/mlbot/jobs/store"
)

// TestRedisCluster runs mlbot serve and its workers on a real three-node
// Redis Cluster (MLBOT_REDIS_URL=redis+cluster://…): a push to main and a
// pull request are trained and reported, a /retrain trains again, and no
// task fails (a multi-key operation across slots would, with CROSSSLOT).
// mlbot's own keys all sit in the {mlbot} slot, on one node; asynq's
// spread by queue.
func TestRedisCluster(t *testing.T) {
	c := redistest.StartCluster(t)
	e := newE2E(t, "github", func(cfg *configs.Server) { cfg.RedisURL = c.URL() })
	e.baseline("0.9")
	h := e.commit("feature", map[string]string{"params": "0.92\n"}, "better")
	e.send(e.prEvent("opened", h, ""), http.StatusAccepted)
	if st := e.final(h); st.State != "success" {
		t.Fatalf("pull request status %+v", st)
	}
	e.settle()
	if cs := e.mlbotComments(1); len(cs) != 1 || !strings.Contains(cs[0].Body, "| `accuracy` | 0.9 | 0.92 |") {
		t.Fatalf("mlbot comments %+v", cs)
	}
	before := e.trainings()
	e.say("alice", "/retrain")
	e.lastReply("Retraining")
	if n := e.trainings() - before; n != 1 {
		t.Errorf("/retrain trained %d times, want 1", n)
	}
	if a := e.archived(); len(a) > 0 {
		t.Fatalf("tasks failed for good: %v", a)
	}
	if cs := e.mlbotComments(1); len(cs) != 1 {
		t.Fatalf("%d mlbot comments after /retrain, want 1", len(cs))
	}

	// Where the keys are: every mlbot key on one node, under the prefix.
	ctx := context.Background()
	holders := map[string]int{}
	for _, addr := range c.Nodes {
		n := redis.NewClient(&redis.Options{Addr: addr})
		keys, err := n.Keys(ctx, "*").Result()
		n.Close()
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			switch {
			case strings.HasPrefix(k, store.ClusterPrefix):
				holders[addr]++
			case strings.HasPrefix(k, "asynq:"):
			default:
				t.Errorf("key %q on %s is neither mlbot's nor asynq's", k, addr)
			}
		}
	}
	if len(holders) != 1 {
		t.Errorf("mlbot's keys are on %d nodes (%v), want one", len(holders), holders)
	}
}
