// Command mlbot is a webhook-driven CI/CD bot for machine-learning models
// on GitHub and GitLab. See the README for setup; `mlbot demo` shows the
// whole flow offline.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/mlbot/mlbot/runners/sandbox"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

const usage = `mlbot — CI/CD for machine-learning models on GitHub and GitLab

Usage:
  mlbot serve     [flags]   webhook server and workers in one process
  mlbot worker    [flags]   workers only (any number, against the same Redis)
  mlbot run       [flags]   run the pipeline on a local working copy and print the PR comment
  mlbot agent               run a job in a container for the docker or kubernetes runner
  mlbot validate  [file]    check a .mlbot.yml
  mlbot demo      [flags]   the whole flow offline: simulator, Redis, git, webhooks
  mlbot models    list|show model versions and where they run (--repo owner/name); gc drops what retention does not keep
  mlbot version             print the version

Run "mlbot <command> --help" for a command's flags. Every server flag is also
an MLBOT_* environment variable and a key of the optional --config YAML file.
`

func main() {
	// A sandbox's init is this binary started again: it must become that
	// before anything else happens.
	sandbox.MaybeInit()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// run executes one subcommand and returns the process exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmds := map[string]func(context.Context, []string, io.Writer, io.Writer) error{
		"serve":    cmdServe,
		"worker":   cmdWorker,
		"run":      cmdRun,
		"agent":    cmdAgent,
		"validate": cmdValidate,
		"demo":     cmdDemo,
		"models":   cmdModels,
		"version": func(_ context.Context, _ []string, out, _ io.Writer) error {
			fmt.Fprintln(out, "mlbot", version)
			return nil
		},
	}
	name := args[0]
	if name == "-h" || name == "--help" || name == "help" {
		fmt.Fprint(stdout, usage)
		return 0
	}
	cmd, ok := cmds[name]
	if !ok {
		fmt.Fprintf(stderr, "mlbot: unknown command %q\n\n%s", name, usage)
		return 2
	}
	err := cmd(ctx, args[1:], stdout, stderr)
	var ex exitError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ex):
		return int(ex)
	default:
		fmt.Fprintf(stderr, "mlbot %s: %v\n", name, err)
		return 1
	}
}

// exitError ends a command with a status and no further message (the
// command printed what the user needs).
type exitError int

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", int(e)) }
