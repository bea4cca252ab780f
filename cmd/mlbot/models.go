package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mlbot/mlbot/web"
)

const modelsUsage = `usage:
  mlbot models list --repo owner/name [--server URL] [--json]
  mlbot models show --repo owner/name [--server URL] [--json] VERSION
  mlbot models gc [--dry-run] [-v] [server flags]

The registry is read over the server's HTTP API (GET /api/v1/models), so
this works against a remote mlbot. --repo is "owner/name" or, when the name
exists on both forges, "github:owner/name" / "gitlab:group/project".
--server defaults to $MLBOT_PUBLIC_URL, else http://localhost:8080.

gc applies the retention policy (MLBOT_RETENTION_*) to the registry and the
artifact store of the mlbot whose MLBOT_REDIS_URL and MLBOT_DATA_DIR it is
given; --dry-run lists what would go. See "mlbot models gc --help".
`

// cmdModels lists a repository's model versions or shows one, or
// collects what retention does not keep (gc).
func cmdModels(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "gc" {
		return cmdModelsGC(ctx, args[1:], stdout, stderr)
	}
	if len(args) == 0 || (args[0] != "list" && args[0] != "show") {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
			fmt.Fprint(stdout, modelsUsage)
			return nil
		}
		fmt.Fprint(stderr, modelsUsage)
		return exitError(2)
	}
	sub := args[0]
	fs := flag.NewFlagSet("mlbot models "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, modelsUsage) }
	repo := fs.String("repo", "", `repository: "owner/name" or "forge:owner/name"`)
	server := fs.String("server", defaultServer(), "mlbot server URL")
	asJSON := fs.Bool("json", false, "print the API's JSON answer")
	// Parse flags on both sides of the positional version number, so that
	// "show 3 --repo acme/model" works as well as "show --repo acme/model 3".
	var positional []string
	rest := args[1:]
	for {
		if err := fs.Parse(rest); err != nil {
			return err
		}
		if fs.NArg() == 0 {
			break
		}
		positional = append(positional, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	if *repo == "" {
		fmt.Fprintln(stderr, "mlbot models: --repo is required")
		fmt.Fprint(stderr, modelsUsage)
		return exitError(2)
	}
	var number int
	switch {
	case sub == "list" && len(positional) == 0:
	case sub == "show" && len(positional) == 1:
		n, err := strconv.Atoi(strings.TrimPrefix(positional[0], "v"))
		if err != nil || n < 1 {
			fmt.Fprintf(stderr, "mlbot models show: version must be a positive number, not %q\n", positional[0])
			return exitError(2)
		}
		number = n
	default:
		fmt.Fprint(stderr, modelsUsage)
		return exitError(2)
	}

	raw, resp, err := fetchModels(ctx, *server, *repo, number)
	if err != nil {
		return err
	}
	if *asJSON {
		_, err := stdout.Write(raw)
		return err
	}
	if sub == "list" {
		return printModelList(stdout, resp)
	}
	return printModel(stdout, resp)
}

// defaultServer is where the CLI finds mlbot when --server is not given.
func defaultServer() string {
	if u := os.Getenv("MLBOT_PUBLIC_URL"); u != "" {
		return u
	}
	return "http://localhost:8080"
}

// fetchModels asks server's registry API about repo (and one version when
// number > 0), returning the body as sent and decoded.
func fetchModels(ctx context.Context, server, repo string, number int) ([]byte, *web.ModelsResponse, error) {
	u, err := url.Parse(strings.TrimRight(server, "/") + "/api/v1/models")
	if err != nil || u.Host == "" {
		return nil, nil, fmt.Errorf("bad --server %q: want a URL such as http://localhost:8080", server)
	}
	q := url.Values{"repo": {repo}}
	if number > 0 {
		q.Set("version", strconv.Itoa(number))
	}
	u.RawQuery = q.Encode()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Accept", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("asking %s: %w", server, err)
	}
	defer res.Body.Close()
	// A registry answer is at most a few thousand versions; the bound
	// keeps a wrong --server (a large download) from filling memory.
	body, err := io.ReadAll(io.LimitReader(res.Body, 64<<20))
	if err != nil {
		return nil, nil, fmt.Errorf("reading the answer of %s: %w", server, err)
	}
	if res.StatusCode != http.StatusOK {
		var e web.ErrorResponse
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			return nil, nil, fmt.Errorf("%s: %s", res.Status, e.Error)
		}
		return nil, nil, fmt.Errorf("%s answered %s (is it an mlbot server?)", server, res.Status)
	}
	var out web.ModelsResponse
	if err := json.Unmarshal(body, &out); err != nil {
		return nil, nil, fmt.Errorf("decoding the answer of %s: %w", server, err)
	}
	return body, &out, nil
}

// deployedTo returns the environments that now run version n, sorted.
func deployedTo(resp *web.ModelsResponse, n int) []string {
	var envs []string
	for env, d := range resp.Deployments {
		if d.Version == n {
			envs = append(envs, env)
		}
	}
	sort.Strings(envs)
	return envs
}

// listMetrics is how many metrics a row of the list shows; show prints all.
const listMetrics = 3

func printModelList(w io.Writer, resp *web.ModelsResponse) error {
	if len(resp.Versions) == 0 {
		_, err := fmt.Fprintf(w, "%s has no model versions yet\n", resp.Repo)
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "VERSION\tSHA\tCREATED\tREASON\tPASSED\tMETRICS\tDEPLOYED")
	for _, v := range resp.Versions {
		names := sortedKeys(v.Metrics)
		var ms []string
		for _, k := range names[:min(len(names), listMetrics)] {
			ms = append(ms, k+"="+formatMetric(v.Metrics[k]))
		}
		if len(names) > listMetrics {
			ms = append(ms, "…")
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n",
			v.Number, short(v.SHA), formatTime(v.Created), oneLine(v.Reason), yesNo(v.Passed),
			dash(strings.Join(ms, " ")), dash(strings.Join(deployedTo(resp, v.Number), ", ")))
	}
	return tw.Flush()
}

func printModel(w io.Writer, resp *web.ModelsResponse) error {
	if len(resp.Versions) != 1 {
		return errors.New("the server answered with no version")
	}
	v := resp.Versions[0]
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "repo\t%s\n", resp.Repo)
	fmt.Fprintf(tw, "version\t%d\n", v.Number)
	fmt.Fprintf(tw, "sha\t%s\n", v.SHA)
	fmt.Fprintf(tw, "run\t%s\n", v.RunID)
	fmt.Fprintf(tw, "created\t%s\n", formatTime(v.Created))
	fmt.Fprintf(tw, "reason\t%s\n", dash(v.Reason))
	if v.Branch != "" {
		fmt.Fprintf(tw, "branch\t%s\n", v.Branch)
	}
	if v.PR != 0 {
		fmt.Fprintf(tw, "pull request\t#%d\n", v.PR)
	}
	fmt.Fprintf(tw, "passed\t%s\n", yesNo(v.Passed))
	fmt.Fprintf(tw, "deployed\t%s\n", dash(strings.Join(deployedTo(resp, v.Number), ", ")))
	if err := tw.Flush(); err != nil {
		return err
	}

	fmt.Fprintln(w, "\nmetrics:")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	if len(v.Metrics) == 0 {
		fmt.Fprintln(tw, "  (none)")
	}
	for _, k := range sortedKeys(v.Metrics) {
		fmt.Fprintf(tw, "  %s\t%s\n", k, formatMetric(v.Metrics[k]))
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	fmt.Fprintln(w, "\nartifacts:")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	if len(v.Artifacts) == 0 {
		fmt.Fprintln(w, "  (none)")
	}
	for _, a := range v.Artifacts {
		// Exact bytes, not "1.2 MB": the size is what a deploy verifies.
		fmt.Fprintf(tw, "  %s\t%d bytes\tsha256:%s\n", a.Path, a.Size, a.SHA256)
	}
	return tw.Flush()
}

func sortedKeys(m map[string]float64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// formatMetric keeps enough digits to tell apart values a gate such as
// max_drop: 0.005 distinguishes, without float noise.
func formatMetric(f float64) string { return strconv.FormatFloat(f, 'g', 6, 64) }

func formatTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04")
}

func short(sha string) string {
	if len(sha) > 7 {
		return sha[:7]
	}
	return dash(sha)
}

// oneLine keeps a free-text field from breaking the table's rows and columns.
func oneLine(s string) string { return dash(strings.Join(strings.Fields(s), " ")) }

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
