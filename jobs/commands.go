package jobs

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/mlbot/mlbot/bot"
	"github.com/mlbot/mlbot/configs"
	"github.com/mlbot/mlbot/jobs/report"
	"github.com/mlbot/mlbot/runners/git"
)

// ReplyMarker starts every reply mlbot posts in a thread, so that its own
// comments are never read as commands.
const ReplyMarker = "<!-- mlbot:reply -->"

// maxCommands bounds the commands read from one comment, so that one
// comment cannot make mlbot post hundreds of replies.
const maxCommands = 5

var commandName = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9-]*$`)

// Command is one slash command from a pull request comment.
type Command struct {
	Name string   // "retrain", "deploy", …
	Args []string // the words after it
}

// ParseCommands returns the commands in a comment body: every line that
// starts with "/", outside fenced code blocks and quotes.
func ParseCommands(body string) []Command {
	var out []Command
	fenced := false
	for _, line := range strings.Split(body, "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "```") || strings.HasPrefix(line, "~~~") {
			fenced = !fenced
			continue
		}
		if fenced || !strings.HasPrefix(line, "/") || len(line) < 2 {
			continue
		}
		fields := strings.Fields(line[1:])
		if len(fields) == 0 || !commandName.MatchString(fields[0]) {
			continue // "/usr/bin/python" is prose, not a command
		}
		out = append(out, Command{Name: strings.ToLower(fields[0]), Args: fields[1:]})
		if len(out) == maxCommands {
			break
		}
	}
	return out
}

// commandSpec says who may run a command and what it does.
type commandSpec struct {
	help string
	// level returns the permission the command needs under perms.
	level func(p configs.Permissions) string
	run   func(w *Worker, ctx context.Context, c *commandContext, args []string) (string, error)
}

// commands is filled in init: /help lists it, which Go would otherwise
// call an initialisation cycle.
var commands map[string]commandSpec

func init() {
	commands = map[string]commandSpec{
		"retrain": {"run the pipeline again on the current head", func(p configs.Permissions) string { return p.Retrain }, (*Worker).cmdRetrain},
		"cancel":  {"stop the run in flight", func(p configs.Permissions) string { return p.Cancel }, (*Worker).cmdCancel},
		"ok-to-test": {"approve running this pull request's current head (for untrusted authors and forks)",
			func(p configs.Permissions) string { return p.OkToTest }, (*Worker).cmdOkToTest},
		"deploy":   {"`/deploy [env] [version] [--force]`: deploy this pull request's model (or its version named, such as a sweep trial's `v7`) if it is not worse than what the environment runs (`--force`: even then)", func(p configs.Permissions) string { return p.Deploy }, (*Worker).cmdDeploy},
		"rollback": {"`/rollback [env] [version]`: redeploy the previous or the named version", func(p configs.Permissions) string { return p.Rollback }, (*Worker).cmdRollback},
		"sweep": {"`/sweep [space]`: train this pull request's head once per point of a search space (`lr=0.05,0.1 epochs=10,20`; without one, the `sweep:` block's) and rank the trials in a comment of their own",
			func(p configs.Permissions) string { return p.Sweep }, (*Worker).cmdSweep},
		"help": {"what mlbot can do here", func(configs.Permissions) string { return "read" }, (*Worker).cmdHelp},
	}
}

// commandContext is what a command acts on.
type commandContext struct {
	f        bot.Forge
	ev       *bot.Event
	pr       *bot.PullRequest // the stored pull request (head, base, author)
	perms    configs.Permissions
	cfg      *configs.RepoConfig // of the default branch; nil when it has none
	delivery string
	// commentKey names the comment on its host: what a retried task, a
	// redelivery and a re-sent body of the same comment share. For a
	// pressed check button it names the press (see checkKey).
	commentKey string
	// user wrote the comment, or pressed the button.
	user string
	// permissionName names user to GetPermission when it differs from
	// user: "id:<n>" where the payload gave the author's numeric id.
	permissionName string
	log            *slog.Logger
}

// commandMaxAge is how old a comment may be for its commands to run:
// hosts redeliver within days, and a comment's done marks
// (commandRetention) must outlive every delivery of it that is accepted.
const commandMaxAge = 7 * 24 * time.Hour

// commandRetention is how long a comment's commands stay marked done.
const commandRetention = commandMaxAge + 24*time.Hour

// routeComment runs the commands of a new comment on a pull request. Each
// accepted command is acknowledged with a reaction at once and answered in
// the thread; a refused one is answered with the reason. Its steps: read
// the comment's commands, or ignore it; gather what they act on; answer
// each command once.
func (w *Worker) routeComment(ctx context.Context, log *slog.Logger, f bot.Forge, ev *bot.Event) error {
	cmds := commentCommands(log, ev)
	if len(cmds) == 0 {
		return nil
	}
	cc, err := w.commentContext(ctx, log, f, ev, cmds)
	if err != nil {
		return err
	}
	for i, cmd := range cmds {
		if err := w.answerCommand(ctx, cc, i, cmd); err != nil {
			return err
		}
	}
	return nil
}

// commentCommands returns the commands of ev's comment, or none when the
// comment is to be ignored: it is not a new comment on a pull request, it
// is mlbot's own, it has no id to run its commands once by, or it was
// written more than commandMaxAge ago.
func commentCommands(log *slog.Logger, ev *bot.Event) []Command {
	c := ev.Comment
	switch {
	case ev.Action != bot.ActionCreated:
		log.Debug("comment ignored: not a new comment", "action", ev.Action)
		return nil
	case c == nil || !c.OnPullRequest || ev.PR == nil:
		log.Debug("comment ignored: not on a pull request")
		return nil
	case strings.Contains(c.Body, "<!-- mlbot:"):
		return nil // our own
	}
	cmds := ParseCommands(c.Body)
	if len(cmds) == 0 {
		return nil
	}
	// A comment's commands run once, whatever delivery brings it: the
	// delivery id is not signed, so a re-sent body comes with a new one.
	if c.ID == 0 {
		log.Warn("comment ignored: the host sent no comment id to run its commands once by")
		return nil
	}
	if !c.Created.IsZero() && time.Since(c.Created) > commandMaxAge {
		log.Warn("comment ignored: written too long ago to run its commands now", "comment", c.ID, "created", c.Created)
		return nil
	}
	return cmds
}

// commentContext gathers what the commands cmds of ev's comment act on:
// the stored pull request (or the payload's, when mlbot has not seen it
// yet), the name the author's permission is asked by and, when one of
// cmds is a command mlbot knows, the default branch's config and the
// permissions it sets.
func (w *Worker) commentContext(ctx context.Context, log *slog.Logger, f bot.Forge, ev *bot.Event, cmds []Command) (*commandContext, error) {
	c := ev.Comment
	pr, err := w.store.PullRequest(ctx, ev.Repo, ev.PR.Number)
	if err != nil {
		return nil, err
	}
	if pr == nil {
		// mlbot has not seen the pull request yet (installed after it was
		// opened): the comment payload carries what it can.
		pr = ev.PR
	}
	// The default branch's config (permissions, environments) costs a
	// fetch: only commands mlbot knows need it.
	var cfg *configs.RepoConfig
	if slices.ContainsFunc(cmds, func(c Command) bool { _, ok := commands[c.Name]; return ok }) {
		if cfg, err = w.defaultBranchConfig(ctx, f, ev.Repo, log); err != nil {
			return nil, err
		}
	}
	cc := &commandContext{f: f, ev: ev, pr: pr, perms: defaultPermissions(), cfg: cfg, delivery: ev.Delivery,
		commentKey: fmt.Sprintf("%s:%d", repoKey(ev.Repo), c.ID), user: c.Author, log: log}
	if cfg != nil {
		cc.perms = cfg.Permissions
	}
	if c.AuthorID != 0 {
		cc.permissionName = "id:" + strconv.FormatInt(c.AuthorID, 10)
	}
	return cc, nil
}

// answerCommand runs cmd, the i-th command of cc's comment, and posts its
// reply, once whatever the deliveries and retries: a command marked done
// is skipped, and one whose reply an earlier attempt may have posted
// (marked posting) is not run again when the thread holds that reply.
func (w *Worker) answerCommand(ctx context.Context, cc *commandContext, i int, cmd Command) error {
	c := cc.ev.Comment
	doneKey := fmt.Sprintf("comment:%s:%d", cc.commentKey, i)
	if done, err := w.store.Done(ctx, doneKey); err != nil || done {
		return err
	}
	// A reply is tagged with the comment and command it answers. When an
	// earlier attempt went as far as posting it, the host may have created
	// it though its answer was lost (a 5xx, a timeout): the retry looks
	// for it before running the command again.
	tag := fmt.Sprintf("<!-- mlbot:reply-to %d/%d -->", c.ID, i)
	posting := doneKey + ":posting"
	if posted, err := w.replyPostedBefore(ctx, cc, posting, tag); err != nil {
		return err
	} else if posted {
		return w.store.MarkDoneFor(ctx, doneKey, commandRetention)
	}
	reply, err := w.runCommand(ctx, cc, cc.user, c.ID, cmd)
	if err != nil {
		return err
	}
	if reply != "" {
		if err := w.postReply(ctx, cc, posting, tag, reply); err != nil {
			return err
		}
	}
	return w.store.MarkDoneFor(ctx, doneKey, commandRetention)
}

// replyPostedBefore reports whether an earlier attempt marked posting
// and the pull request's thread holds the reply tagged tag it posted.
func (w *Worker) replyPostedBefore(ctx context.Context, cc *commandContext, posting, tag string) (bool, error) {
	tried, err := w.store.Done(ctx, posting)
	if err != nil || !tried {
		return false, err
	}
	return replyPosted(ctx, cc.f, cc.ev.Repo, cc.ev.PR.Number, tag)
}

// postReply posts reply in the pull request's thread, tagged tag, after
// marking posting so that a retry looks for it before answering again.
func (w *Worker) postReply(ctx context.Context, cc *commandContext, posting, tag, reply string) error {
	if err := w.store.MarkDoneFor(ctx, posting, commandRetention); err != nil {
		return err
	}
	_, err := cc.f.CreateComment(ctx, cc.ev.Repo, cc.ev.PR.Number, ReplyMarker+"\n"+tag+"\n"+report.StripFormatMarkdown(reply))
	return err
}

// replyPosted reports whether the pull request's thread holds mlbot's
// reply tagged tag.
func replyPosted(ctx context.Context, f bot.Forge, repo bot.Repo, number int, tag string) (bool, error) {
	comments, err := f.ListComments(ctx, repo, number)
	if err != nil {
		return false, err
	}
	for _, c := range comments {
		if strings.HasPrefix(c.Body, ReplyMarker) && strings.Contains(c.Body, tag) {
			return true, nil
		}
	}
	return false, nil
}

// runCommand checks one command's permission and runs it; it returns the
// reply to post. An accepted command is acknowledged on comment commentID
// with a reaction; 0 (a pressed check button) has none to react to.
func (w *Worker) runCommand(ctx context.Context, cc *commandContext, user string, commentID int64, cmd Command) (string, error) {
	spec, ok := commands[cmd.Name]
	if !ok {
		return fmt.Sprintf("@%s `/%s` is not an mlbot command. Valid commands: %s.", user, cmd.Name, commandList()), nil
	}
	need := bot.Permission(spec.level(cc.perms))
	if need != bot.PermissionRead {
		who := user
		if cc.permissionName != "" {
			who = cc.permissionName
		}
		have, err := w.permission(ctx, cc.f, cc.ev.Repo, who)
		if err != nil {
			cc.log.Warn("permission check failed", "user", user, "err", err)
			return fmt.Sprintf("@%s could not check your permission to run `/%s` (the code host answered with an error); nothing was done. Please try again later.", user, cmd.Name), nil
		}
		if !have.AtLeast(need) {
			cc.log.Info("command refused", "command", cmd.Name, "user", user, "have", have, "need", need)
			return fmt.Sprintf("@%s `/%s` needs %s permission on this repository; you have %s. Nothing was done.", user, cmd.Name, need, have), nil
		}
	}
	if commentID != 0 {
		if err := cc.f.CreateReaction(ctx, cc.ev.Repo, cc.pr.Number, commentID, "eyes"); err != nil {
			// The acknowledgement is a courtesy; the command itself matters more.
			cc.log.Warn("could not acknowledge the command", "command", cmd.Name, "err", err)
		}
	}
	cc.log.Info("command accepted", "command", cmd.Name, "user", user, "number", cc.pr.Number)
	return spec.run(w, ctx, cc, cmd.Args)
}

func commandList() string {
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, "`/"+n+"`")
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

func defaultPermissions() configs.Permissions {
	return configs.Permissions{Deploy: "maintain", Rollback: "maintain", Retrain: "write", Cancel: "write", OkToTest: "write", Sweep: "write"}
}

func (w *Worker) cmdRetrain(ctx context.Context, cc *commandContext, _ []string) (string, error) {
	pr := cc.pr
	if pr.HeadSHA == "" {
		return "mlbot does not know this pull request's head commit yet; push a commit to start a run.", nil
	}
	admitted, trusted, err := w.admission(ctx, cc.f, cc.ev.Repo, pr)
	if err != nil {
		return "", err
	}
	if !admitted {
		return "This pull request's head `" + short(pr.HeadSHA) + "` is waiting for `/ok-to-test` from a maintainer; `/retrain` cannot bypass that.", nil
	}
	// Asked for by a person: it runs even when pipeline.paths says no
	// model changed.
	p := PipelinePayload{Kind: KindPullRequest, Repo: cc.ev.Repo, SHA: pr.HeadSHA, PR: pr, Delivery: cc.delivery, Trusted: trusted, Force: true}
	if p.RunID, err = w.runID(ctx, cc.ev.Repo, KindPullRequest, pr.HeadSHA, pr.Number, "retrain:"+cc.commentKey); err != nil {
		return "", err
	}
	if err := w.startPipeline(ctx, cc.f, p); err != nil {
		return "", err
	}
	return fmt.Sprintf("Retraining `%s` ([run](%s)).", short(pr.HeadSHA), w.runURL(p.RunID)), nil
}

func (w *Worker) cmdCancel(ctx context.Context, cc *commandContext, _ []string) (string, error) {
	swept, err := w.cancelSweepOf(ctx, cc.ev.Repo, cc.pr.Number, "cancelled by @"+cc.user)
	if err != nil {
		return "", err
	}
	id, err := w.store.CurrentRun(ctx, cc.ev.Repo, cc.pr.Number)
	if err != nil {
		return "", err
	}
	run, err := w.store.GetRun(ctx, id)
	if errors.Is(err, ErrNoRun) || id == "" || (run != nil && run.State == RunFinished) {
		if swept {
			return "Cancelled the sweep of this pull request.", nil
		}
		return "Nothing is running for this pull request.", nil
	}
	if err != nil {
		return "", err
	}
	if err := w.cancelRun(ctx, id, "cancelled by @"+cc.user); err != nil {
		return "", err
	}
	if swept {
		return fmt.Sprintf("Cancelled the run of `%s` and the sweep of this pull request.", short(run.SHA)), nil
	}
	return fmt.Sprintf("Cancelled the run of `%s`.", short(run.SHA)), nil
}

// cmdOkToTest approves the head the pull request had when the comment
// was written, by the host's clocks: the newest head recorded from a pull
// request event at or before the comment's creation. A comment delivered
// late, or re-sent, thus never approves a head pushed after it. The
// approved head runs when it is still the pull request's head.
func (w *Worker) cmdOkToTest(ctx context.Context, cc *commandContext, _ []string) (string, error) {
	pr, repo := cc.pr, cc.ev.Repo
	written := cc.ev.Comment.Created
	if written.IsZero() {
		return "The code host did not say when this comment was written, so mlbot cannot tell which commit it approves; nothing was approved.", nil
	}
	sha, err := w.store.HeadAt(ctx, repo, pr.Number, written)
	switch {
	case errors.Is(err, ErrNoHeadHistory):
		return "mlbot does not know which commit was this pull request's head when this comment was written (it has seen no push to it yet); nothing was approved. Comment `/ok-to-test` again after the next push.", nil
	case errors.Is(err, ErrBeforeHeads):
		return "This comment was written before every head commit mlbot knows of this pull request; nothing was approved. Comment `/ok-to-test` again to approve the current head.", nil
	case err != nil:
		return "", err
	}
	if err := w.store.Approve(ctx, repo, pr.Number, sha, cc.user); err != nil {
		return "", err
	}
	head, err := w.store.Head(ctx, repo, pr.Number)
	if err != nil {
		return "", err
	}
	if head == "" {
		head = pr.HeadSHA
	}
	if head != sha {
		cc.log.Info("approved a head that is no longer current", "approved", sha, "head", head)
		return fmt.Sprintf("Approved `%s` for testing: it was the head when this comment was written. The head is now `%s`, which was pushed later and is not approved; it needs its own `/ok-to-test`.", short(sha), short(head)), nil
	}
	p := PipelinePayload{Kind: KindPullRequest, Repo: repo, SHA: sha, PR: pr, Delivery: cc.delivery}
	if p.PR.HeadSHA != sha {
		cp := *pr
		cp.HeadSHA = sha
		p.PR = &cp
	}
	if p.RunID, err = w.runID(ctx, repo, KindPullRequest, sha, pr.Number, ""); err != nil {
		return "", err
	}
	if err := w.startPipeline(ctx, cc.f, p); err != nil {
		return "", err
	}
	return fmt.Sprintf("Approved `%s` for testing; running it now. A later push needs a new `/ok-to-test`.", short(sha)), nil
}

func (w *Worker) cmdHelp(ctx context.Context, cc *commandContext, _ []string) (string, error) {
	var b strings.Builder
	b.WriteString("**mlbot commands** (write them on a line of their own in a comment on this pull request):\n\n| command | what it does | who may |\n| --- | --- | --- |\n")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(&b, "| `/%s` | %s | %s |\n", n, commands[n].help, commands[n].level(cc.perms))
	}
	if cc.cfg != nil {
		fmt.Fprintf(&b, "\nThis repository trains with `%s`", cc.cfg.Pipeline.Train)
		if cc.cfg.Pipeline.Evaluate != "" {
			fmt.Fprintf(&b, " and evaluates with `%s`", cc.cfg.Pipeline.Evaluate)
		}
		b.WriteString(".")
		if len(cc.cfg.MetricOrder) > 0 {
			b.WriteString(" Gated metrics: ")
			for i, m := range cc.cfg.MetricOrder {
				if i > 0 {
					b.WriteString(", ")
				}
				b.WriteString("`" + m + "`")
			}
			b.WriteString(".")
		}
		if len(cc.cfg.DeployOrder) > 0 {
			b.WriteString(" Environments: " + strings.Join(cc.cfg.DeployOrder, ", ") + ".")
		}
	} else {
		b.WriteString("\nThe default branch has no valid `.mlbot.yml`.")
	}
	return b.String(), nil
}

// permissionChecker reads a user's permission on a repository.
type permissionChecker interface {
	GetPermission(ctx context.Context, repo bot.Repo, user string) (bot.Permission, error)
}

// cloneAuthorizer gives the credentials git needs to fetch a repository.
type cloneAuthorizer interface {
	CloneAuth(ctx context.Context, repo bot.Repo) (string, error)
}

// permission returns user's permission on repo, cached briefly so that a
// burst of commands costs one host call.
func (w *Worker) permission(ctx context.Context, f permissionChecker, repo bot.Repo, user string) (bot.Permission, error) {
	if p, ok, err := w.store.CachedPermission(ctx, repo, user); err != nil || ok {
		return p, err
	}
	p, err := f.GetPermission(ctx, repo, user)
	if err != nil {
		return "", err
	}
	return p, w.store.CachePermission(ctx, repo, user, p)
}

// defaultBranchConfig reads .mlbot.yml from the default branch, where
// permissions and deploy definitions come from — never from the pull
// request asking. It returns nil when the file is missing or invalid, and
// an error when it could not be read: falling back to default permissions
// during a host outage could loosen what the repository asked for.
func (w *Worker) defaultBranchConfig(ctx context.Context, f cloneAuthorizer, repo bot.Repo, log *slog.Logger) (*configs.RepoConfig, error) {
	co, done, err := w.configCheckout(ctx, f, repo)
	if err != nil {
		return nil, fmt.Errorf("default branch config: %w", err)
	}
	defer done()
	sha, err := co.FetchBranch(ctx, repo.DefaultBranch)
	if err != nil {
		return nil, fmt.Errorf("default branch config: fetch %s: %w", repo.DefaultBranch, err)
	}
	data, err := co.ShowFile(ctx, sha, configs.RepoConfigFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("default branch config: %w", err)
	}
	cfg, err := configs.ParseRepoConfig(configs.RepoConfigFile, data)
	if err != nil {
		log.Info("default branch .mlbot.yml is invalid; using default permissions", "err", err)
		return nil, nil
	}
	return cfg, nil
}

// configCheckout is an empty scratch checkout of repo under the data
// directory, with the host's clone credentials, for reading .mlbot.yml of
// one commit; done removes it.
func (w *Worker) configCheckout(ctx context.Context, f cloneAuthorizer, repo bot.Repo) (co git.Checkout, done func(), err error) {
	auth, err := f.CloneAuth(ctx, repo)
	if err != nil {
		return git.Checkout{}, nil, err
	}
	if err := os.MkdirAll(w.opts.DataDir, 0o750); err != nil {
		return git.Checkout{}, nil, err
	}
	dir, err := os.MkdirTemp(w.opts.DataDir, "config-")
	if err != nil {
		return git.Checkout{}, nil, err
	}
	return git.Checkout{URL: repo.CloneURL, Auth: auth, Dir: dir}, func() { os.RemoveAll(dir) }, nil
}
