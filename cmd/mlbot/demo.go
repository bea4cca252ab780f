package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/mlbot/mlbot/configs"
	"github.com/mlbot/mlbot/examples"
)

// cmdDemo runs the whole flow offline: an in-process Redis, a simulator of
// the code host with git over HTTP, a repository of the example model,
// mlbot serve on loopback, and the signed webhooks a host would send.
func cmdDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("mlbot demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	forge := fs.String("forge", "github", "code host to simulate: github or gitlab")
	keep := fs.Bool("keep", false, "keep the temporary directory (repositories, logs) for inspection")
	redisURL := fs.String("redis-url", "", "use this Redis instead of an in-process one")
	verbose := fs.Bool("v", false, "show mlbot's own log lines")
	serve := fs.Bool("serve", false, "after the demonstration keep the simulator and mlbot running, and print the pages to open, until interrupted")
	listen := fs.String("listen", "127.0.0.1:0", "`address` mlbot serves on (port 0: any free port)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "mlbot-demo-")
	if err != nil {
		return err
	}
	if *keep {
		fmt.Fprintf(stdout, "keeping %s\n", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelInfo
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	d := &demo{out: stdout, log: log, dir: dir, serve: *serve, listen: *listen}
	if err := d.run(ctx, *forge, *redisURL); err != nil {
		fmt.Fprintf(stdout, "\nDEMO FAILED: %v\n", err)
		return exitError(1)
	}
	if !*serve {
		fmt.Fprintln(stdout, "\nDemo passed.")
	}
	return nil
}

type demo struct {
	out io.Writer
	log *slog.Logger
	dir string
	sb  *fakeHost
	url string // mlbot's base URL
	// serve keeps everything running after the demonstration, on listen.
	serve  bool
	listen string
}

func (d *demo) run(ctx context.Context, forge, redisURL string) error {
	start := time.Now()
	sb, err := newFakeHost(forge, d.dir, "acme/digits")
	if err != nil {
		return err
	}
	defer sb.Close()
	d.sb = sb
	cfg := defaultServerConfig()
	cfg.RedisURL, cfg.DataDir = redisURL, d.dir+"/data"
	sb.configure(cfg)
	// The pages need a login through the simulator, as a real install's
	// would through its host.
	sb.configureLogin(cfg)
	a, url, err := startListening(cfg, d.log, d.listen)
	if errors.Is(err, errNoSandbox) {
		// The demo runs only its own example model.
		fmt.Fprintf(d.out, "note: %v\nnote: the demo runs its own example without the sandbox\n\n", err)
		cfg.UnsafeNoSandbox = true
		a, url, err = startListening(cfg, d.log, d.listen)
	}
	if err != nil {
		return err
	}
	defer a.Shutdown()
	d.url = url
	sb.registerLogin(url)
	sb.grant("alice", "write")
	hook := url + "/webhooks/" + forge
	fmt.Fprintf(d.out, "mlbot demo — %s simulator at %s, mlbot serve at %s (ready in %s)\n\n",
		forge, sb.srv.URL, url, since(start))

	// 1. The example model lands on main: its run becomes the baseline.
	if err := sb.writeFiles(examples.Digits, "digits"); err != nil {
		return err
	}
	if err := prebuildDigits(ctx, sb); err != nil {
		return err
	}
	mainSHA, err := sb.commit("Add the digits model")
	if err != nil {
		return err
	}
	if err := sb.pushBranch("main"); err != nil {
		return err
	}
	if err := d.deliver(ctx, sb.push(hook, zeroSHA, mainSHA)); err != nil {
		return err
	}
	fmt.Fprintf(d.out, "1. pushed main %s (the example model) — webhook delivered\n", mainSHA[:7])
	if _, err := d.await(ctx, mainSHA, "success"); err != nil {
		return err
	}

	// 2. A pull request tunes the learning rate.
	if err := sb.checkout("tune-lr", true); err != nil {
		return err
	}
	if err := sb.edit(".mlbot.yml", "lr: 0.5", "lr: 0.1"); err != nil {
		return err
	}
	head1, err := sb.commit("Lower the learning rate to 0.1")
	if err != nil {
		return err
	}
	if err := sb.pushBranch("tune-lr"); err != nil {
		return err
	}
	if err := d.deliver(ctx, sb.pr(hook, prEvent{Action: "opened", HeadRef: "tune-lr", HeadSHA: head1, BaseSHA: mainSHA, Author: "alice", Association: "MEMBER"})); err != nil {
		return err
	}
	fmt.Fprintf(d.out, "2. opened pull request #1 (lr 0.5 → 0.1) at %s — webhook delivered\n", head1[:7])
	if _, err := d.await(ctx, head1, "success"); err != nil {
		return err
	}
	if err := d.awaitComment(ctx, head1); err != nil {
		return err
	}

	// 3. A second push breaks the accuracy gate; the same comment is edited.
	if err := sb.edit(".mlbot.yml", "lr: 0.1\n  epochs: 40", "lr: 0.001\n  epochs: 1"); err != nil {
		return err
	}
	head2, err := sb.commit("Train for a single epoch")
	if err != nil {
		return err
	}
	if err := sb.pushBranch("tune-lr"); err != nil {
		return err
	}
	if err := d.deliver(ctx, sb.pr(hook, prEvent{Action: "updated", HeadRef: "tune-lr", HeadSHA: head2, BaseSHA: mainSHA, OldRev: head1, Author: "alice", Association: "MEMBER"})); err != nil {
		return err
	}
	fmt.Fprintf(d.out, "3. pushed %s to pull request #1 (epochs 1, lr 0.001) — webhook delivered\n", head2[:7])
	if _, err := d.await(ctx, head2, "failure"); err != nil {
		return err
	}
	if err := d.awaitComment(ctx, head2); err != nil {
		return err
	}

	fmt.Fprintln(d.out, "\nCommit statuses on the host:")
	for _, sha := range []string{mainSHA, head1, head2} {
		var states []string
		var last hostStatus
		for _, s := range sb.statuses(sha) {
			states = append(states, s.State)
			last = s
		}
		fmt.Fprintf(d.out, "  %s  %s  %s  — %q\n      %s\n", sha[:7], last.Context, strings.Join(states, " → "), last.Description, last.TargetURL)
	}
	comments := sb.comments(1)
	if len(comments) != 1 {
		return fmt.Errorf("pull request #1 has %d comments, want exactly 1", len(comments))
	}
	c := comments[0]
	fmt.Fprintf(d.out, "\nThe one comment on pull request #1 (created once, edited %d time(s)):\n%s\n%s\n%s\n",
		c.Edits, strings.Repeat("─", 72), c.Body, strings.Repeat("─", 72))
	if c.Edits < 1 || !strings.Contains(c.Body, head2[:7]) {
		return errors.New("the comment was not edited to show the second push")
	}
	fmt.Fprintf(d.out, "\nRun pages: %s/runs/<id> (linked from each status). Total %s.\n", url, since(start))
	if d.serve {
		fmt.Fprintln(d.out, "\nDemo passed.")
		return d.serveUntil(ctx, forge, []string{mainSHA, head1, head2})
	}
	return nil
}

// serveUntil prints the pages to open and keeps the simulator and mlbot
// running until ctx ends (Ctrl-C).
func (d *demo) serveUntil(ctx context.Context, forge string, shas []string) error {
	sb := d.sb
	const row = "  %-38s %s\n"
	fmt.Fprintf(d.out, "\nmlbot keeps serving. Open:\n")
	fmt.Fprintf(d.out, row, "the overview", d.url+"/")
	fmt.Fprintf(d.out, row, "the repository", d.url+"/repos/"+forge+"/"+sb.repo)
	for i, what := range []string{"main (the baseline)", "pull request #1, first push", "pull request #1, second push"} {
		if ss := sb.statuses(shas[i]); len(ss) > 0 {
			fmt.Fprintf(d.out, row, "the run of "+what, ss[len(ss)-1].TargetURL)
		}
	}
	fmt.Fprintf(d.out, row, "the "+forge+" simulator (API, git, sign-in)", sb.srv.URL)
	fmt.Fprintf(d.out, "\nThe pages ask you to log in with %s: the simulator's sign-in page takes any name;\n"+
		"log in as alice (she may write %s) to see its pages, or as anyone else to be refused.\n"+
		"Press Ctrl-C to stop.\n", map[string]string{"github": "GitHub", "gitlab": "GitLab"}[forge], sb.repo)
	<-ctx.Done()
	fmt.Fprintln(d.out, "\nstopping")
	return nil
}

// deliver sends one webhook and insists on a 202.
func (d *demo) deliver(ctx context.Context, req *http.Request) error {
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("webhook answered %d: %s", resp.StatusCode, body)
	}
	return nil
}

// await waits for sha's mlbot/train-eval status to become pending and then
// want, printing how long each took.
func (d *demo) await(ctx context.Context, sha, want string) (hostStatus, error) {
	start := time.Now()
	var pendingAt time.Duration
	deadline := time.Now().Add(5 * time.Minute)
	for time.Now().Before(deadline) {
		ss := d.sb.statuses(sha)
		if len(ss) > 0 {
			if pendingAt == 0 && (ss[0].State == "pending" || ss[0].State == "running") {
				pendingAt = time.Since(start)
			}
			last := ss[len(ss)-1]
			if last.State != "pending" && last.State != "running" {
				fmt.Fprintf(d.out, "   status pending after %s, %s after %s: %q\n", round(pendingAt), last.State, since(start), last.Description)
				if last.State != want {
					return last, fmt.Errorf("status of %s is %s, want %s", sha[:7], last.State, want)
				}
				return last, nil
			}
		}
		select {
		case <-ctx.Done():
			return hostStatus{}, ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
	return hostStatus{}, fmt.Errorf("no final status on %s after 5 minutes", sha[:7])
}

// awaitComment waits for pull request #1's comment to show sha: the
// status comes first, the comment right after it.
func (d *demo) awaitComment(ctx context.Context, sha string) error {
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); {
		for _, c := range d.sb.comments(1) {
			if strings.Contains(c.Body, sha[:7]) {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
	return fmt.Errorf("the comment never showed %s", sha[:7])
}

const zeroSHA = "0000000000000000000000000000000000000000"

// defaultServerConfig is the configuration with every default and nothing
// from the environment or the command line.
func defaultServerConfig() *configs.Server {
	fs := flag.NewFlagSet("defaults", flag.ContinueOnError)
	sf := configs.NewServerFlags(fs)
	fs.Parse(nil)
	cfg, err := sf.Load(func(string) string { return "" })
	if err != nil {
		panic(err)
	}
	return cfg
}

// startLocal starts mlbot serve on a free loopback port.
func startLocal(cfg *configs.Server, log *slog.Logger) (*app, string, error) {
	return startListening(cfg, log, "127.0.0.1:0")
}

// startListening starts mlbot serve on addr.
func startListening(cfg *configs.Server, log *slog.Logger, addr string) (*app, string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, "", err
	}
	// Browsers and the OAuth callback need an address they can reach.
	host, port, _ := net.SplitHostPort(ln.Addr().String())
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	url := "http://" + net.JoinHostPort(host, port)
	cfg.Listen, cfg.PublicURL = ln.Addr().String(), url
	if err := cfg.Validate(); err != nil {
		ln.Close()
		return nil, "", err
	}
	a, err := newApp(cfg, log, true)
	if err != nil {
		ln.Close()
		return nil, "", err
	}
	a.ln = ln
	if err := a.Start(); err != nil {
		a.close()
		return nil, "", err
	}
	return a, url, nil
}

func since(t time.Time) time.Duration { return round(time.Since(t)) }

func round(d time.Duration) time.Duration {
	if d < time.Second {
		return d.Round(time.Millisecond)
	}
	return d.Round(10 * time.Millisecond)
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// prebuildDigits compiles the example once, with this machine's Go build
// cache, and points its pipeline at the binary. Steps run in a sandbox
// whose home and /tmp are empty and private, where `go run` would compile
// the standard library afresh for every step.
func prebuildDigits(ctx context.Context, sb *fakeHost) error {
	build := exec.CommandContext(ctx, "go", "build", "-o", "digits", "softmax.go")
	build.Dir = sb.work
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("build the example model: %w\n%s", err, out)
	}
	for _, step := range []string{"train", "evaluate"} {
		if err := sb.edit(".mlbot.yml", "go run softmax.go "+step, "./digits "+step); err != nil {
			return err
		}
	}
	return nil
}
