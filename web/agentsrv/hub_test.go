package agentsrv

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mlbot/mlbot/internal/redistest"
	"github.com/mlbot/mlbot/jobs/store"
	"github.com/mlbot/mlbot/runners"
	"github.com/mlbot/mlbot/runners/agentapi"
)

// agentsrvRedisDB is this package's own Redis database (see redistest).
const agentsrvRedisDB = 13

// fixture is a Hub on an empty database and a fresh data dir, served by
// an httptest server.
type fixture struct {
	hub     *Hub
	store   *store.Store
	srv     *httptest.Server
	dataDir string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	c := redis.NewClient(redistest.Options(t, agentsrvRedisDB))
	t.Cleanup(func() { c.Close() })
	st := store.New(c, "mlbot:")
	dataDir := t.TempDir()
	hub, err := New(st, dataDir, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(hub.Handler())
	t.Cleanup(srv.Close)
	return &fixture{hub: hub, store: st, srv: srv, dataDir: dataDir}
}

// testJob is the job the tests open runs with.
func testJob() agentapi.Job {
	return agentapi.Job{
		Steps:     []runners.Step{{Name: "train", Command: "true"}, {Name: "evaluate", Command: "true"}},
		Env:       []string{"PATH=/usr/bin:/bin"},
		Timeout:   agentapi.Duration(time.Minute),
		Metrics:   []string{"metrics.json", "./eval/extra.json"},
		Artifacts: []string{"model.pt", "out", "ckpt/**/*.bin"},
	}
}

// checkout makes a small checkout to open runs on.
func checkout(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"train.py": "print('hi')\n", "data/x.csv": "a,b\n"})
	return dir
}

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for p, body := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// open opens run id and returns a client holding its token.
func (f *fixture) open(t *testing.T, id string, job agentapi.Job, ttl time.Duration) *agentapi.Client {
	t.Helper()
	sess, err := f.hub.Open(context.Background(), id, job, checkout(t), ttl)
	if err != nil {
		t.Fatal(err)
	}
	if sess.Attached || len(sess.Token) < 32 {
		t.Fatalf("Open(%s) = %+v, want a fresh session with a token", id, sess)
	}
	return f.client(t, sess.Token)
}

func (f *fixture) client(t *testing.T, token string) *agentapi.Client {
	t.Helper()
	c, err := agentapi.NewClient(f.srv.URL, token)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// do sends a raw request with token and returns the answer's status,
// headers and body.
func (f *fixture) do(t *testing.T, method, rawPath, token string, body io.Reader, hdr map[string]string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, f.srv.URL+rawPath, body)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

const runA, runB = "0123456789abcdef0123456789abcdef", "fedcba9876543210fedcba9876543210"

func TestOpenIsIdempotent(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	c := f.open(t, runA, testJob(), time.Hour)
	job := testJob()
	job.Steps = job.Steps[:1]
	again, err := f.hub.Open(ctx, runA, job, checkout(t), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if !again.Attached || again.Token != "" {
		t.Fatalf("second Open = %+v, want Attached and no token", again)
	}
	got, err := c.GetJob(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got.RunID != runA || len(got.Steps) != 2 || got.Steps[1].Name != "evaluate" || time.Duration(got.Timeout) != time.Minute {
		t.Errorf("job after a second Open = %+v, want the first one", got)
	}
	for _, bad := range []string{"", "../x", "a/b", ".hidden", strings.Repeat("a", 200)} {
		if _, err := f.hub.Open(ctx, bad, job, checkout(t), time.Hour); err == nil {
			t.Errorf("Open(%q): no error for a bad run id", bad)
		}
	}
	st, err := os.Stat(filepath.Join(f.dataDir, "agent", runA))
	if err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("run directory: %v, %v; want mode 0700", st.Mode(), err)
	}
	st, err = os.Stat(filepath.Join(f.dataDir, "agent", runA, sourceName))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("source archive: %v, %v; want mode 0600", st.Mode(), err)
	}
}

// TestAuth attacks the bearer check: every path answers 401 without a
// token of an open run, and a token reaches its own run only.
func TestAuth(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	a := f.open(t, runA, testJob(), time.Hour)
	jobB := testJob()
	jobB.Metrics = []string{"b.json"}
	sessB, err := f.hub.Open(ctx, runB, jobB, checkout(t), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	sessShort, err := f.hub.Open(ctx, "short", testJob(), checkout(t), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	closed, err := f.hub.Open(ctx, "closed", testJob(), checkout(t), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.hub.Close(ctx, "closed"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond) // "short" expires

	bad := []struct {
		name, header string
	}{
		{"no header", ""},
		{"not bearer", "Basic " + sessB.Token},
		{"empty token", "Bearer "},
		{"wrong token", "Bearer " + strings.Repeat("0", 64)},
		{"token with a suffix", "Bearer " + sessB.Token + "x"},
		{"huge token", "Bearer " + strings.Repeat("a", 10000)},
		{"expired token", "Bearer " + sessShort.Token},
		{"closed run's token", "Bearer " + closed.Token},
	}
	paths := []struct{ method, path string }{
		{http.MethodGet, agentapi.PathJob},
		{http.MethodGet, agentapi.PathSource},
		{http.MethodPatch, agentapi.PathLog},
		{http.MethodPut, agentapi.PathFiles + "metrics/metrics.json"},
		{http.MethodPost, agentapi.PathSteps},
		{http.MethodPost, agentapi.PathDone},
		{http.MethodGet, "/api/v1/agent/nothing"},
	}
	for _, b := range bad {
		for _, p := range paths {
			req, _ := http.NewRequest(p.method, f.srv.URL+p.path, strings.NewReader("x"))
			if b.header != "" {
				req.Header.Set("Authorization", b.header)
			}
			req.Header.Set("Content-Range", "bytes 0-0/*")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized || strings.TrimSpace(string(body)) != "unauthorized" {
				t.Errorf("%s: %s %s = %d %q, want 401 with no detail", b.name, p.method, p.path, resp.StatusCode, body)
			}
		}
	}
	if st, _ := f.store.GetAgent(ctx, runA); st.LogBytes != 0 {
		t.Errorf("refused requests wrote %d log bytes", st.LogBytes)
	}

	// Run B's token reaches run B only: its job, its log.
	b := f.client(t, sessB.Token)
	job, err := b.GetJob(ctx)
	if err != nil || job.RunID != runB || job.Metrics[0] != "b.json" {
		t.Errorf("B's token fetched job %+v, %v; want B's", job, err)
	}
	if _, err := b.AppendLog(ctx, 0, []byte("from B\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := a.AppendLog(ctx, 0, []byte("from A\n")); err != nil {
		t.Fatal(err)
	}
	var logA bytes.Buffer
	if _, err := f.hub.ReadLog(ctx, runA, 0, &logA); err != nil || logA.String() != "from A\n" {
		t.Errorf("run A's log = %q, %v; want only A's line", logA.String(), err)
	}
	// Closing A revokes A's token, not B's.
	if err := f.hub.Close(ctx, runA); err != nil {
		t.Fatal(err)
	}
	var se *agentapi.StatusError
	if _, err := a.GetJob(ctx); !errors.As(err, &se) || se.Code != http.StatusUnauthorized {
		t.Errorf("A's token after Close: %v, want 401", err)
	}
	if _, err := b.GetJob(ctx); err != nil {
		t.Errorf("B's token after A's Close: %v", err)
	}
	if _, err := os.Stat(filepath.Join(f.dataDir, "agent", runA)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("A's directory after Close: %v, want it gone", err)
	}
}

func TestLogByOffset(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	c := f.open(t, runA, testJob(), time.Hour)
	steps := []struct {
		offset int64
		chunk  string
		want   int64
		refuse bool
	}{
		{0, "line 1\n", 7, false},
		{0, "line 1\n", 7, true}, // a lost answer's resend
		{9, "line 3\n", 7, true}, // a gap
		{7, "line 2\n", 14, false},
		{14, "", 14, false}, // an empty chunk asks where the log ends
	}
	for i, s := range steps {
		n, err := c.AppendLog(ctx, s.offset, []byte(s.chunk))
		var oe *agentapi.OffsetError
		switch {
		case s.refuse && (!errors.As(err, &oe) || oe.Have != s.want):
			t.Fatalf("step %d: AppendLog(%d) = %d, %v; want an *OffsetError with %d", i, s.offset, n, err, s.want)
		case !s.refuse && (err != nil || n != s.want):
			t.Fatalf("step %d: AppendLog(%d) = %d, %v; want %d", i, s.offset, n, err, s.want)
		}
	}
	var buf bytes.Buffer
	off, err := f.hub.ReadLog(ctx, runA, 0, &buf)
	if err != nil || off != 14 || buf.String() != "line 1\nline 2\n" {
		t.Errorf("ReadLog = %q, %d, %v", buf.String(), off, err)
	}
	buf.Reset()
	if off, err := f.hub.ReadLog(ctx, runA, 7, &buf); err != nil || off != 14 || buf.String() != "line 2\n" {
		t.Errorf("ReadLog(7) = %q, %d, %v", buf.String(), off, err)
	}

	tok := f.reopenToken(t, "raw")
	big := strings.Repeat("x", agentapi.MaxLogChunkBytes+1)
	bad := []struct {
		name  string
		rng   string
		body  string
		want  int
		check string
	}{
		{"no Content-Range", "", "abc", http.StatusBadRequest, ""},
		{"malformed Content-Range", "bytes=0-2", "abc", http.StatusBadRequest, ""},
		{"negative offset", "bytes -1-2/*", "abc", http.StatusBadRequest, ""},
		{"length mismatch", "bytes 0-9/*", "abc", http.StatusBadRequest, ""},
		{"chunk too large", agentapi.ContentRange(0, len(big)), big, http.StatusRequestEntityTooLarge, ""},
		{"range too large", agentapi.ContentRange(0, agentapi.MaxLogChunkBytes+1), "abc", http.StatusRequestEntityTooLarge, ""},
		{"offset mismatch", "bytes 5-7/*", "abc", http.StatusRequestedRangeNotSatisfiable, "0"},
		{"accepted", "bytes 0-2/*", "abc", http.StatusAccepted, "3"},
	}
	for _, b := range bad {
		hdr := map[string]string{}
		if b.rng != "" {
			hdr["Content-Range"] = b.rng
		}
		code, h, body := f.do(t, http.MethodPatch, agentapi.PathLog, tok, strings.NewReader(b.body), hdr)
		if code != b.want || h.Get(agentapi.HeaderLogOffset) != b.check {
			t.Errorf("%s: %d, offset %q (%s); want %d, offset %q", b.name, code, h.Get(agentapi.HeaderLogOffset), strings.TrimSpace(body), b.want, b.check)
		}
	}
}

// TestFollowerResumes: a follower copies the log and marks how far; a
// second follower of the same run (a worker re-attaching after the first
// died) goes on from that mark, so that the job's output gets every line
// once; a run opened afresh after a close starts from zero again.
func TestFollowerResumes(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	c := f.open(t, runA, testJob(), time.Hour)
	if _, err := c.AppendLog(ctx, 0, []byte("epoch 1\n")); err != nil {
		t.Fatal(err)
	}
	var first bytes.Buffer
	if _, err := agentapi.NewFollower(f.hub, runA, &first).Poll(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.AppendLog(ctx, 8, []byte("epoch 2\n")); err != nil {
		t.Fatal(err)
	}
	var second bytes.Buffer
	fw := agentapi.NewFollower(f.hub, runA, &second)
	st, err := fw.Poll(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if first.String() != "epoch 1\n" || second.String() != "epoch 2\n" {
		t.Errorf("first follower copied %q, the second %q; want each line once", first.String(), second.String())
	}
	if st.Copied != 16 || fw.Offset() != 16 {
		t.Errorf("Copied = %d, Offset = %d after the second follower; want 16", st.Copied, fw.Offset())
	}
	if err := f.hub.Close(ctx, runA); err != nil {
		t.Fatal(err)
	}
	c = f.open(t, runA, testJob(), time.Hour)
	if _, err := c.AppendLog(ctx, 0, []byte("again\n")); err != nil {
		t.Fatal(err)
	}
	var third bytes.Buffer
	if _, err := agentapi.NewFollower(f.hub, runA, &third).Poll(ctx); err != nil || third.String() != "again\n" {
		t.Errorf("a follower of the run opened afresh copied %q, %v; want its whole new log", third.String(), err)
	}
	if err := f.hub.MarkCopied(ctx, runB, 1); err == nil {
		t.Errorf("MarkCopied of a run never opened succeeded")
	}
}

// reopenToken opens run id and returns its token.
func (f *fixture) reopenToken(t *testing.T, id string) string {
	t.Helper()
	sess, err := f.hub.Open(context.Background(), id, testJob(), checkout(t), time.Hour)
	if err != nil || sess.Token == "" {
		t.Fatalf("Open(%s) = %+v, %v", id, sess, err)
	}
	return sess.Token
}

// TestReadLogPastTheCap checks that a log past what the store keeps reads
// as its kept part, one line saying it was cut, and an offset at the full
// length, once.
func TestReadLogPastTheCap(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	c := f.open(t, runA, testJob(), time.Hour)
	chunk := bytes.Repeat([]byte("y"), agentapi.MaxLogChunkBytes)
	var off int64
	for off < store.MaxAgentLogBytes {
		n, err := c.AppendLog(ctx, off, chunk)
		if err != nil {
			t.Fatal(err)
		}
		off = n
	}
	var buf bytes.Buffer
	got, err := f.hub.ReadLog(ctx, runA, 0, &buf)
	if err != nil || got != store.MaxAgentLogBytes || buf.Len() != store.MaxAgentLogBytes {
		t.Fatalf("ReadLog at the cap = %d (%d bytes written), %v; want %d", got, buf.Len(), err, store.MaxAgentLogBytes)
	}
	if off, err = c.AppendLog(ctx, off, []byte("dropped\n")); err != nil {
		t.Fatal(err)
	}
	buf.Reset()
	got, err = f.hub.ReadLog(ctx, runA, got, &buf)
	if err != nil || got != off || !strings.Contains(buf.String(), "cut after 16777216 bytes") {
		t.Fatalf("ReadLog past the cap = %q, %d, %v; want the cut notice and offset %d", buf.String(), got, err, off)
	}
	buf.Reset()
	if got, err = f.hub.ReadLog(ctx, runA, got, &buf); err != nil || got != off || buf.Len() != 0 {
		t.Errorf("ReadLog again = %q, %d, %v; want nothing more", buf.String(), got, err)
	}
	st, err := f.hub.State(ctx, runA)
	if err != nil || st.LogBytes != off {
		t.Errorf("State = %+v, %v; want LogBytes %d", st, err, off)
	}
}

func TestStepsAndDone(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	c := f.open(t, runA, testJob(), time.Hour)
	train := agentapi.StepReport{Index: 0, Name: "train", ExitCode: 0, Duration: agentapi.Duration(3 * time.Second)}
	if err := c.ReportStep(ctx, train); err != nil {
		t.Fatal(err)
	}
	// A retry (its answer lost) is harmless.
	if err := c.ReportStep(ctx, train); err != nil {
		t.Fatal(err)
	}
	var se *agentapi.StatusError
	if err := c.ReportStep(ctx, agentapi.StepReport{Index: 5, Name: "x"}); !errors.As(err, &se) || se.Code != http.StatusBadRequest {
		t.Errorf("a step index past the job's steps: %v, want 400", err)
	}
	evaluate := agentapi.StepReport{Index: 1, Name: "evaluate", ExitCode: 3, TimedOut: true}
	if err := c.ReportStep(ctx, evaluate); err != nil {
		t.Fatal(err)
	}
	if code, _, _ := f.do(t, http.MethodPost, agentapi.PathSteps, f.reopenToken(t, "gap"), strings.NewReader(`{"index":1}`), nil); code != http.StatusConflict {
		t.Errorf("a report skipping step 0: %d, want 409", code)
	}
	tok := f.reopenToken(t, "junk")
	if code, _, _ := f.do(t, http.MethodPost, agentapi.PathSteps, tok, strings.NewReader(`{"index":`), nil); code != http.StatusBadRequest {
		t.Errorf("malformed JSON: %d, want 400", code)
	}
	if code, _, _ := f.do(t, http.MethodPost, agentapi.PathDone, tok, strings.NewReader(`"`+strings.Repeat("a", maxJSONBytes)+`"`), nil); code != http.StatusRequestEntityTooLarge {
		t.Errorf("huge body: %d, want 413", code)
	}
	if code, _, _ := f.do(t, http.MethodGet, agentapi.PathDone, tok, nil, nil); code != http.StatusMethodNotAllowed {
		t.Errorf("GET of PathDone: %d, want 405", code)
	}

	st, err := f.hub.State(ctx, runA)
	if err != nil {
		t.Fatal(err)
	}
	if st.Done || len(st.Steps) != 2 || st.Steps[0] != train || st.Steps[1] != evaluate {
		t.Fatalf("State = %+v, want train and evaluate, not done", st)
	}
	if err := c.ReportDone(ctx, agentapi.Done{Error: "upload failed"}); err != nil {
		t.Fatal(err)
	}
	if err := c.ReportDone(ctx, agentapi.Done{}); err != nil {
		t.Fatal(err)
	}
	st, err = f.hub.State(ctx, runA)
	if err != nil || !st.Done || st.Error != "upload failed" {
		t.Errorf("State after Done = %+v, %v; want done with the first Done's error", st, err)
	}
	res := agentapi.JobResult(st, "log")
	if len(res.Steps) != 2 || !res.Steps[0].Succeeded() || res.Steps[1].ExitCode != 3 || !res.Steps[1].TimedOut || res.Steps[0].Duration != 3*time.Second {
		t.Errorf("JobResult = %+v", res)
	}
}

// TestSweep removes the directory of a run whose session expired without
// a Close, and keeps those of open runs and of recent ones.
func TestSweep(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	f.open(t, runA, testJob(), time.Hour)
	f.open(t, runB, testJob(), time.Hour)
	// B's session ends as an expiry would: its keys go, its files stay.
	if err := f.store.CloseAgent(ctx, runB); err != nil {
		t.Fatal(err)
	}
	if n, err := f.hub.Sweep(ctx, time.Hour); err != nil || n != 0 {
		t.Errorf("Sweep(1h) = %d, %v; want nothing removed: the directories are new", n, err)
	}
	if n, err := f.hub.Sweep(ctx, 0); err != nil || n != 1 {
		t.Errorf("Sweep(0) = %d, %v; want B's directory removed", n, err)
	}
	if _, err := os.Stat(filepath.Join(f.dataDir, "agent", runB)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("B's directory: %v, want it gone", err)
	}
	if _, err := os.Stat(filepath.Join(f.dataDir, "agent", runA, sourceName)); err != nil {
		t.Errorf("A's source after Sweep: %v", err)
	}
}

// TestLimitsAgree keeps the store's bound of a metric file the contract's.
func TestLimitsAgree(t *testing.T) {
	if store.MaxAgentMetricBytes != agentapi.MaxMetricFileBytes {
		t.Errorf("store.MaxAgentMetricBytes = %d, agentapi.MaxMetricFileBytes = %d", store.MaxAgentMetricBytes, agentapi.MaxMetricFileBytes)
	}
}
