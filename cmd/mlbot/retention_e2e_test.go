package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/mlbot/mlbot/configs"
)

// TestRetention produces model versions through webhooks (three pushes to
// main, each deployed to production, and a pull request), with the
// collector of mlbot serve running every 200ms under a policy of two
// deploys, one default-branch version and no age: it keeps what runs in
// production and its rollback target, drops the rest with their artifact
// blobs, a /rollback to the kept target ships its bytes, and a version
// stored and deployed while the collector keeps running is not harmed.
func TestRetention(t *testing.T) {
	for _, forge := range forges {
		t.Run(forge, func(t *testing.T) {
			out := deployTarget(t)
			e := newE2E(t, forge, withDeployPath(out, func(c *configs.Server) {
				c.Retention = configs.Retention{Deploys: 2, Main: 1, Days: 0, Interval: 200 * time.Millisecond}
			}))
			artifacts := filepath.Join(e.dataDir, "artifacts")
			push := func(accuracy string) string {
				t.Helper()
				prev := e.mainSHA
				if prev == "" {
					prev = zeroSHA
					e.mainSHA = e.commit("main", e.deployModel(accuracy, out, ""), "model")
				} else {
					e.mainSHA = e.commit("main", map[string]string{"params": accuracy + "\n"}, "model "+accuracy)
				}
				e.send(e.sb.push(e.hook, prev, e.mainSHA), http.StatusAccepted)
				waitDeployed(t, out, "production", accuracy)
				e.settle()
				return e.mainSHA
			}
			push("0.90")
			v2 := push("0.91")
			v3 := push("0.92")
			h := e.commit("feature", map[string]string{"params": "0.93\n"}, "candidate")
			e.send(e.prEvent("opened", h, ""), http.StatusAccepted)
			e.final(h)
			e.settle()

			// Kept: 0.92 runs in production (and is main's newest), 0.91
			// is its rollback target. 0.90 and the pull request's 0.93 go.
			waitRetained(t, e, artifacts, []string{v3, v2}, []string{"0.92", "0.91"})

			e.say("maria", "/rollback production")
			waitDeployed(t, out, "production", "0.91")
			e.settle()
			e.lastReply("to `production`: succeeded")

			// Stored and deployed while the collector runs: 0.94 runs now,
			// 0.91 (the last deploy before) is the rollback target, and
			// 0.92 has no rule left to keep it.
			v5 := push("0.94")
			waitRetained(t, e, artifacts, []string{v5, v2}, []string{"0.94", "0.91"})
			if a := e.archived(); len(a) > 0 {
				t.Errorf("tasks failed for good: %v", a)
			}
		})
	}
}

// waitRetained waits until the registry holds exactly the versions of
// shas (newest first) and the artifact store exactly the model files
// holding accuracies, and fails the test if that does not come.
func waitRetained(t *testing.T, e *e2e, artifacts string, shas, accuracies []string) {
	t.Helper()
	var want []string
	for _, a := range accuracies {
		sum := sha256.Sum256([]byte(a + "\n"))
		want = append(want, hex.EncodeToString(sum[:]))
	}
	slices.Sort(want)
	var gotSHAs, gotBlobs []string
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		vs, err := e.app.registry.List(context.Background(), e.forge+":acme/model")
		if err != nil {
			t.Fatal(err)
		}
		gotSHAs = nil
		for _, v := range vs {
			gotSHAs = append(gotSHAs, v.SHA)
		}
		entries, _ := os.ReadDir(filepath.Join(artifacts, "sha256"))
		gotBlobs = nil
		for _, en := range entries {
			gotBlobs = append(gotBlobs, en.Name())
		}
		if slices.Equal(gotSHAs, shas) && slices.Equal(gotBlobs, want) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("registry holds %v, want %v; blobs %v, want %v (%v)", gotSHAs, shas, gotBlobs, want, accuracies)
}
