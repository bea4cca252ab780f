package jobs

import (
	"context"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/mlbot/mlbot/bot"
)

var randomIDShape = regexp.MustCompile(`^[0-9a-f]{32}$`)

// runIDPattern is the shape of a run id that the run page (package web)
// accepts.
var runIDPattern = randomIDShape

// TestRunIDsAreRandomAndClaimedOnce shows that run ids are 128 random
// bits that nobody can compute from the repository and commit, while the
// same work still reaches the same run.
func TestRunIDsAreRandomAndClaimedOnce(t *testing.T) {
	ctx := context.Background()
	rdb := testRedis(t)
	w := newRouteWorkerOn(t, rdb, &fakeForge{}, nil)
	const sha = "2c70e997118ada09d114005cedaa23a2a6b41cf4"
	a := bot.Repo{Forge: "github", FullName: "acme/model"}
	b := bot.Repo{Forge: "github", FullName: "acme/other"}

	idA, err := w.runID(ctx, a, KindPullRequest, sha, 1, "")
	if err != nil {
		t.Fatal(err)
	}
	idB, err := w.runID(ctx, b, KindPullRequest, sha, 1, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{idA, idB} {
		if !randomIDShape.MatchString(id) {
			t.Errorf("run id %q, want 32 lower-case hex digits", id)
		}
		if strings.Contains(runKey(a, KindPullRequest, sha, 1, ""), id) || strings.Contains(runKey(b, KindPullRequest, sha, 1, ""), id) {
			t.Errorf("run id %q is (part of) the derived key", id)
		}
	}
	if idA == idB {
		t.Errorf("two repositories' identical commits share the run id %s", idA)
	}
	if again, err := w.runID(ctx, a, KindPullRequest, sha, 1, ""); err != nil || again != idA {
		t.Errorf("the same work again got id %q (%v), want %q", again, err, idA)
	}

	// Workers racing on the same new work (a delivery and its retry) all
	// get the one id.
	ids := make([]string, 8)
	var wg sync.WaitGroup
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ids[i], _ = w.runID(ctx, a, KindBaseline, sha, 0, "main")
		}()
	}
	wg.Wait()
	for _, id := range ids {
		if id != ids[0] || id == "" {
			t.Fatalf("racing claims got ids %q, want one", ids)
		}
	}

	// Not derived: the same work on an install with an empty Redis gets
	// another id.
	if err := rdb.FlushDB(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if fresh, err := w.runID(ctx, a, KindPullRequest, sha, 1, ""); err != nil || fresh == idA {
		t.Errorf("after emptying Redis the same work got %q (%v), the id it had before", fresh, err)
	}
}
