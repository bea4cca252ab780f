package web

import (
	"bufio"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mlbot/mlbot/jobs/report"
	"github.com/mlbot/mlbot/jobs/store"
)

// sseEvent is one event of a stream.
type sseEvent struct {
	id, name, data string
}

// readEvents reads events from an SSE body until it ends or n events came.
func readEvents(t *testing.T, resp *http.Response, n int) []sseEvent {
	t.Helper()
	var (
		out  []sseEvent
		cur  sseEvent
		data []string
		seen bool
	)
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if seen {
				cur.data = strings.Join(data, "\n")
				out = append(out, cur)
				if len(out) == n {
					return out
				}
			}
			cur, data, seen = sseEvent{}, nil, false
		case strings.HasPrefix(line, "id: "):
			cur.id, seen = line[4:], true
		case strings.HasPrefix(line, "event: "):
			cur.name, seen = line[7:], true
		case strings.HasPrefix(line, "data: "):
			data, seen = append(data, line[6:]), true
		}
	}
	return out
}

// The run page streams a running run's log from the store as it grows,
// resumes from Last-Event-ID, and ends with the outcome once the run is
// finished and every byte was sent.
func TestLogStreamFollowsARunningRun(t *testing.T) {
	ctx := context.Background()
	st := store.New(testRedis(t), "mlbot:")
	run := &store.Run{ID: "0123456789abcdef0123456789ab4444", Kind: store.KindPullRequest, SHA: strings.Repeat("b", 40), State: store.RunRunning, Created: time.Now()}
	if _, err := st.CreateRun(ctx, run); err != nil {
		t.Fatal(err)
	}
	srv := New(Options{Runs: st, Logs: st})
	mux := http.NewServeMux()
	srv.Register(mux)
	ts := httptest.NewServer(mux)
	defer ts.Close()

	if _, err := st.AppendRunLog(ctx, run.ID, []byte("epoch 1 loss 0.9\n")); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(ts.URL + "/runs/" + run.ID + "/log/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q", ct)
	}
	ev := readEvents(t, resp, 1)
	if len(ev) != 1 || ev[0].name != "log" || ev[0].data != "epoch 1 loss 0.9\n" || ev[0].id != "17" {
		t.Fatalf("first event %+v", ev)
	}
	// A line printed while the page is open arrives without a reload.
	st.AppendRunLog(ctx, run.ID, []byte("epoch 2 loss 0.5\r\npartial"))
	ev = readEvents(t, resp, 1)
	if len(ev) != 1 || ev[0].data != "epoch 2 loss 0.5\npartial" || ev[0].id != "42" {
		t.Fatalf("second event %+v", ev)
	}
	// The run ends: the rest of the log, then the outcome.
	st.AppendRunLog(ctx, run.ID, []byte(" line\nmlbot: 2 metrics collected\n"))
	run.State, run.Outcome = store.RunFinished, report.OutcomePassed
	if err := st.SaveRun(ctx, run); err != nil {
		t.Fatal(err)
	}
	ev = readEvents(t, resp, 2)
	if len(ev) != 2 || ev[0].data != " line\nmlbot: 2 metrics collected\n" || ev[1].name != "end" || ev[1].data != "passed" {
		t.Fatalf("last events %+v", ev)
	}

	// A reconnecting EventSource sends the id it saw last and gets the rest only.
	req, _ := http.NewRequest(http.MethodGet, ts.URL+"/runs/"+run.ID+"/log/stream", nil)
	req.Header.Set("Last-Event-ID", "17")
	resp2, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp2.Body.Close()
	ev = readEvents(t, resp2, 2)
	if len(ev) != 2 || !strings.HasPrefix(ev[0].data, "epoch 2 loss 0.5\n") || ev[1].name != "end" {
		t.Fatalf("resumed stream %+v", ev)
	}

	// The page of a finished run shows the stored log and no stream.
	page, err := http.Get(ts.URL + "/runs/" + run.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer page.Body.Close()
	body := new(strings.Builder)
	bufio.NewReader(page.Body).WriteTo(body)
	if !strings.Contains(body.String(), "mlbot: 2 metrics collected") || strings.Contains(body.String(), "live.js") {
		t.Errorf("finished run page:\n%s", body)
	}
	for _, bad := range []string{"/runs/nope/log/stream", "/runs/0123456789abcdef0123456789ab9999/log/stream"} {
		r, _ := http.Get(ts.URL + bad)
		if r.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s = %d, want 404", bad, r.StatusCode)
		}
		r.Body.Close()
	}
}

// A running run's page loads the live script from this origin only and
// starts the stream where the page's log stops.
func TestRunPageOfARunningRunIsLive(t *testing.T) {
	ctx := context.Background()
	st := store.New(testRedis(t), "mlbot:")
	run := &store.Run{ID: "0123456789abcdef0123456789ab5555", Kind: store.KindPullRequest, SHA: strings.Repeat("c", 40), State: store.RunRunning, Created: time.Now()}
	st.CreateRun(ctx, run)
	st.AppendRunLog(ctx, run.ID, []byte("hello <b>\n"))
	srv := New(Options{Runs: st, Logs: st})
	mux := http.NewServeMux()
	srv.Register(mux)
	ts := httptest.NewServer(mux)
	defer ts.Close()
	resp, err := http.Get(ts.URL + "/runs/" + run.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b := new(strings.Builder)
	bufio.NewReader(resp.Body).WriteTo(b)
	for _, want := range []string{`data-live="/runs/` + run.ID + `/log/stream?from=10"`, `<script src="/assets/live.js">`, "hello &lt;b&gt;"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("page lacks %s:\n%s", want, b)
		}
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || resp.Header.Get("Refresh") != "" {
		t.Errorf("CSP %q, Refresh %q", csp, resp.Header.Get("Refresh"))
	}
	js, err := http.Get(ts.URL + "/assets/live.js")
	if err != nil || js.StatusCode != 200 {
		t.Fatalf("live.js: %v %v", js, err)
	}
	js.Body.Close()
}
