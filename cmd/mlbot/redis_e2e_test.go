package main

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/mlbot/mlbot/configs"
	"github.com/mlbot/mlbot/jobs"
)

// TestForgedTasksAreNeverRun attacks mlbot serve through its Redis, as a
// training that found the port would: it enqueues its own mlbot:webhook
// task, a push to main naming its own commit, with its own asynq client.
// Unsigned, or signed with a key that is not the install's, the task is
// archived and runs nothing: no training, no status. A task signed with the
// install's key runs, which shows the forged ones would have.
func TestForgedTasksAreNeverRun(t *testing.T) {
	for _, tc := range []struct {
		name      string
		inProcess bool
	}{
		{"in-process redis", true},
		{"MLBOT_REDIS_URL", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newE2E(t, "github", func(c *configs.Server) {
				if tc.inProcess {
					c.RedisURL = ""
				}
			})
			e.baseline("0.90")
			before := e.trainings()

			// The attacker's commit, pushed where mlbot can fetch it.
			evil := e.commit("evil", map[string]string{"params": "0.99\n"}, "mine")
			delivery := e.sb.push(e.hook, e.mainSHA, evil)
			body, err := io.ReadAll(delivery.Body)
			if err != nil {
				t.Fatal(err)
			}
			headers := func(id string) map[string]string {
				return map[string]string{"forge": "github", "delivery": id, "event": "push",
					"received": time.Now().UTC().Format(time.RFC3339Nano)}
			}

			opt := e.rdb.(*redis.Client).Options()
			if tc.inProcess {
				// Without the password the in-process Redis lets nobody in.
				anon := redis.NewClient(&redis.Options{Addr: opt.Addr, MaxRetries: -1})
				defer anon.Close()
				err := anon.Ping(context.Background()).Err()
				if err == nil || !strings.Contains(err.Error(), "NOAUTH") {
					t.Fatalf("unauthenticated PING to the in-process Redis: %v, want NOAUTH", err)
				}
				if err := anon.LPush(context.Background(), "asynq:{events}:pending", "x").Err(); err == nil || !strings.Contains(err.Error(), "NOAUTH") {
					t.Fatalf("unauthenticated write to the in-process Redis: %v, want NOAUTH", err)
				}
				if len(opt.Password) < 32 {
					t.Fatalf("in-process Redis password of %d characters", len(opt.Password))
				}
			}
			// Even with the password (or on a Redis without one) a task
			// mlbot did not sign runs nothing.
			attacker := redis.NewClient(&redis.Options{Addr: opt.Addr, Password: opt.Password, DB: opt.DB})
			defer attacker.Close()
			client := asynq.NewClientFromRedisClient(attacker)
			wrongKey, err := jobs.NewTaskSigner([]byte("an-attackers-own-key-0123456789abcdef"))
			if err != nil {
				t.Fatal(err)
			}
			forged := map[string]*asynq.Task{
				"github:forged-unsigned":  asynq.NewTaskWithHeaders(jobs.TypeWebhook, body, headers("forged-unsigned")),
				"github:forged-wrong-key": wrongKey.NewTaskWithHeaders(jobs.TypeWebhook, body, headers("forged-wrong-key")),
			}
			for id, task := range forged {
				if _, err := client.Enqueue(task, asynq.TaskID(id), asynq.Queue(jobs.QueueEvents), asynq.MaxRetry(20)); err != nil {
					t.Fatalf("enqueue %s: %v", id, err)
				}
			}
			e.settle()
			if ss := e.sb.statuses(evil); len(ss) != 0 {
				t.Errorf("a forged task made mlbot post statuses on %s: %+v", evil[:7], ss)
			}
			if n := e.trainings() - before; n != 0 {
				t.Errorf("forged tasks ran %d trainings", n)
			}
			in := asynq.NewInspectorFromRedisClient(attacker)
			archived, err := in.ListArchivedTasks(jobs.QueueEvents)
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]bool{}
			for _, a := range archived {
				got[a.ID] = true
				if a.Retried != 0 || !strings.Contains(a.LastErr, "signature") {
					t.Errorf("task %s archived after %d retries: %q", a.ID, a.Retried, a.LastErr)
				}
			}
			for id := range forged {
				if !got[id] {
					t.Errorf("forged task %s is not archived (archived: %v)", id, got)
				}
			}

			// The same delivery signed with the install's key runs.
			signed := e.app.worker.Signer().NewTaskWithHeaders(jobs.TypeWebhook, body, headers("signed"))
			if _, err := client.Enqueue(signed, asynq.TaskID("github:signed"), asynq.Queue(jobs.QueueEvents)); err != nil {
				t.Fatal(err)
			}
			if st := e.final(evil); st.State != "success" {
				t.Fatalf("the signed task's status %+v", st)
			}
			e.settle()
			if n := e.trainings() - before; n != 1 {
				t.Errorf("%d trainings after the signed task, want 1", n)
			}
			if a, _ := in.ListArchivedTasks(jobs.QueueEvents); len(a) != len(forged) {
				t.Errorf("%d archived tasks, want only the %d forged", len(a), len(forged))
			}
		})
	}
}

// e2eAPIToken is the MLBOT_API_TOKEN of the end-to-end fixtures.
const e2eAPIToken = "e2e-api-token-0123456789"

// apiGet reads path of mlbot's /api/v1 with the API token and returns the
// body whatever the status (the registry answers 404 for a repository
// without versions), failing the test if the token is refused.
func (e *e2e) apiGet(path string) string {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodGet, e.url+path, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+e2eAPIToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode == http.StatusUnauthorized {
		e.t.Fatalf("GET %s: %d %s %v", path, resp.StatusCode, b, err)
	}
	return string(b)
}

// getWithAuth GETs url with the Authorization header auth (none when
// empty) and returns the answer's code, header and body.
func getWithAuth(t *testing.T, url, auth string) (int, http.Header, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// TestAPIRequiresToken calls /api/v1 of mlbot serve over HTTP: without a
// token configured it is off (404) whatever the caller sends; with one,
// only "Authorization: Bearer <token>" gets in, anything else is 401 with a
// Bearer challenge. Run pages stay open.
func TestAPIRequiresToken(t *testing.T) {
	const token = e2eAPIToken

	t.Run("no token: off", func(t *testing.T) {
		e := newE2E(t, "github", func(c *configs.Server) { c.APIToken = "" })
		for _, auth := range []string{"", "Bearer " + token, "Bearer "} {
			if code, _, _ := getWithAuth(t, e.url+"/api/v1/models", auth); code != http.StatusNotFound {
				t.Errorf("GET /api/v1/models with %q: %d, want 404", auth, code)
			}
		}
	})

	t.Run("token", func(t *testing.T) {
		e := newE2E(t, "github", nil) // the fixtures set e2eAPIToken
		// A baseline that records a model version for the API to list.
		files := e.model("0.90")
		files[".mlbot.yml"] = strings.Replace(files[".mlbot.yml"], "metrics: [metrics.json]", "metrics: [metrics.json]\n  artifacts: [model.txt]", 1)
		e.mainSHA = e.commit("main", files, "model")
		e.send(e.sb.push(e.hook, zeroSHA, e.mainSHA), http.StatusAccepted)
		if st := e.final(e.mainSHA); st.State != "success" {
			t.Fatalf("baseline status %+v", st)
		}
		e.settle()
		const models = "/api/v1/models?repo=acme/model"
		tests := []struct {
			name, path, auth string
			want             int
		}{
			{"missing", models, "", http.StatusUnauthorized},
			{"wrong", models, "Bearer wrong-token-0123456789abcdef", http.StatusUnauthorized},
			{"prefix of the token", models, "Bearer " + token[:len(token)-1], http.StatusUnauthorized},
			{"token plus a byte", models, "Bearer " + token + "x", http.StatusUnauthorized},
			{"basic scheme", models, "Basic " + token, http.StatusUnauthorized},
			{"bare token", "/api/v1/models", token, http.StatusUnauthorized},
			{"unknown API path without token", "/api/v1/runs", "", http.StatusUnauthorized},
			{"API root with a wrong token", "/api/v1/", "Bearer nope", http.StatusUnauthorized},
			{"right", models, "Bearer " + token, http.StatusOK},
			{"scheme in lower case", models, "bearer " + token, http.StatusOK},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				code, h, body := getWithAuth(t, e.url+tt.path, tt.auth)
				if code != tt.want {
					t.Fatalf("GET %s with %q: %d %s, want %d", tt.path, tt.auth, code, body, tt.want)
				}
				if code == http.StatusUnauthorized && !strings.HasPrefix(h.Get("WWW-Authenticate"), "Bearer") {
					t.Errorf("401 without a Bearer challenge: WWW-Authenticate %q", h.Get("WWW-Authenticate"))
				}
				if code == http.StatusOK && !strings.Contains(body, e.mainSHA) {
					t.Errorf("models answer lacks the repository: %s", body)
				}
			})
		}
		// The run page linked from the status needs no token.
		if code, _, _ := getWithAuth(t, e.final(e.mainSHA).TargetURL, ""); code != http.StatusOK {
			t.Errorf("run page: %d, want 200", code)
		}
	})
}
