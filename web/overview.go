package web

import (
	"context"
	"net/http"
	"sort"
	"strings"

	"github.com/mlbot/mlbot/bot"
	"github.com/mlbot/mlbot/jobs/registry"
	"github.com/mlbot/mlbot/jobs/store"
)

// Bounds of the overview.
const (
	overviewRepos = 100 // repositories listed
	overviewRuns  = 20  // recent runs listed
)

// repoSummary is a repository as the overview lists it.
type repoSummary struct {
	Repo bot.Repo
	// Key is the repo key ("github:acme/model").
	Key  string
	Envs []envSummary
	// Last is the newest run, or nil.
	Last *store.Run
}

// envSummary is an environment and the deploy that runs there now (nil
// when no deploy succeeded).
type envSummary struct {
	Name   string
	Deploy *registry.Deploy
}

// repoFromKey names the repository of a repo key when no run says more
// about it.
func repoFromKey(key string) bot.Repo {
	forge, name, _ := strings.Cut(key, ":")
	return bot.Repo{Forge: forge, FullName: name}
}

// repoKeys lists the repositories mlbot knows, those with recent runs
// first.
func (s *Server) repoKeys(ctx context.Context) ([]string, error) {
	keys, err := s.opts.Runs.RunRepos(ctx)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, k := range keys {
		seen[k] = true
	}
	if s.opts.Models != nil {
		models, err := s.opts.Models.Repos(ctx)
		if err != nil {
			return nil, err
		}
		for _, k := range models {
			if !seen[k] {
				keys = append(keys, k)
				seen[k] = true
			}
		}
	}
	return keys, nil
}

// environments returns repo's environments with what runs there now.
func (s *Server) environments(ctx context.Context, key string) ([]envSummary, error) {
	if s.opts.Models == nil {
		return nil, nil
	}
	envs, err := s.opts.Models.Environments(ctx, key)
	if err != nil {
		return nil, err
	}
	out := make([]envSummary, 0, len(envs))
	for _, env := range envs {
		d, err := s.opts.Models.Current(ctx, key, env)
		if err != nil {
			return nil, err
		}
		out = append(out, envSummary{Name: env, Deploy: d})
	}
	return out, nil
}

// serveOverview serves GET /: the repositories the person may read, with
// what runs in each environment, and the newest runs.
func (s *Server) serveOverview(w http.ResponseWriter, r *http.Request, p *pageData) {
	if p.LoginOn && len(p.Users) == 0 {
		http.Redirect(w, r, "/login?next=%2F", http.StatusFound)
		return
	}
	ctx := r.Context()
	keys, err := s.repoKeys(ctx)
	if err != nil {
		s.log.Error("repositories unreadable", "err", err)
		s.unavailable(w, r, "the run store")
		return
	}
	var (
		repos  []repoSummary
		runs   []*store.Run
		hidden = map[string]bool{} // forges the person is not logged in with
	)
	for _, key := range keys {
		if len(repos) == overviewRepos {
			break
		}
		recent, err := s.opts.Runs.RecentRuns(ctx, key, overviewRuns)
		if err != nil {
			s.log.Error("runs unreadable", "repo", key, "err", err)
			s.unavailable(w, r, "the run store")
			return
		}
		sum := repoSummary{Key: key, Repo: repoFromKey(key)}
		if len(recent) > 0 {
			sum.Repo, sum.Last = recent[0].Repo, recent[0]
		}
		if p.session.user(sum.Repo.Forge) == nil && p.LoginOn {
			hidden[sum.Repo.Forge] = true
			continue
		}
		ok, err := s.readable(ctx, p.session, sum.Repo)
		if err != nil {
			s.log.Warn("permission unknown", "repo", key, "err", err)
			continue
		}
		if !ok {
			continue
		}
		if sum.Envs, err = s.environments(ctx, key); err != nil {
			s.log.Error("environments unreadable", "repo", key, "err", err)
			s.unavailable(w, r, "the model registry")
			return
		}
		repos = append(repos, sum)
		runs = append(runs, recent...)
	}
	sort.SliceStable(runs, func(i, j int) bool { return runs[i].Created.After(runs[j].Created) })
	if len(runs) > overviewRuns {
		runs = runs[:overviewRuns]
	}
	var logins []loginOption
	for forge := range hidden {
		if s.logins[forge] != nil {
			logins = append(logins, loginOption{Forge: forge, Title: forgeTitle(forge), Href: loginURL(forge, r)})
		}
	}
	sort.Slice(logins, func(i, j int) bool { return logins[i].Forge < logins[j].Forge })
	p.Title = "Overview"
	s.render(w, r, overviewPageTemplate, p, struct {
		Repos  []repoSummary
		Runs   []*store.Run
		Logins []loginOption
	}{repos, runs, logins})
}
