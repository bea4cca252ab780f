package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/mlbot/mlbot/configs"
	"github.com/mlbot/mlbot/internal/redistest"
)

// sentinelDelivery is one webhook the test sent, kept so that it can be
// sent again byte for byte, as a host's "redeliver" button does.
type sentinelDelivery struct {
	sha    string
	url    string
	header http.Header
	body   []byte
	codes  []int
}

// deliver sends d once more and records the answer; a transport error
// (none is expected: mlbot stays up) counts as 0.
func (d *sentinelDelivery) deliver() int {
	req, err := http.NewRequest(http.MethodPost, d.url, bytes.NewReader(d.body))
	if err != nil {
		panic(err)
	}
	req.Header = d.header.Clone()
	code := 0
	if resp, err := http.DefaultClient.Do(req); err == nil {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		code = resp.StatusCode
	}
	d.codes = append(d.codes, code)
	return code
}

// readyz returns the status code of mlbot's /readyz.
func readyz(base string) int {
	resp, err := http.Get(base + "/readyz")
	if err != nil {
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// TestSentinelFailover runs mlbot serve and its workers on a Redis primary
// with one replica behind three real sentinels, and SIGKILLs the primary
// while webhooks flow. The promise: a webhook mlbot acknowledged (2xx) is
// never lost, every one answered 503 during the failover is accepted when
// redelivered, every pull request head gets exactly one run and one final
// status, and /readyz reports the outage and the recovery.
func TestSentinelFailover(t *testing.T) {
	s := redistest.StartSentinels(t)
	oldPrimary := s.Primary
	e := newE2E(t, "github", func(cfg *configs.Server) { cfg.RedisURL = s.URL(0, "") })
	if e.app.waitReplicas != 1 {
		t.Fatalf("a sentinel URL without wait_replicas waits for %d replicas, want 1", e.app.waitReplicas)
	}
	e.baseline("0.9")
	if code := readyz(e.url); code != http.StatusOK {
		t.Fatalf("/readyz before the failover = %d", code)
	}

	var sent []*sentinelDelivery
	// send commits a new head on its own branch and delivers the opening
	// of its pull request.
	send := func() *sentinelDelivery {
		n := len(sent) + 1
		branch := "feature-" + strconv.Itoa(n)
		if err := e.sb.checkout("main", false); err != nil {
			t.Fatal(err)
		}
		sha := e.commit(branch, map[string]string{"notes.txt": fmt.Sprintf("change %d\n", n)}, "change "+strconv.Itoa(n))
		req := e.sb.pr(e.hook, prEvent{Action: "opened", Number: n, HeadRef: branch, HeadSHA: sha, BaseSHA: e.mainSHA,
			Author: "alice", Association: "MEMBER"})
		body, err := io.ReadAll(req.Body)
		if err != nil {
			t.Fatal(err)
		}
		d := &sentinelDelivery{sha: sha, url: req.URL.String(), header: req.Header, body: body}
		d.deliver()
		sent = append(sent, d)
		return d
	}
	accepted := func(ds []*sentinelDelivery) (n int) {
		for _, d := range ds {
			if c := d.codes[len(d.codes)-1]; c >= 200 && c < 300 {
				n++
			}
		}
		return n
	}

	// Before: a few webhooks on a healthy set.
	for range 3 {
		if d := send(); d.codes[0] != http.StatusAccepted {
			t.Fatalf("webhook before the failover answered %d", d.codes[0])
		}
	}

	// The primary dies mid-stream. Webhooks keep coming while the
	// sentinels notice (down-after 1 s), vote and promote the replica.
	s.Kill(oldPrimary)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	type failover struct {
		addr string
		err  error
	}
	promoted := make(chan failover, 1)
	go func() {
		addr, err := s.WaitPrimary(ctx, oldPrimary, 0)
		promoted <- failover{addr, err}
	}()
	readyDown := false
	var newPrimary string
	for newPrimary == "" {
		send()
		readyDown = readyDown || readyz(e.url) == http.StatusServiceUnavailable
		select {
		case f := <-promoted:
			if f.err != nil {
				t.Fatal(f.err)
			}
			newPrimary = f.addr
		default:
		}
	}
	t.Logf("sentinels promoted %s after %s died; %d webhooks sent during the failover", newPrimary, oldPrimary, len(sent)-3)

	// The old primary comes back empty; the sentinels make it a replica
	// of the new one. Until it is in sync, the new primary has no replica
	// and an acknowledged webhook could still be lost with it: mlbot
	// answers 503.
	s.Restart(oldPrimary)
	go func() {
		_, err := s.WaitPrimary(ctx, oldPrimary, 1)
		promoted <- failover{err: err}
	}()
	for synced := false; !synced; {
		send()
		readyDown = readyDown || readyz(e.url) == http.StatusServiceUnavailable
		select {
		case f := <-promoted:
			if f.err != nil {
				t.Fatal(f.err)
			}
			synced = true
		default:
		}
	}
	// After: the stream is accepted again.
	after := len(sent)
	for accepted(sent[after:]) < 3 {
		if ctx.Err() != nil {
			t.Fatalf("webhooks after the recovery are not accepted: %v", sent[after:])
		}
		send()
	}
	if !readyDown {
		t.Error("/readyz never reported the failover")
	}
	if code := readyz(e.url); code != http.StatusOK {
		t.Errorf("/readyz after the recovery = %d", code)
	}

	refused := 0
	for _, d := range sent {
		switch c := d.codes[0]; {
		case c == http.StatusAccepted:
		case c == http.StatusServiceUnavailable:
			refused++
		default:
			t.Errorf("PR head %s: webhook answered %d: only 202 or 503 may be", d.sha[:7], c)
		}
	}
	if refused == 0 {
		t.Error("no webhook was refused during the failover window")
	}
	// The host's redelivery of every refused webhook is accepted: 202, or
	// 200 when the first attempt was queued after all.
	for _, d := range sent {
		if d.codes[0] == http.StatusServiceUnavailable {
			if c := d.deliver(); c != http.StatusAccepted && c != http.StatusOK {
				t.Errorf("PR head %s: redelivery answered %d", d.sha[:7], c)
			}
		}
	}
	t.Logf("%d webhooks, %d answered 503 during the failover", len(sent), refused)

	// Every head has exactly one run and one final status, a success. A
	// pipeline whose writes failed while Redis had no writable primary
	// fails and is retried (the same run, trained again); one whose
	// completion could not be recorded stays active in asynq until its
	// lease expires (30 s) and asynq's recoverer, which looks once a
	// minute, retries it: hence the long wait.
	for _, d := range sent {
		if st := finalWithin(e, d.sha, 3*time.Minute); st.State != "success" {
			t.Errorf("PR head %s: final status %+v", d.sha[:7], st)
		}
	}
	e.settle()
	runs := map[string]int{}
	repos, err := e.app.store.RunRepos(context.Background())
	if err != nil || len(repos) != 1 {
		t.Fatalf("repositories with runs: %v, %v", repos, err)
	}
	all, err := e.app.store.RecentRuns(context.Background(), repos[0], 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range all {
		runs[r.SHA]++
	}
	for _, d := range sent {
		finals := 0
		for _, st := range e.sb.statuses(d.sha) {
			if st.Context == "mlbot/train-eval" && st.State != "pending" && st.State != "running" {
				finals++
			}
		}
		if finals != 1 || runs[d.sha] != 1 {
			t.Errorf("PR head %s: %d final statuses and %d runs, want 1 each: %+v", d.sha[:7], finals, runs[d.sha], e.sb.statuses(d.sha))
		}
	}
	if got, want := e.trainings(), 1+len(sent); got < want {
		t.Errorf("%d trainings for %d heads and the baseline: a head never trained", got, want)
	} else {
		t.Logf("%d trainings for %d heads and the baseline (%d retried after a failed write)", got, want, got-want)
	}
	if a := e.archived(); len(a) > 0 {
		t.Errorf("tasks failed for good: %v", a)
	}
}

// finalWithin waits up to d for sha's mlbot/train-eval status to leave
// pending.
func finalWithin(e *e2e, sha string, d time.Duration) hostStatus {
	e.t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if ss := e.sb.statuses(sha); len(ss) > 0 {
			if last := ss[len(ss)-1]; last.State != "pending" && last.State != "running" {
				return last
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	e.t.Fatalf("no final status on %s within %s; statuses %+v", sha[:7], d, e.sb.statuses(sha))
	return hostStatus{}
}
