package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/mlbot/mlbot/configs"
	"github.com/mlbot/mlbot/jobs/sweep"
)

// cmdValidate checks a .mlbot.yml and prints its errors with line and column.
func cmdValidate(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("mlbot validate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprintln(stderr, "usage: mlbot validate [path/to/.mlbot.yml]") }
	if err := fs.Parse(args); err != nil {
		return err
	}
	path := configs.RepoConfigFile
	if fs.NArg() > 0 {
		path = fs.Arg(0)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	cfg, err := configs.ParseRepoConfig(path, data)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitError(1)
	}
	// The sweep: block's expressions are parsed when a sweep starts; check
	// them here too, so that a malformed space fails before anyone asks.
	if cfg.Sweep != nil {
		if _, err := sweep.NewSpec(cfg, ""); err != nil {
			var ce *configs.ConfigError
			if errors.As(err, &ce) {
				ce.File = path
			}
			fmt.Fprintln(stderr, err)
			return exitError(1)
		}
	}
	fmt.Fprintf(stdout, "%s: valid — train %q, %d metric file(s), %d metric(s) with goals or gates, timeout %s, runner %s, %d deploy environment(s)\n",
		path, cfg.Pipeline.Train, len(cfg.Pipeline.Metrics), len(cfg.Metrics), cfg.Pipeline.Timeout, cfg.Pipeline.Runner, len(cfg.Deploy))
	return nil
}
