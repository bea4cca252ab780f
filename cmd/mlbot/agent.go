package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/mlbot/mlbot/runners/agent"
	"github.com/mlbot/mlbot/runners/agentapi"
)

// cmdAgent is `mlbot agent`, what the docker and kubernetes runners start
// in a job's container: it reads nothing but its environment (no config
// file, no Redis) and runs the job of the run its token stands for (see
// package runners/agent). It exits 0 when every step succeeded, with the
// failed step's status when one did not, and 125 when the agent failed.
func cmdAgent(ctx context.Context, args []string, _, stderr io.Writer) error {
	fs := flag.NewFlagSet("mlbot agent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: mlbot agent\n\nRuns a job's steps in a container for a docker or kubernetes runner, which sets\n%s, %s and optionally %s (default %s).\n",
			agentapi.EnvURL, agentapi.EnvToken, agentapi.EnvWorkdir, agentapi.DefaultWorkdir)
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	opts, err := agent.OptionsFromEnv(os.Getenv)
	if err != nil {
		fmt.Fprintf(stderr, "mlbot agent: %v\n", err)
		return exitError(agent.ExitAgentFailed)
	}
	opts.Stderr = stderr
	// Run has written its reason to stderr and to the run's log.
	if err := agent.Run(ctx, opts); err != nil {
		return exitError(agent.ExitCode(err))
	}
	return nil
}
