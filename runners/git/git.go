// Package git prepares pipeline workspaces with the git command-line tool:
// fetching the commits a run needs from the code host, checking them out
// and answering questions about history (merge base, changed files).
//
// It shells out to git rather than using a Go implementation so that
// partial clones, protocol v2, proxies and the host's TLS settings behave
// exactly as they do for the user's own git.
package git

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// ErrAuth is wrapped by errors from a fetch the code host refused for
// missing or wrong credentials, so that callers can refresh a token and
// retry instead of failing the run.
var ErrAuth = errors.New("authentication failed")

// shaPattern matches a full SHA-1 or SHA-256 object name. Commits to fetch
// come from webhook payloads; accepting only this shape keeps an attacker's
// "--upload-pack=…" out of git's argument list.
var shaPattern = regexp.MustCompile(`^[0-9a-f]{40}([0-9a-f]{24})?$`)

func checkSHA(sha string) error {
	if !shaPattern.MatchString(sha) {
		return fmt.Errorf("git: %q is not a full commit SHA", sha)
	}
	return nil
}

// checkRev rejects revisions that git would read as options.
func checkRev(rev string) error {
	if rev == "" || strings.HasPrefix(rev, "-") {
		return fmt.Errorf("git: invalid revision %q", rev)
	}
	return nil
}

// command is one git invocation's setting: where it runs, the extra
// configuration it gets through the environment, and the strings that
// must never appear in what it reports. Nothing secret goes into config:
// the environment of every process is readable by every other process of
// the same user (see credentialFile).
type command struct {
	dir     string
	config  [][2]string // key, value pairs passed as GIT_CONFIG_KEY_n/VALUE_n
	secrets []string
}

// gitError is a failed git invocation, with git's (redacted) stderr.
type gitError struct {
	args   []string
	stderr string
	err    error
}

func (e *gitError) Error() string {
	msg := "git " + strings.Join(e.args, " ") + ": " + e.err.Error()
	if e.stderr != "" {
		msg += ": " + e.stderr
	}
	return msg
}

func (e *gitError) Unwrap() error { return e.err }

// run runs git with args and returns its stdout.
func (c command) run(ctx context.Context, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = c.dir
	cmd.Env = c.env()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			err = fmt.Errorf("%w (%w)", ctxErr, err)
		}
		return stdout.Bytes(), &gitError{
			args:   args,
			stderr: redact(strings.TrimSpace(stderr.String()), c.secrets),
			err:    err,
		}
	}
	return stdout.Bytes(), nil
}

// env is the worker's environment minus anything that would make git ask
// a person, read other credentials or act on another repository, plus the
// per-invocation configuration. Configuration goes through GIT_CONFIG_*
// rather than -c so that it is not in the process list; none of it is
// secret.
func (c command) env() []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		// GIT_DIR, GIT_WORK_TREE, GIT_CONFIG_*, GIT_ASKPASS, GIT_TRACE*:
		// set by a hook or the user's shell, all of them would redirect,
		// prompt or log.
		// MLBOT_*: the bot's own tokens have no business in git's
		// environment, where a hook could read them.
		if strings.HasPrefix(name, "GIT_") || strings.HasPrefix(name, "MLBOT_") || name == "SSH_ASKPASS" || name == "LC_ALL" || name == "LANGUAGE" {
			continue
		}
		env = append(env, kv)
	}
	env = append(env,
		"GIT_TERMINAL_PROMPT=0", // fail instead of waiting for a password
		"GCM_INTERACTIVE=never", // Git Credential Manager, if installed
		"LC_ALL=C",              // stable English messages, matched by fetch
		// A training may have written to .git: replace refs must not
		// change what a SHA means to mlbot.
		"GIT_NO_REPLACE_OBJECTS=1",
	)
	config := append([][2]string{
		// No credential helper: the header is the only credential, and a
		// helper could otherwise store it or offer the worker's own.
		{"credential.helper", ""},
		{"core.askPass", ""},
		{"advice.detachedHead", "false"},
		// Nothing a training might have planted in .git runs inside
		// mlbot's git: no hooks, no fsmonitor.
		{"core.hooksPath", "/dev/null"},
		{"core.fsmonitor", "false"},
		// No background gc in a workspace that is about to be deleted.
		{"gc.auto", "0"},
		{"maintenance.auto", "false"},
	}, c.config...)
	env = append(env, "GIT_CONFIG_COUNT="+strconv.Itoa(len(config)))
	for i, kv := range config {
		n := strconv.Itoa(i)
		env = append(env, "GIT_CONFIG_KEY_"+n+"="+kv[0], "GIT_CONFIG_VALUE_"+n+"="+kv[1])
	}
	return env
}

// secretsOf returns the strings an Authorization value could leak as: the
// whole value, its credential part and, for Basic, the decoded pair and
// password.
func secretsOf(auth string) []string {
	if auth == "" {
		return nil
	}
	out := []string{auth}
	scheme, cred, ok := strings.Cut(auth, " ")
	if !ok {
		return out
	}
	cred = strings.TrimSpace(cred)
	out = append(out, cred)
	if strings.EqualFold(scheme, "basic") {
		if dec, err := base64.StdEncoding.DecodeString(cred); err == nil {
			out = append(out, string(dec))
			if _, pass, ok := strings.Cut(string(dec), ":"); ok {
				out = append(out, pass)
			}
		}
	}
	return out
}

// redact replaces every secret (longest first, so a value containing
// another is removed whole) in s.
func redact(s string, secrets []string) string {
	sorted := slices.Clone(secrets)
	slices.SortFunc(sorted, func(a, b string) int { return len(b) - len(a) })
	for _, v := range sorted {
		if len(v) >= 4 {
			s = strings.ReplaceAll(s, v, "***")
		}
	}
	return s
}

// lines splits git's newline-terminated output.
func lines(out []byte) []string {
	s := strings.TrimRight(string(out), "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}
