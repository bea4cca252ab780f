package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/mlbot/mlbot/configs"
)

// loadServer parses a server command's flags and the environment.
func loadServer(name string, args []string, stderr io.Writer) (*configs.Server, error) {
	fs := flag.NewFlagSet("mlbot "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	sf := configs.NewServerFlags(fs)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: mlbot %s [flags]\n\nEvery flag is also an MLBOT_* environment variable (--redis-url is MLBOT_REDIS_URL)\nand a key of the --config YAML file. Flags beat the environment, which beats the file.\n\n", name)
		fs.PrintDefaults()
		fmt.Fprint(stderr, "\nEnvironment only:\n  MLBOT_SECRETS\n    \tcomma-separated names of environment variables holding secrets; trusted runs whose\n    \t.mlbot.yml lists a name under `secrets:` get it, and every value is masked in logs and comments\n")
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	cfg, err := sf.Load(os.Getenv)
	if err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// cmdServe runs the webhook server and the workers until SIGTERM/SIGINT.
func cmdServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return serveUntilDone(ctx, "serve", args, stderr, true)
}

// cmdWorker runs workers only; any number may share one Redis.
func cmdWorker(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return serveUntilDone(ctx, "worker", args, stderr, false)
}

func serveUntilDone(ctx context.Context, name string, args []string, stderr io.Writer, withHTTP bool) error {
	cfg, err := loadServer(name, args, stderr)
	if err != nil {
		return err
	}
	log := newLogger(cfg, os.Stderr)
	if err := hardenProcess(); err != nil {
		log.Warn("could not make the process non-dumpable; trainings running as this user could read its environment", "err", err)
	}
	a, err := newApp(cfg, log, withHTTP)
	if err != nil {
		return err
	}
	if err := a.Start(); err != nil {
		a.close()
		return err
	}
	<-ctx.Done()
	log.Info("shutting down: no new webhooks; running tasks get the shutdown timeout, then are requeued", "timeout", cfg.ShutdownTimeout)
	a.Shutdown()
	return nil
}
