// Package forgesim holds what the GitHub and GitLab API simulators share:
// a recorder of every call, injectable faults, and a git smart-HTTP server
// so that clones in tests and in the demo go over HTTP with real headers.
// The simulators themselves live in bot/github and bot/gitlab.
package forgesim

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Call is one request a simulator received and how it answered.
type Call struct {
	Method string
	Path   string // URL path, unescaped
	Query  string // raw query
	Header http.Header
	Body   []byte
	Status int
	At     time.Time
}

// Recorder keeps every call in arrival order. It is safe for concurrent use.
type Recorder struct {
	mu    sync.Mutex
	calls []Call
}

// Add appends a call.
func (r *Recorder) Add(c Call) {
	r.mu.Lock()
	r.calls = append(r.calls, c)
	r.mu.Unlock()
}

// Calls returns a copy of every call so far.
func (r *Recorder) Calls() []Call {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Call(nil), r.calls...)
}

// Find returns the calls whose method matches (any when "") and whose path
// contains substr.
func (r *Recorder) Find(method, substr string) []Call {
	var out []Call
	for _, c := range r.Calls() {
		if (method == "" || c.Method == method) && strings.Contains(c.Path, substr) {
			out = append(out, c)
		}
	}
	return out
}

// Reset forgets every call.
func (r *Recorder) Reset() {
	r.mu.Lock()
	r.calls = nil
	r.mu.Unlock()
}

// Fault makes the next Times matching requests fail with Status before the
// simulator handles them (so nothing is changed by a faulted call).
type Fault struct {
	Method     string // "" matches any
	PathSubstr string // "" matches any
	Status     int
	Body       string            // response body; a JSON message when empty
	Header     map[string]string // e.g. Retry-After, X-RateLimit-Remaining
	Times      int               // how many requests it applies to; 0 means 1
}

// Faults is a queue of injected faults, and a latency added to every
// request. It is safe for concurrent use.
type Faults struct {
	mu      sync.Mutex
	faults  []*Fault
	latency time.Duration
}

// SetLatency makes every request wait d before it is handled (0: none), as
// a real host's API answers in a hundred milliseconds or more rather than
// at once: it shows what waits on the host.
func (f *Faults) SetLatency(d time.Duration) {
	f.mu.Lock()
	f.latency = d
	f.mu.Unlock()
}

// wait sleeps the added latency, or until ctx ends.
func (f *Faults) wait(ctx context.Context) {
	f.mu.Lock()
	d := f.latency
	f.mu.Unlock()
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// Add queues a fault.
func (f *Faults) Add(ft Fault) {
	if ft.Times <= 0 {
		ft.Times = 1
	}
	f.mu.Lock()
	f.faults = append(f.faults, &ft)
	f.mu.Unlock()
}

// take returns the first fault matching r and uses one of its times.
func (f *Faults) take(r *http.Request) *Fault {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, ft := range f.faults {
		if (ft.Method == "" || ft.Method == r.Method) && strings.Contains(r.URL.Path, ft.PathSubstr) {
			ft.Times--
			if ft.Times == 0 {
				f.faults = append(f.faults[:i], f.faults[i+1:]...)
			}
			return ft
		}
	}
	return nil
}

// Wrap returns a handler that records every request into rec and answers
// with a queued fault when one matches, calling next otherwise. The answer
// is buffered so that the call is recorded before the client can see any
// of it: a test that got its answer finds the call recorded.
func Wrap(rec *Recorder, faults *Faults, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		buf := httptest.NewRecorder()
		faults.wait(r.Context())
		if ft := faults.take(r); ft != nil {
			for k, v := range ft.Header {
				buf.Header().Set(k, v)
			}
			msg := ft.Body
			if msg == "" {
				buf.Header().Set("Content-Type", "application/json")
				msg = `{"message":"injected fault ` + strconv.Itoa(ft.Status) + `"}`
			}
			buf.WriteHeader(ft.Status)
			io.WriteString(buf, msg)
		} else {
			next.ServeHTTP(buf, r)
		}
		rec.Add(Call{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Header: r.Header.Clone(), Body: body, Status: buf.Code, At: time.Now()})
		for k, v := range buf.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(buf.Code)
		w.Write(buf.Body.Bytes())
	})
}

// GitHTTPBackend serves the bare repositories under root over git's smart
// HTTP protocol by running `git http-backend` as a CGI program, the way a
// real host does. When authorize is non-nil, requests whose Authorization
// header it rejects get 401, so tests see whether mlbot sent credentials.
// Mount it with http.StripPrefix so that the path left is "/<repo>.git/…".
func GitHTTPBackend(root string, authorize func(authorization string) bool) http.Handler {
	gitPath, err := exec.LookPath("git")
	if err != nil {
		gitPath = "git"
	}
	h := &cgi.Handler{
		Path: gitPath,
		Args: []string{"http-backend"},
		Env: []string{
			"GIT_PROJECT_ROOT=" + root,
			"GIT_HTTP_EXPORT_ALL=1",
			// Let clients fetch any commit by SHA, as GitHub and GitLab allow.
			"GIT_CONFIG_COUNT=2",
			"GIT_CONFIG_KEY_0=uploadpack.allowAnySHA1InWant", "GIT_CONFIG_VALUE_0=true",
			"GIT_CONFIG_KEY_1=uploadpack.allowFilter", "GIT_CONFIG_VALUE_1=true",
		},
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if authorize != nil && !authorize(r.Header.Get("Authorization")) {
			w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
			http.Error(w, "authentication required", http.StatusUnauthorized)
			return
		}
		// CGI would hand the header to git http-backend as
		// HTTP_AUTHORIZATION, in an environment every process of this user
		// can read; a real host keeps it to itself, and tests that scan for
		// the token must find only what mlbot leaks.
		r = r.Clone(r.Context())
		r.Header.Del("Authorization")
		h.ServeHTTP(w, r)
	})
}

// GitPath reports whether path is a request of git's smart HTTP protocol
// and returns it relative to the repositories' root, for GitHTTPBackend.
// Repositories are served where the hosts serve them,
// "/<owner>/<name>.git/info/refs" and so on, and also under "/git/" for
// clone URLs made before the simulators used the hosts' layout.
func GitPath(path string) (string, bool) {
	if strings.HasPrefix(path, "/api/") || !strings.Contains(path, ".git/") {
		return "", false
	}
	for _, suffix := range []string{"/info/refs", "/git-upload-pack", "/git-receive-pack", "/HEAD"} {
		if strings.HasSuffix(path, suffix) {
			if rest, ok := strings.CutPrefix(path, "/git/"); ok {
				return "/" + rest, true
			}
			return path, true
		}
	}
	return "", false
}
