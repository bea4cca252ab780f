package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mlbot/mlbot/configs"
	"github.com/mlbot/mlbot/internal/promtest"
	"github.com/mlbot/mlbot/jobs/deploystate"
	"github.com/mlbot/mlbot/jobs/registry"
	"github.com/mlbot/mlbot/web"
)

// deployModel is e2e.model with artifacts and two environments whose
// deploy script copies the artifact to out/<env> and logs each deploy.
func (e *e2e) deployModel(accuracy, out string, extra string) map[string]string {
	files := e.model(accuracy)
	files[".mlbot.yml"] = strings.Replace(files[".mlbot.yml"], "  timeout: 1m\n", "  artifacts: [model.txt]\n  timeout: 1m\n", 1) + `deploy:
  production:
    command: sh deploy.sh production
    on_merge: true
    url: https://models.example.com/production
` + extra + `  staging:
    command: sh deploy.sh staging
    from_pr: true
`
	files["deploy.sh"] = fmt.Sprintf(`set -e
echo "start $1 v$MLBOT_MODEL_VERSION $(date +%%s%%N)" >> %[1]s/journal
cp "$MLBOT_ARTIFACTS_DIR/model.txt" %[1]s/$1.tmp && mv %[1]s/$1.tmp %[1]s/$1
sleep ${DEPLOY_SLEEP:-0}
echo "end $1 v$MLBOT_MODEL_VERSION $(date +%%s%%N)" >> %[1]s/journal
echo "deployed model v$MLBOT_MODEL_VERSION of $MLBOT_SHA to $MLBOT_ENVIRONMENT"
`, out)
	return files
}

// deployed returns what out/<env> holds, waiting until it holds want.
func waitDeployed(t *testing.T, out, env, want string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if b, err := os.ReadFile(filepath.Join(out, env)); err == nil && strings.TrimSpace(string(b)) == want {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	b, _ := os.ReadFile(filepath.Join(out, env))
	t.Fatalf("%s holds %q, want %q", env, b, want)
}

// merge merges branch into main with a merge commit, pushes main, and
// delivers the merged pull request event and the push.
func (e *e2e) merge(branch string) string {
	e.t.Helper()
	if err := e.sb.checkout("main", false); err != nil {
		e.t.Fatal(err)
	}
	if err := gitCmd(e.sb.work, "-c", "user.name=Maria", "-c", "user.email=maria@example.com", "merge", "--no-ff", "--quiet", "-m", "Merge "+branch, branch); err != nil {
		e.t.Fatal(err)
	}
	sha, err := gitOut(e.sb.work, "rev-parse", "HEAD")
	if err != nil {
		e.t.Fatal(err)
	}
	if err := e.sb.pushBranch("main"); err != nil {
		e.t.Fatal(err)
	}
	head, _ := gitOut(e.sb.work, "rev-parse", branch)
	pr := e.sb.pr(e.hook, prEvent{Action: "merged", HeadRef: branch, HeadSHA: head, BaseSHA: e.mainSHA, Author: "alice", Association: "MEMBER", MergeSHA: sha})
	e.send(pr, http.StatusAccepted)
	e.send(e.sb.push(e.hook, e.mainSHA, sha), http.StatusAccepted)
	e.mainSHA = sha
	return sha
}

// models reads the registry through the HTTP API.
func (e *e2e) models() web.ModelsResponse {
	e.t.Helper()
	var m web.ModelsResponse
	if err := json.Unmarshal([]byte(e.apiGet("/api/v1/models?repo=acme/model")), &m); err != nil {
		e.t.Fatal(err)
	}
	return m
}

// hostStates returns the states of the host's deployments to env.
func (e *e2e) hostStates(env string) [][]string {
	var out [][]string
	for _, d := range e.sb.host.deployments(e.sb.repo) {
		if d.Environment == env {
			out = append(out, d.States)
		}
	}
	return out
}

func digest(t *testing.T, path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// TestDeployments drives deploys, the registry and rollbacks on both
// forges through real webhooks.
func TestDeployments(t *testing.T) {
	scenarios := []struct {
		name  string
		tweak func(*configs.Server)
		run   func(t *testing.T, e *e2e, out string)
	}{
		{"merge deploys to production and records a version", nil, func(t *testing.T, e *e2e, out string) {
			e.mainSHA = e.commit("main", e.deployModel("0.90", out, ""), "model")
			e.send(e.sb.push(e.hook, zeroSHA, e.mainSHA), http.StatusAccepted)
			waitDeployed(t, out, "production", "0.90")
			h := e.commit("feature", map[string]string{"params": "0.93\n"}, "better")
			e.send(e.prEvent("opened", h, ""), http.StatusAccepted)
			e.final(h)
			m := e.merge("feature")
			waitDeployed(t, out, "production", "0.93")
			e.settle()
			models := e.models()
			if len(models.Versions) < 3 {
				t.Fatalf("registry holds %d versions, want main, the PR and the merge", len(models.Versions))
			}
			newest := models.Versions[0]
			if newest.SHA != m || newest.Metrics["accuracy"] != 0.93 || len(newest.Artifacts) != 1 || newest.Artifacts[0].SHA256 != digest(t, filepath.Join(out, "production")) {
				t.Errorf("newest version %+v does not match the merge and the deployed bytes", newest)
			}
			if st := e.hostStates("production"); len(st) != 2 || st[1][len(st[1])-1] != "success" {
				t.Errorf("host deployments to production: %v", st)
			}
			if ss := e.sb.statuses(m); ss[len(ss)-1].Context != "mlbot/deploy/production" && !hasStatus(ss, "mlbot/deploy/production", "success") {
				t.Errorf("statuses of the merge: %+v", ss)
			}
			e.lastReply("to `production`: succeeded")
			metrics := httpGet(t, e.url+"/metrics")
			if !strings.Contains(metrics, `mlbot_deployed_model_info{env="production",repo="`+e.forge+`:acme/model",version="`) ||
				!strings.Contains(metrics, `mlbot_deployed_model_metric{env="production",metric="accuracy",repo="`+e.forge+`:acme/model"} 0.93`) {
				t.Errorf("/metrics does not export the deployed model:\n%s", grepLines(metrics, "mlbot_deployed"))
			}
			if e.forge == "github" && (len(e.hostStates("production")[0]) < 3 || e.hostStates("production")[0][2] != "inactive") {
				t.Errorf("the replaced deployment was not marked inactive: %v", e.hostStates("production"))
			}
		}},
		{"a merge that fails its gates deploys nothing and says so", nil, func(t *testing.T, e *e2e, out string) {
			e.mainSHA = e.commit("main", e.deployModel("0.90", out, ""), "model")
			e.send(e.sb.push(e.hook, zeroSHA, e.mainSHA), http.StatusAccepted)
			waitDeployed(t, out, "production", "0.90")
			h := e.commit("feature", map[string]string{"params": "0.70\n"}, "worse")
			e.send(e.prEvent("opened", h, ""), http.StatusAccepted)
			e.final(h)
			m := e.merge("feature")
			if st := e.final(m); st.State != "failure" {
				t.Fatalf("merge status %+v", st)
			}
			e.settle()
			e.lastReply("Not deployed")
			waitDeployed(t, out, "production", "0.90")
			if st := e.hostStates("production"); len(st) != 1 {
				t.Errorf("%d deployments to production, want only the first", len(st))
			}
		}},
		{"/deploy staging by a maintainer, refused for a contributor", nil, func(t *testing.T, e *e2e, out string) {
			e.mainSHA = e.commit("main", e.deployModel("0.90", out, ""), "model")
			e.send(e.sb.push(e.hook, zeroSHA, e.mainSHA), http.StatusAccepted)
			waitDeployed(t, out, "production", "0.90")
			h := e.commit("feature", map[string]string{"params": "0.91\n"}, "candidate")
			e.send(e.prEvent("opened", h, ""), http.StatusAccepted)
			e.final(h)
			e.settle()
			e.say("alice", "/deploy staging")
			e.lastReply("needs maintain permission")
			if _, err := os.Stat(filepath.Join(out, "staging")); err == nil {
				t.Fatal("a contributor's /deploy deployed")
			}
			e.say("maria", "/deploy staging")
			waitDeployed(t, out, "staging", "0.91")
			e.settle()
			e.lastReply("to `staging`: succeeded")
			if !hasStatus(e.sb.statuses(h), "mlbot/deploy/staging", "success") {
				t.Errorf("no mlbot/deploy/staging success on %s: %+v", h[:7], e.sb.statuses(h))
			}
		}},
		{"a failing deploy command reports failure with its log", nil, func(t *testing.T, e *e2e, out string) {
			files := e.deployModel("0.90", out, "")
			files[".mlbot.yml"] = strings.Replace(files[".mlbot.yml"], "command: sh deploy.sh staging", "command: echo boom-from-deploy; exit 7", 1)
			e.mainSHA = e.commit("main", files, "model")
			e.send(e.sb.push(e.hook, zeroSHA, e.mainSHA), http.StatusAccepted)
			waitDeployed(t, out, "production", "0.90")
			h := e.commit("feature", map[string]string{"params": "0.91\n"}, "candidate")
			e.send(e.prEvent("opened", h, ""), http.StatusAccepted)
			e.final(h)
			e.settle()
			e.say("maria", "/deploy staging")
			deadline := time.Now().Add(30 * time.Second)
			for !hasStatus(e.sb.statuses(h), "mlbot/deploy/staging", "failure") && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
			e.settle()
			e.lastReply("boom-from-deploy")
			e.lastReply("exited with status 7")
			if st := e.hostStates("staging"); len(st) != 1 || st[0][len(st[0])-1] != "failure" {
				t.Errorf("host deployment to staging: %v", st)
			}
		}},
		{"/rollback restores the previous version's exact bytes", nil, func(t *testing.T, e *e2e, out string) {
			e.mainSHA = e.commit("main", e.deployModel("0.90", out, ""), "model")
			e.send(e.sb.push(e.hook, zeroSHA, e.mainSHA), http.StatusAccepted)
			waitDeployed(t, out, "production", "0.90")
			v1 := digest(t, filepath.Join(out, "production"))
			h := e.commit("feature", map[string]string{"params": "0.95\n"}, "better")
			e.send(e.prEvent("opened", h, ""), http.StatusAccepted)
			e.final(h)
			e.merge("feature")
			waitDeployed(t, out, "production", "0.95")
			e.settle()
			e.say("maria", "/rollback production")
			waitDeployed(t, out, "production", "0.90")
			if got := digest(t, filepath.Join(out, "production")); got != v1 {
				t.Errorf("rolled back bytes %s, want v1's %s", got, v1)
			}
			e.settle()
			if m := e.models(); m.Deployments["production"].Version != 1 {
				t.Errorf("registry says production runs v%d, want v1", m.Deployments["production"].Version)
			}
		}},
		{"/rollback to a tampered blob is refused with a digest mismatch", nil, func(t *testing.T, e *e2e, out string) {
			e.mainSHA = e.commit("main", e.deployModel("0.90", out, ""), "model")
			e.send(e.sb.push(e.hook, zeroSHA, e.mainSHA), http.StatusAccepted)
			waitDeployed(t, out, "production", "0.90")
			h := e.commit("feature", map[string]string{"params": "0.95\n"}, "better")
			e.send(e.prEvent("opened", h, ""), http.StatusAccepted)
			e.final(h)
			e.merge("feature")
			waitDeployed(t, out, "production", "0.95")
			e.settle()
			// What an attacker who reached the store would do: rewrite v1's
			// blob with bytes of the same size.
			var v1 *registry.Version
			for _, v := range e.models().Versions {
				if v.Number == 1 {
					v1 = &v
				}
			}
			if v1 == nil || len(v1.Artifacts) != 1 {
				t.Fatalf("no v1 with one artifact: %+v", e.models().Versions)
			}
			blob := filepath.Join(e.app.cfg.DataDir, "artifacts", "sha256", v1.Artifacts[0].SHA256)
			if st, err := os.Stat(blob); err != nil || st.Mode().Perm() != 0o444 {
				t.Fatalf("blob %s: %v, %v; want mode 0444", blob, st, err)
			}
			os.Chmod(blob, 0o644)
			if err := os.WriteFile(blob, []byte("6.66\n"), 0o444); err != nil {
				t.Fatal(err)
			}
			e.say("maria", "/rollback production")
			e.settle()
			e.lastReply("digest mismatch")
			waitDeployed(t, out, "production", "0.95")
			if m := e.models(); m.Deployments["production"].Version == 1 {
				t.Errorf("the registry says production runs the tampered v1")
			}
		}},
		{"two deploys requested at once run one after the other", func(c *configs.Server) {
			c.Secrets = map[string]string{"DEPLOY_SLEEP": "1"}
		}, func(t *testing.T, e *e2e, out string) {
			files := e.deployModel("0.90", out, "")
			files[".mlbot.yml"] += "secrets: [DEPLOY_SLEEP]\n"
			files[".mlbot.yml"] = strings.Replace(files[".mlbot.yml"], "    on_merge: true\n", "", 1)
			e.mainSHA = e.commit("main", files, "model")
			e.send(e.sb.push(e.hook, zeroSHA, e.mainSHA), http.StatusAccepted)
			e.final(e.mainSHA)
			h := e.commit("feature", map[string]string{"params": "0.91\n"}, "candidate")
			e.send(e.prEvent("opened", h, ""), http.StatusAccepted)
			e.final(h)
			e.settle()
			e.send(e.sb.comment(e.hook, commentEvent{Body: "/deploy staging", Author: "maria"}), http.StatusAccepted)
			e.send(e.sb.comment(e.hook, commentEvent{Body: "/deploy staging", Author: "maria"}), http.StatusAccepted)
			deadline := time.Now().Add(60 * time.Second)
			var journal []string
			for time.Now().Before(deadline) {
				b, _ := os.ReadFile(filepath.Join(out, "journal"))
				journal = strings.Fields(string(b))
				if strings.Count(string(b), "end staging") == 2 {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			var events []string
			for i := 0; i+3 < len(journal)+1; i += 4 {
				events = append(events, journal[i])
			}
			if strings.Join(events, " ") != "start end start end" {
				t.Fatalf("deploys overlapped or did not both run: %v", journal)
			}
		}},
		{"a pull request cannot change what /deploy runs", nil, func(t *testing.T, e *e2e, out string) {
			e.mainSHA = e.commit("main", e.deployModel("0.90", out, ""), "model")
			e.send(e.sb.push(e.hook, zeroSHA, e.mainSHA), http.StatusAccepted)
			waitDeployed(t, out, "production", "0.90")
			files := e.deployModel("0.91", out, "")
			files[".mlbot.yml"] = strings.Replace(files[".mlbot.yml"], "command: sh deploy.sh staging", "command: echo pwned > "+filepath.Join(out, "pwned"), 1)
			h := e.commit("feature", files, "sneaky deploy command")
			e.send(e.prEvent("opened", h, ""), http.StatusAccepted)
			e.final(h)
			e.settle()
			e.say("maria", "/deploy staging")
			waitDeployed(t, out, "staging", "0.91")
			if _, err := os.Stat(filepath.Join(out, "pwned")); err == nil {
				t.Fatal("the pull request's deploy command ran")
			}
		}},
		{"a verified deploy that breaches rolls back automatically", nil, nil},
	}
	for _, forge := range forges {
		for _, sc := range scenarios {
			t.Run(forge+"/"+sc.name, func(t *testing.T) {
				out := deployTarget(t)
				if sc.run == nil {
					verifiedDeploy(t, forge, out)
					return
				}
				e := newE2E(t, forge, withDeployPath(out, sc.tweak))
				sc.run(t, e, out)
				if a := e.archived(); len(a) > 0 {
					t.Errorf("tasks failed for good: %v", a)
				}
			})
		}
	}
}

// deployTarget is the directory the tests' deploy.sh ships models to:
// writable for the sandbox's uid, and named in MLBOT_DEPLOY_PATHS by
// withDeployPath, since a deploy sees nothing else of the host's files.
func deployTarget(t *testing.T) string {
	out := filepath.Join(t.TempDir(), "deployed")
	if err := os.Mkdir(out, 0o777); err != nil {
		t.Fatal(err)
	}
	os.Chmod(out, 0o777)
	return out
}

// withDeployPath adds out to MLBOT_DEPLOY_PATHS before tweak.
func withDeployPath(out string, tweak func(*configs.Server)) func(*configs.Server) {
	return func(c *configs.Server) {
		c.DeployPaths = append(c.DeployPaths, out)
		if tweak != nil {
			tweak(c)
		}
	}
}

// verifiedDeploy deploys twice with a verify: block checked by a real
// Prometheus scraping an exporter the test controls: the first deploy
// holds, the second breaches and is rolled back to the first.
func verifiedDeploy(t *testing.T, forge, out string) {
	exp := promtest.NewExporter(t, "test_model_errors")
	prom := promtest.Start(t, exp.Addr())
	prom.WaitForSeries(t, "test_model_errors", 30*time.Second)
	e := newE2E(t, forge, func(c *configs.Server) { c.PrometheusURL, c.DeployPaths = prom.URL(), []string{out} })
	verify := "    verify: {query: 'max(test_model_errors)', max: 0.01, for: 3s, every: 500ms}\n"
	e.mainSHA = e.commit("main", e.deployModel("0.90", out, verify), "model")
	e.send(e.sb.push(e.hook, zeroSHA, e.mainSHA), http.StatusAccepted)
	waitDeployed(t, out, "production", "0.90")
	v1 := digest(t, filepath.Join(out, "production"))
	e.settle()
	h := e.commit("feature", map[string]string{"params": "0.95\n"}, "better on paper")
	e.send(e.prEvent("opened", h, ""), http.StatusAccepted)
	e.final(h)
	e.merge("feature")
	waitDeployed(t, out, "production", "0.95")
	exp.SetValue(0.5) // the new model errs in production
	waitDeployed(t, out, "production", "0.90")
	if got := digest(t, filepath.Join(out, "production")); got != v1 {
		t.Errorf("rolled back bytes %s, want v1's %s", got, v1)
	}
	e.settle()
	replies := strings.Join(e.replies(), "\n")
	if !strings.Contains(replies, "rolled back") || !strings.Contains(replies, "0.5") {
		t.Errorf("replies do not report the breach and the observed value:\n%s", replies)
	}
	if m := e.models(); m.Deployments["production"].Version != 1 {
		t.Errorf("production runs v%d after the automatic rollback, want v1", m.Deployments["production"].Version)
	}
	// Each verified deploy keeps the values it read, and its page draws
	// them against the threshold.
	hist, err := e.app.registry.Deploys(context.Background(), forge+":acme/model", "production")
	if err != nil {
		t.Fatal(err)
	}
	var held, breached *registry.Deploy
	for i := range hist {
		switch {
		case hist[i].State == deploystate.RolledBack && breached == nil:
			breached = &hist[i]
		case hist[i].Version == 1 && hist[i].Kind == registry.KindMerge:
			held = &hist[i]
		}
	}
	if breached == nil || held == nil {
		t.Fatalf("no rolled-back deploy or first deploy in %+v", hist)
	}
	if v := held.Verification; v == nil || v.Breached || len(v.Samples) < 2 || v.Max == nil || *v.Max != 0.01 {
		t.Errorf("the first deploy's verification: %+v", v)
	}
	v := breached.Verification
	if v == nil || !v.Breached || len(v.Samples) == 0 || v.Samples[len(v.Samples)-1].Value != 0.5 || v.Query != "max(test_model_errors)" {
		t.Fatalf("the rolled-back deploy's verification: %+v", v)
	}
	resp, err := http.Get(e.url + "/deploys/" + breached.ID)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := fmt.Sprintf(`data-points="%d"`, len(v.Samples)); !strings.Contains(string(body), want) || !strings.Contains(string(body), "max 0.01") {
		t.Errorf("the deploy page does not draw the %d samples against max 0.01:\n%s", len(v.Samples), body)
	}
}

func hasStatus(ss []hostStatus, context, state string) bool {
	for _, s := range ss {
		if s.Context == context && s.State == state {
			return true
		}
	}
	return false
}

// grepLines returns the lines of s that contain substr.
func grepLines(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
