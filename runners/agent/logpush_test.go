package agent

import (
	"bytes"
	"context"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mlbot/mlbot/runners/agentapi"
)

// TestLogPusherBlocksWhenFull holds every log request at a real agentsrv
// until released: the pusher must take no more than its buffer's worth of
// output meanwhile, its writer blocking, and then deliver all of it in
// order.
func TestLogPusherBlocksWhenFull(t *testing.T) {
	s := newServer(t)
	opts := s.open(t, "full", agentapi.Job{}, t.TempDir())
	release := make(chan struct{})
	s.setFilter(func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path == agentapi.PathLog {
			<-release
		}
		return false
	})
	c, err := agentapi.NewClient(opts.URL, opts.Token)
	if err != nil {
		t.Fatal(err)
	}
	const bufBytes = 16 << 10
	p := newLogPusher(context.Background(), c, 0, pushOptions{BufBytes: bufBytes, FlushBytes: 4 << 10})
	data := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	var accepted atomic.Int64
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		for b := data; len(b) > 0; b = b[1024:] {
			p.Write(b[:1024])
			accepted.Add(1024)
		}
	}()
	time.Sleep(500 * time.Millisecond)
	if n := accepted.Load(); n > bufBytes {
		t.Errorf("the pusher took %d bytes while mlbot did not answer; its buffer is %d", n, bufBytes)
	}
	select {
	case <-wrote:
		t.Fatal("the writer finished while mlbot did not answer")
	default:
	}
	close(release)
	<-wrote
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if got := s.log(t, "full"); got != string(data) {
		t.Errorf("log = %d bytes, want the %d written, in order (%s)", len(got), len(data), firstDiff(got, string(data)))
	}
	if p.Offset() != int64(len(data)) {
		t.Errorf("Offset = %d, want %d", p.Offset(), len(data))
	}
}

// TestLogPusherGivesUp checks that a pusher whose mlbot stays away past
// RetryFor stops blocking its writers and says what it lost.
func TestLogPusherGivesUp(t *testing.T) {
	s := newServer(t)
	opts := s.open(t, "gone", agentapi.Job{}, t.TempDir())
	s.setFilter(func(w http.ResponseWriter, r *http.Request) bool {
		hangUp(w)
		return true
	})
	c, err := agentapi.NewClient(opts.URL, opts.Token)
	if err != nil {
		t.Fatal(err)
	}
	p := newLogPusher(context.Background(), c, 0, pushOptions{BufBytes: 4 << 10, RetryFor: 500 * time.Millisecond})
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.Write(make([]byte, 64<<10))
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("a writer stayed blocked after the pusher gave up")
	}
	if err := p.Close(); err == nil {
		t.Error("Close after giving up: no error")
	}
}
