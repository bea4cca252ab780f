package bot_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mlbot/mlbot/bot"
	"github.com/mlbot/mlbot/bot/github"
	"github.com/mlbot/mlbot/bot/gitlab"
)

// handlerSecret is the webhook secret (GitHub) and token (GitLab) of these tests.
const handlerSecret = "s3cret-for-handler-tests"

// handlerMaxBody is a small body limit, so that the 413 cases stay cheap.
const handlerMaxBody = 64 << 10

// recordingEnqueuer is a bot.Enqueuer that records every delivery it is
// given and answers with err.
type recordingEnqueuer struct {
	mu         sync.Mutex
	err        error
	deliveries []bot.Delivery
}

func (e *recordingEnqueuer) Enqueue(_ context.Context, d bot.Delivery) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.deliveries = append(e.deliveries, d)
	return e.err
}

func (e *recordingEnqueuer) recorded() []bot.Delivery {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]bot.Delivery(nil), e.deliveries...)
}

// handlerFixture reads a real webhook body from testdata/fixtures.
func handlerFixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", "fixtures", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// hubSignature is the X-Hub-Signature-256 GitHub would send for body.
func hubSignature(secret string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// githubHeaders returns the headers of a signed GitHub delivery.
func githubHeaders(event, delivery string, body []byte) http.Header {
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set(github.HeaderSignature256, hubSignature(handlerSecret, body))
	if event != "" {
		h.Set(github.HeaderEvent, event)
	}
	if delivery != "" {
		h.Set(github.HeaderDelivery, delivery)
	}
	return h
}

// gitlabHeaders returns the headers of a GitLab delivery carrying token.
func gitlabHeaders(event, uuid, token string) http.Header {
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set(gitlab.HeaderEvent, event)
	h.Set(gitlab.HeaderEventUUID, uuid)
	if token != "" {
		h.Set(gitlab.HeaderToken, token)
	}
	return h
}

// webhookRequestsTotal reads mlbot_webhook_requests_total{forge,event,code}
// from the default registry, where promauto registered it; 0 when the
// series does not exist yet.
func webhookRequestsTotal(t *testing.T, forge, event, code string) float64 {
	t.Helper()
	families, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range families {
		if mf.GetName() != "mlbot_webhook_requests_total" {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			want := map[string]string{"forge": forge, "event": event, "code": code}
			for _, lp := range m.GetLabel() {
				if v, ok := want[lp.GetName()]; ok && v != lp.GetValue() {
					continue series
				}
			}
			return m.GetCounter().GetValue()
		}
		return 0
	}
	// Before the first request the vector has no series and the family is
	// not gathered at all.
	return 0
}

// onlyReader hides a reader's type, so that net/http cannot learn the
// length of a request body and sends it chunked.
type onlyReader struct{ io.Reader }

func TestWebhookHandler(t *testing.T) {
	push := handlerFixture(t, "github/push.branch.go-scm.json")
	ping := handlerFixture(t, "github/ping.octokit.json")
	checkRun := handlerFixture(t, "github/check_run.completed.octokit.json")
	status := handlerFixture(t, "github/status.octokit.json")
	glPush := handlerFixture(t, "gitlab/push.go-scm.json")
	glTagPush := handlerFixture(t, "gitlab/tag_push.created.go-scm.json")
	malformed := []byte(`{"ref": "refs/heads/main",`)
	huge := bytes.Repeat([]byte("x"), handlerMaxBody+1)
	form := []byte(url.Values{"payload": {string(push)}}.Encode())

	formHeaders := githubHeaders("push", "form-1", form)
	formHeaders.Set("Content-Type", "application/x-www-form-urlencoded")

	badSig := githubHeaders("push", "bad-sig", push)
	badSig.Set(github.HeaderSignature256, hubSignature("not-the-secret", push))
	noSig := githubHeaders("push", "no-sig", push)
	noSig.Del(github.HeaderSignature256)

	tests := []struct {
		name   string
		forge  string // "github" or "gitlab"
		method string
		header http.Header
		body   []byte
		// chunked sends the body without a Content-Length.
		chunked bool
		enqErr  error
		// wantCode and wantEvent are the answer and the metric's event label.
		wantCode  int
		wantEvent string
		// wantDeliveries is how many deliveries reach the enqueuer.
		wantDeliveries int
		wantBody       string
		check          func(t *testing.T, resp *http.Response, ds []bot.Delivery)
	}{
		{
			name: "GET is not allowed", forge: "github", method: http.MethodGet,
			header: http.Header{}, wantCode: http.StatusMethodNotAllowed, wantEvent: "invalid",
			check: func(t *testing.T, resp *http.Response, _ []bot.Delivery) {
				if got := resp.Header.Get("Allow"); got != http.MethodPost {
					t.Errorf("Allow = %q, want POST", got)
				}
			},
		},
		{
			name: "body over the limit by Content-Length", forge: "github",
			header: githubHeaders("push", "too-big", huge), body: huge,
			wantCode: http.StatusRequestEntityTooLarge, wantEvent: "invalid",
		},
		{
			name: "chunked body over the limit", forge: "github", chunked: true,
			header: githubHeaders("push", "too-big-chunked", huge), body: huge,
			wantCode: http.StatusRequestEntityTooLarge, wantEvent: "invalid",
		},
		{
			name: "missing GitHub signature", forge: "github",
			header: noSig, body: push,
			wantCode: http.StatusUnauthorized, wantEvent: "unauthenticated",
		},
		{
			name: "wrong GitHub signature", forge: "github",
			header: badSig, body: push,
			wantCode: http.StatusUnauthorized, wantEvent: "unauthenticated",
		},
		{
			name: "missing GitLab token", forge: "gitlab",
			header: gitlabHeaders(gitlab.EventPush, "gl-no-token", ""), body: glPush,
			wantCode: http.StatusUnauthorized, wantEvent: "unauthenticated",
		},
		{
			name: "wrong GitLab token", forge: "gitlab",
			header: gitlabHeaders(gitlab.EventPush, "gl-bad-token", "not-the-token"), body: glPush,
			wantCode: http.StatusUnauthorized, wantEvent: "unauthenticated",
		},
		{
			name: "malformed JSON with a valid signature", forge: "github",
			header: githubHeaders("push", "malformed", malformed), body: malformed,
			wantCode: http.StatusBadRequest, wantEvent: "push",
		},
		{
			name: "missing event header", forge: "github",
			header: githubHeaders("", "no-event", push), body: push,
			wantCode: http.StatusBadRequest, wantEvent: "other",
		},
		{
			name: "GitHub ping", forge: "github",
			header: githubHeaders("ping", "ping-1", ping), body: ping,
			wantCode: http.StatusOK, wantEvent: "ping", wantBody: "pong",
		},
		{
			name: "ignored event type", forge: "github",
			header: githubHeaders("status", "status-1", status), body: status,
			wantCode: http.StatusOK, wantEvent: "other", wantBody: "ignored",
		},
		{
			// Check runs reach a worker only when someone pressed a button.
			name: "check run completed", forge: "github",
			header: githubHeaders("check_run", "check-run-1", checkRun), body: checkRun,
			wantCode: http.StatusOK, wantEvent: "check_run", wantBody: "not routed",
		},
		{
			name: "accepted GitHub push", forge: "github",
			header: githubHeaders("push", "push-1", push), body: push,
			wantCode: http.StatusAccepted, wantEvent: "push", wantDeliveries: 1,
			check: func(t *testing.T, _ *http.Response, ds []bot.Delivery) {
				d := ds[0]
				if d.Forge != "github" || d.ID != "push-1" || d.Type != "push" {
					t.Errorf("delivery = %s/%s/%s, want github/push-1/push", d.Forge, d.ID, d.Type)
				}
				if !bytes.Equal(d.Body, push) {
					t.Errorf("delivery body differs from the request body")
				}
				if d.ReceivedAt.IsZero() {
					t.Errorf("delivery has no ReceivedAt")
				}
			},
		},
		{
			name: "accepted GitLab push", forge: "gitlab",
			header: gitlabHeaders(gitlab.EventPush, "gl-uuid-1", handlerSecret), body: glPush,
			wantCode: http.StatusAccepted, wantEvent: gitlab.EventPush, wantDeliveries: 1,
			check: func(t *testing.T, _ *http.Response, ds []bot.Delivery) {
				d := ds[0]
				if d.Forge != "gitlab" || d.ID != "gl-uuid-1" || d.Type != gitlab.EventPush || !bytes.Equal(d.Body, glPush) {
					t.Errorf("delivery = %s/%s/%s (%d bytes), want gitlab/gl-uuid-1/%s with the request body",
						d.Forge, d.ID, d.Type, len(d.Body), gitlab.EventPush)
				}
			},
		},
		{
			// GitLab System Hooks carry every kind of event under one event
			// type; the handler asks the webhook (bot.Prechecker) whether
			// the body's kind is routed before anything is queued.
			name: "GitLab System Hook push", forge: "gitlab",
			header: gitlabHeaders(gitlab.EventSystem, "gl-sys-1", handlerSecret), body: glPush,
			wantCode: http.StatusAccepted, wantEvent: gitlab.EventSystem, wantDeliveries: 1,
		},
		{
			name: "GitLab System Hook of a kind not routed", forge: "gitlab",
			header: gitlabHeaders(gitlab.EventSystem, "gl-sys-2", handlerSecret), body: glTagPush,
			wantCode: http.StatusOK, wantEvent: gitlab.EventSystem,
		},
		{
			name: "GitLab System Hook naming no kind", forge: "gitlab",
			header: gitlabHeaders(gitlab.EventSystem, "gl-sys-3", handlerSecret), body: []byte(`{"project": {"id": 1}}`),
			wantCode: http.StatusBadRequest, wantEvent: gitlab.EventSystem,
		},
		{
			name: "duplicate delivery", forge: "github",
			header: githubHeaders("push", "dup-1", push), body: push, enqErr: bot.ErrDuplicateDelivery,
			wantCode: http.StatusOK, wantEvent: "push", wantDeliveries: 1, wantBody: "duplicate",
		},
		{
			name: "queue unavailable", forge: "github",
			header: githubHeaders("push", "down-1", push), body: push, enqErr: errors.New("dial tcp: connection refused"),
			wantCode: http.StatusServiceUnavailable, wantEvent: "push", wantDeliveries: 1,
			check: func(t *testing.T, resp *http.Response, _ []bot.Delivery) {
				if resp.Header.Get("Retry-After") == "" {
					t.Errorf("503 without Retry-After")
				}
			},
		},
		{
			name: "form-encoded GitHub delivery", forge: "github",
			header: formHeaders, body: form,
			wantCode: http.StatusAccepted, wantEvent: "push", wantDeliveries: 1,
			check: func(t *testing.T, _ *http.Response, ds []bot.Delivery) {
				if !bytes.Equal(ds[0].Body, push) {
					t.Errorf("delivery body is not the JSON of the payload field:\n%.200s", ds[0].Body)
				}
			},
		},
		{
			name: "form-encoded body without a payload field", forge: "github",
			header: func() http.Header {
				b := []byte("other=1")
				h := githubHeaders("push", "form-2", b)
				h.Set("Content-Type", "application/x-www-form-urlencoded")
				return h
			}(), body: []byte("other=1"),
			wantCode: http.StatusBadRequest, wantEvent: "push",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			enq := &recordingEnqueuer{err: tc.enqErr}
			var wh bot.Webhook = &github.Webhook{Secret: []byte(handlerSecret)}
			if tc.forge == "gitlab" {
				wh = &gitlab.Webhook{Secret: []byte(handlerSecret)}
			}
			srv := httptest.NewServer(bot.NewWebhookHandler(bot.HandlerOptions{
				Webhook: wh, Enqueuer: enq, MaxBodyBytes: handlerMaxBody,
				Logger: slog.New(slog.DiscardHandler),
			}))
			defer srv.Close()

			method := tc.method
			if method == "" {
				method = http.MethodPost
			}
			var body io.Reader
			if tc.body != nil {
				body = bytes.NewReader(tc.body)
				if tc.chunked {
					body = onlyReader{body}
				}
			}
			req, err := http.NewRequest(method, srv.URL, body)
			if err != nil {
				t.Fatal(err)
			}
			req.Header = tc.header.Clone()
			if tc.chunked && req.ContentLength != 0 {
				t.Fatalf("request has Content-Length %d, want none (chunked)", req.ContentLength)
			}

			before := webhookRequestsTotal(t, tc.forge, tc.wantEvent, strconv.Itoa(tc.wantCode))
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			respBody, _ := io.ReadAll(resp.Body)

			if resp.StatusCode != tc.wantCode {
				t.Fatalf("status = %d, want %d; body %s", resp.StatusCode, tc.wantCode, respBody)
			}
			var msg struct{ Message string }
			if err := json.Unmarshal(respBody, &msg); err != nil {
				t.Errorf("answer is not JSON: %v: %s", err, respBody)
			}
			if tc.wantBody != "" && !strings.Contains(msg.Message, tc.wantBody) {
				t.Errorf("message = %q, want it to contain %q", msg.Message, tc.wantBody)
			}
			ds := enq.recorded()
			if len(ds) != tc.wantDeliveries {
				t.Fatalf("enqueued %d deliveries, want %d", len(ds), tc.wantDeliveries)
			}
			if tc.check != nil {
				tc.check(t, resp, ds)
			}
			after := webhookRequestsTotal(t, tc.forge, tc.wantEvent, strconv.Itoa(tc.wantCode))
			if after-before != 1 {
				t.Errorf("mlbot_webhook_requests_total{forge=%q,event=%q,code=%q} went from %v to %v, want +1",
					tc.forge, tc.wantEvent, strconv.Itoa(tc.wantCode), before, after)
			}
		})
	}
}

// TestWebhookHandlerRefusesBeforeReading checks that a declared
// Content-Length over the limit is refused without reading the body at all.
func TestWebhookHandlerRefusesBeforeReading(t *testing.T) {
	enq := &recordingEnqueuer{}
	h := bot.NewWebhookHandler(bot.HandlerOptions{
		Webhook: &github.Webhook{Secret: []byte(handlerSecret)}, Enqueuer: enq,
		MaxBodyBytes: handlerMaxBody, Logger: slog.New(slog.DiscardHandler),
	})
	body := &countingReader{}
	req := httptest.NewRequest(http.MethodPost, "/webhooks/github", body)
	req.ContentLength = handlerMaxBody + 1
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusRequestEntityTooLarge {
		t.Fatalf("status = %d, want 413", rec.Code)
	}
	if body.n != 0 {
		t.Errorf("handler read %d bytes of a body it had to refuse by its length", body.n)
	}
}

// countingReader is an endless body that counts what was read of it.
type countingReader struct{ n int }

func (c *countingReader) Read(p []byte) (int, error) {
	c.n += len(p)
	return len(p), nil
}

// TestWebhookHandlerBodyHashDeliveryID checks that a delivery without
// X-GitHub-Delivery gets an id derived from its body: the same body twice
// gives the same id, a different body a different one.
func TestWebhookHandlerBodyHashDeliveryID(t *testing.T) {
	enq := &recordingEnqueuer{}
	srv := httptest.NewServer(bot.NewWebhookHandler(bot.HandlerOptions{
		Webhook: &github.Webhook{Secret: []byte(handlerSecret)}, Enqueuer: enq,
		Logger: slog.New(slog.DiscardHandler),
	}))
	defer srv.Close()

	send := func(body []byte) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, srv.URL, bytes.NewReader(body))
		req.Header = githubHeaders("push", "", body)
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("status = %d, want 202", resp.StatusCode)
		}
	}
	push := handlerFixture(t, "github/push.branch.go-scm.json")
	other := handlerFixture(t, "github/push.branch-created.octokit.json")
	send(push)
	send(push)
	send(other)

	ds := enq.recorded()
	if len(ds) != 3 {
		t.Fatalf("enqueued %d deliveries, want 3", len(ds))
	}
	if ds[0].ID == "" || !strings.HasPrefix(ds[0].ID, "sha256-") {
		t.Errorf("id = %q, want a sha256- body hash", ds[0].ID)
	}
	if ds[0].ID != ds[1].ID {
		t.Errorf("same body got ids %q and %q, want one", ds[0].ID, ds[1].ID)
	}
	if ds[0].ID == ds[2].ID {
		t.Errorf("different bodies share the id %q", ds[0].ID)
	}
}
