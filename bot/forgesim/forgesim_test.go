package forgesim

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// TestLatency shows the added latency delaying every answer, a fault's
// included, and that it can be turned off again.
func TestLatency(t *testing.T) {
	rec, faults := &Recorder{}, &Faults{}
	srv := httptest.NewServer(Wrap(rec, faults, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	})))
	defer srv.Close()
	get := func() (int, time.Duration) {
		t.Helper()
		start := time.Now()
		resp, err := http.Get(srv.URL + "/x")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode, time.Since(start)
	}
	faults.SetLatency(150 * time.Millisecond)
	if code, took := get(); code != http.StatusNoContent || took < 150*time.Millisecond {
		t.Errorf("with latency: %d after %v, want 204 after at least 150ms", code, took)
	}
	faults.Add(Fault{Status: http.StatusBadGateway})
	if code, took := get(); code != http.StatusBadGateway || took < 150*time.Millisecond {
		t.Errorf("a fault with latency: %d after %v, want 502 after at least 150ms", code, took)
	}
	faults.SetLatency(0)
	if code, _ := get(); code != http.StatusNoContent {
		t.Errorf("without latency: %d, want 204", code)
	}
	if n := len(rec.Calls()); n != 3 {
		t.Errorf("recorded %d calls, want 3", n)
	}
}
