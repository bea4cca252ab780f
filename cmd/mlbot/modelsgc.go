package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/mlbot/mlbot/configs"
	"github.com/mlbot/mlbot/jobs/registry"
	"github.com/mlbot/mlbot/jobs/store"
)

const modelsGCUsage = `usage:
  mlbot models gc [--dry-run] [-v] [server flags]

Applies the retention policy (MLBOT_RETENTION_DEPLOYS, _MAIN, _DAYS) now:
drops the model versions no rule keeps and deletes the artifact blobs no
remaining version names, as the collector of mlbot serve and mlbot worker
does every MLBOT_RETENTION_INTERVAL. It works on the Redis and the data
directory of the mlbot it cleans (MLBOT_REDIS_URL, MLBOT_DATA_DIR, or the
same flags), and waits for no one: while another process collects it
exits with status 1.

  --dry-run  list what would go (versions and blobs, with sizes), change nothing
  -v         also list the versions kept, each with the reasons it is kept
`

// cmdModelsGC runs one collection, or shows what it would do.
func cmdModelsGC(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("mlbot models gc", flag.ContinueOnError)
	fs.SetOutput(stderr)
	sf := configs.NewServerFlags(fs)
	dryRun := fs.Bool("dry-run", false, "list what would go, change nothing")
	verbose := fs.Bool("v", false, "also list the versions kept, with the reasons")
	fs.Usage = func() {
		fmt.Fprint(stderr, modelsGCUsage)
		fmt.Fprintln(stderr, "\nflags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fmt.Fprint(stderr, modelsGCUsage)
		return exitError(2)
	}
	cfg, err := sf.Load(os.Getenv)
	if err != nil {
		return err
	}
	if err := cfg.Retention.Validate(); err != nil {
		return err
	}
	if cfg.RedisURL == "" {
		return errors.New("MLBOT_REDIS_URL (--redis-url) is not set: gc cleans the registry in the Redis of a running mlbot")
	}
	ep, err := store.ParseURL(cfg.RedisURL)
	if err != nil {
		return fmt.Errorf("MLBOT_REDIS_URL: %w", err)
	}
	rdb := ep.Client()
	defer rdb.Close()
	st := store.New(rdb, ep.Prefix())
	reg := registry.New(st, &registry.ArtifactStore{Dir: filepath.Join(cfg.DataDir, "artifacts")})
	c, err := collect(ctx, st, reg, policyOf(cfg.Retention), *dryRun)
	if errors.Is(err, errCollecting) {
		return fmt.Errorf("%w; try again once it is done", err)
	}
	if err != nil {
		return err
	}
	return printCollection(stdout, c, *verbose)
}

// printCollection writes what a collection dropped and deleted (or, dry,
// would), by repository, then the blobs, then a summary line.
func printCollection(w io.Writer, c *registry.Collection, verbose bool) error {
	if c.DryRun {
		fmt.Fprintln(w, "dry run: nothing is changed")
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, d := range c.Repos {
		if len(d.Drop) == 0 && !verbose {
			continue
		}
		fmt.Fprintf(tw, "%s\n", d.Repo)
		for _, v := range d.Drop {
			fmt.Fprintf(tw, "  drop\tv%d\t%s\t%s\t%s\t%s\n", v.Number, short(v.SHA), formatTime(v.Created), oneLine(v.Reason), bytesText(versionSize(v)))
		}
		if verbose {
			for _, k := range d.Keep {
				v := k.Version
				fmt.Fprintf(tw, "  keep\tv%d\t%s\t%s\t%s\t%s\t%s\n", v.Number, short(v.SHA), formatTime(v.Created), oneLine(v.Reason), bytesText(versionSize(v)), strings.Join(k.Reasons, "; "))
			}
		}
	}
	if len(c.Deleted) > 0 || (verbose && len(c.Held) > 0) {
		fmt.Fprintln(tw, "blobs")
	}
	for _, b := range c.Deleted {
		fmt.Fprintf(tw, "  delete\tsha256:%s\t%s\n", b.Digest, bytesText(b.Size))
	}
	if verbose {
		for _, b := range c.Held {
			fmt.Fprintf(tw, "  hold\tsha256:%s\t%s\tbeing stored by a run\n", b.Digest, bytesText(b.Size))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	verb := "dropped %d %s and deleted %d %s, freeing %s"
	if c.DryRun {
		verb = "would drop %d %s and delete %d %s, freeing %s"
	}
	_, err := fmt.Fprintf(w, verb+"\n", c.Dropped(), plural(c.Dropped(), "version"), len(c.Deleted), plural(len(c.Deleted), "blob"), bytesText(c.Freed()))
	return err
}

// versionSize is the size of a version's artifacts together.
func versionSize(v registry.Version) int64 {
	var n int64
	for _, a := range v.Artifacts {
		n += a.Size
	}
	return n
}

// bytesText writes a size for people, exact below a KiB.
func bytesText(n int64) string {
	if n < 1<<10 {
		return fmt.Sprintf("%d B", n)
	}
	v, units := float64(n)/1024, []string{"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}
	u := 0
	for v >= 1024 && u < len(units)-1 {
		v, u = v/1024, u+1
	}
	return fmt.Sprintf("%.1f %s", v, units[u])
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}
