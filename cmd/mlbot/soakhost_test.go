package main

import (
	"bufio"
	"bytes"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mlbot/mlbot/bot/forgesim"
	"github.com/mlbot/mlbot/bot/github"
)

// soakHost is the chaos soak's code host: one GitHub simulator holding
// many repositories, every commit of the soak made in advance, served
// over HTTP behind a fault injector (soakChaos).
type soakHost struct {
	sim    *github.Simulator
	gh     *githubHost // builds the signed deliveries
	chaos  *soakChaos
	srv    *httptest.Server
	root   string // bare repositories, root/owner/name.git
	token  string
	secret string
	repos  []*soakRepo
}

// soakRepo is one repository and the commits the load generator will
// announce: pushes to main and pull requests with their successive heads.
type soakRepo struct {
	name string // "acme/model-07"
	base string // main's first commit, which every pull request starts from
	// mainPushes are main's later commits, each the parent of the next.
	mainPushes []string
	// prs[i] are the heads of pull request i+1, oldest first.
	prs [][]string
}

// soakModel is the pipeline every soak repository runs: a train step
// that takes a second (so that runs are in flight when a worker is
// killed) and an evaluation that reads the accuracy from params.
const soakModel = `version: 1
pipeline:
  train: sh train.sh
  evaluate: sh eval.sh
  metrics: [metrics.json]
  timeout: 1m
metrics:
  accuracy: {goal: maximize, min: 0.5, max_drop: 0.5}
`

var soakFiles = map[string]string{
	".mlbot.yml": soakModel,
	"train.sh":   "sleep 1\ncp params model.txt\n",
	"eval.sh":    "printf '{\"accuracy\": %s}' \"$(cat model.txt)\" > metrics.json\n",
}

// newSoakHost creates n repositories "acme/model-NN" with their commits
// (pushes main pushes and prs pull requests of heads heads each) and
// serves them.
func newSoakHost(t testing.TB, dir string, n, pushes, prs, heads int, faultRate float64) *soakHost {
	t.Helper()
	h := &soakHost{sim: github.NewSimulator(), root: filepath.Join(dir, "host"),
		token: "soak-token-" + randomHex(8), secret: "soak-secret-" + randomHex(8)}
	h.gh = &githubHost{sim: h.sim}
	h.sim.AddToken(h.token)
	h.sim.ServeGit(h.root)
	// The soak makes more API calls than an hour's budget of one token:
	// the rate limit is not what it measures.
	h.sim.SetRateLimit(10_000_000, time.Now().Add(time.Hour))
	for i := range n {
		name := fmt.Sprintf("acme/model-%02d", i)
		r, err := makeSoakRepo(filepath.Join(h.root, name+".git"), name, pushes, prs, heads)
		if err != nil {
			t.Fatal(err)
		}
		h.sim.SetPermission(name, "alice", "write")
		h.sim.SetPermission(name, "maria", "maintain")
		h.repos = append(h.repos, r)
	}
	h.chaos = newSoakChaos(h.sim, faultRate)
	h.srv = httptest.NewServer(h.chaos)
	t.Cleanup(h.srv.Close)
	return h
}

// cloneURL is repo's clone URL as payloads carry it.
func (h *soakHost) cloneURL(repo string) string { return github.GitURL(h.srv.URL, repo) }

// makeSoakRepo writes every commit of a soak repository into a new bare
// repository at bare with one git fast-import: main's first commit (the
// model), pushes later commits of main, and prs branches of heads
// commits each, forked from the first. Every commit changes the model's
// params, so every head trains.
func makeSoakRepo(bare, name string, pushes, prs, heads int) (*soakRepo, error) {
	if err := os.MkdirAll(bare, 0o755); err != nil {
		return nil, err
	}
	if err := gitCmd(bare, "init", "--bare", "--quiet", "--initial-branch=main"); err != nil {
		return nil, err
	}
	var stream bytes.Buffer
	mark := 0
	when := time.Now().Add(-time.Hour).Unix()
	commit := func(ref string, from int, files map[string]string, msg string) int {
		msg += " (" + name + ")" // no two repositories share a commit
		mark++
		when++
		fmt.Fprintf(&stream, "commit %s\nmark :%d\ncommitter Soak <soak@example.com> %d +0000\ndata %d\n%s\n", ref, mark, when, len(msg), msg)
		if from > 0 {
			fmt.Fprintf(&stream, "from :%d\n", from)
		}
		keys := make([]string, 0, len(files))
		for k := range files {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(&stream, "M 100644 inline %s\ndata %d\n%s\n", k, len(files[k]), files[k])
		}
		return mark
	}
	params := func(n int) map[string]string {
		return map[string]string{"params": fmt.Sprintf("0.%d\n", 600+n%400)}
	}
	first := map[string]string{"params": "0.9\n"}
	for k, v := range soakFiles {
		first[k] = v
	}
	base := commit("refs/heads/main", 0, first, "model")
	var mainMarks []int
	prev := base
	for i := range pushes {
		prev = commit("refs/heads/main", prev, params(i), fmt.Sprintf("main %d", i+1))
		mainMarks = append(mainMarks, prev)
	}
	prMarks := make([][]int, prs)
	for p := range prs {
		prev := base
		for k := range heads {
			prev = commit(fmt.Sprintf("refs/heads/feature-%d", p+1), prev, params(100+p*heads+k), fmt.Sprintf("feature %d, head %d", p+1, k+1))
			prMarks[p] = append(prMarks[p], prev)
		}
	}
	marks := filepath.Join(bare, "soak-marks")
	cmd := exec.Command("git", "fast-import", "--quiet", "--export-marks="+marks)
	cmd.Dir = bare
	cmd.Stdin = &stream
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("git fast-import: %v: %s", err, out)
	}
	shas, err := readMarks(marks)
	if err != nil {
		return nil, err
	}
	r := &soakRepo{name: name, base: shas[base]}
	for _, m := range mainMarks {
		r.mainPushes = append(r.mainPushes, shas[m])
	}
	for _, ms := range prMarks {
		var hs []string
		for _, m := range ms {
			hs = append(hs, shas[m])
		}
		r.prs = append(r.prs, hs)
	}
	return r, os.Remove(marks)
}

// readMarks reads a fast-import marks file (":mark sha" lines).
func readMarks(path string) (map[int]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[int]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		m, sha, ok := strings.Cut(strings.TrimPrefix(sc.Text(), ":"), " ")
		n, err := strconv.Atoi(m)
		if !ok || err != nil {
			return nil, fmt.Errorf("marks file line %q", sc.Text())
		}
		out[n] = sha
	}
	return out, sc.Err()
}

// The kinds of fault soakChaos injects.
const (
	faultServerError = "500 internal error"
	faultBadGateway  = "502 bad gateway"
	faultUnavailable = "503 unavailable"
	faultRateLimited = "429 Retry-After: 1"
	// faultLostAnswer is a write the host applied whose answer never
	// reached mlbot: the client sees a 502, as when a proxy times out
	// after GitHub created the comment.
	faultLostAnswer = "write applied, answer lost (502)"
)

var faultKinds = []string{faultServerError, faultBadGateway, faultUnavailable, faultRateLimited, faultLostAnswer}

// soakChaos is the fault injector in front of the host's API: while on,
// it answers a random fraction of API calls (never git's) with a server
// error or a rate limit instead of the simulator, or lets a write through
// and loses its answer.
type soakChaos struct {
	next http.Handler
	rate float64

	mu     sync.Mutex
	on     bool
	counts map[string]int
}

func newSoakChaos(next http.Handler, rate float64) *soakChaos {
	return &soakChaos{next: next, rate: rate, counts: map[string]int{}}
}

// setOn turns fault injection on or off.
func (c *soakChaos) setOn(on bool) {
	c.mu.Lock()
	c.on = on
	c.mu.Unlock()
}

// injected returns how many faults of each kind were injected.
func (c *soakChaos) injected() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]int{}
	for k, v := range c.counts {
		out[k] = v
	}
	return out
}

// pick decides r's fate: "" to pass it through untouched.
func (c *soakChaos) pick(r *http.Request) string {
	if _, git := forgesim.GitPath(r.URL.Path); git {
		return ""
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.on || rand.Float64() >= c.rate {
		return ""
	}
	kinds := faultKinds
	if r.Method == http.MethodGet {
		kinds = kinds[:len(kinds)-1] // a lost answer matters for writes
	}
	k := kinds[rand.IntN(len(kinds))]
	c.counts[k]++
	return k
}

// ServeHTTP implements http.Handler.
func (c *soakChaos) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	kind := c.pick(r)
	if kind == "" {
		c.next.ServeHTTP(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	switch kind {
	case faultServerError:
		w.WriteHeader(http.StatusInternalServerError)
	case faultBadGateway:
		w.WriteHeader(http.StatusBadGateway)
	case faultUnavailable:
		w.WriteHeader(http.StatusServiceUnavailable)
	case faultRateLimited:
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusTooManyRequests)
		fmt.Fprint(w, `{"message":"You have exceeded a secondary rate limit. Please wait a few minutes before you try again."}`)
		return
	case faultLostAnswer:
		c.next.ServeHTTP(httptest.NewRecorder(), r)
		w.WriteHeader(http.StatusBadGateway)
	}
	fmt.Fprintf(w, `{"message":"injected fault: %s"}`, kind)
}
