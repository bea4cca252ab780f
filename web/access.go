package web

import (
	"context"
	"fmt"
	"net/http"

	"github.com/mlbot/mlbot/bot"
)

// With AuthOAuth a repository's pages (its runs, models and deploys) are
// for people who may read the repository on its code host. Who may is
// asked of the host with mlbot's own credentials (the same permission
// API the comment commands use) and remembered for store.PermissionTTL,
// so that a person removed from a repository loses its pages within a
// minute.

// readable reports whether the person of se may read repo: they logged
// in with repo's host and the host gives them at least read access. It
// answers false, without asking, for someone not logged in with the host.
func (s *Server) readable(ctx context.Context, se *session, repo bot.Repo) (bool, error) {
	if s.opts.Auth != AuthOAuth {
		return true, nil
	}
	u := se.user(repo.Forge)
	if u == nil {
		return false, nil
	}
	p, ok, err := s.opts.Sessions.CachedPermission(ctx, repo, u.PermissionName)
	if err != nil {
		return false, err
	}
	if !ok {
		host := s.opts.Hosts[repo.Forge]
		if host == nil {
			return false, fmt.Errorf("no %s client to ask who may read %s", repo.Forge, repo.FullName)
		}
		if p, err = host.GetPermission(ctx, repo, u.PermissionName); err != nil {
			return false, err
		}
		if err := s.opts.Sessions.CachePermission(ctx, repo, u.PermissionName, p); err != nil {
			s.log.Warn("permission not cached", "err", err)
		}
	}
	return p.AtLeast(bot.PermissionRead), nil
}

// allow reports whether the person may see a page of repo. When not, it
// has answered: someone not logged in with repo's host is sent to log in
// (or, for a stream or JSON, told 401), and someone the host does not let
// read repo gets the answer an unknown page gets, so that nobody learns
// from mlbot which private repositories exist.
func (s *Server) allow(w http.ResponseWriter, r *http.Request, p *pageData, repo bot.Repo, browser bool) bool {
	if s.opts.Auth != AuthOAuth {
		return true
	}
	u := p.session.user(repo.Forge)
	if u == nil {
		if s.logins[repo.Forge] == nil {
			s.notFound(w, r, "nobody can log in with "+forgeTitle(repo.Forge)+" here, where this page's repository lives")
			return false
		}
		if !browser {
			w.Header().Set("WWW-Authenticate", `Cookie realm="mlbot", login="/login/`+repo.Forge+`"`)
			http.Error(w, "log in with "+forgeTitle(repo.Forge)+" first: "+loginURL(repo.Forge, r), http.StatusUnauthorized)
			return false
		}
		http.Redirect(w, r, loginURL(repo.Forge, r), http.StatusFound)
		return false
	}
	ok, err := s.readable(r.Context(), p.session, repo)
	if err != nil {
		s.log.Warn("permission unknown", "forge", repo.Forge, "repo", repo.FullName, "user", u.Login, "err", err)
		s.unavailable(w, r, forgeTitle(repo.Forge)+", asked who may read "+repo.FullName)
		return false
	}
	if !ok {
		s.notFound(w, r, fmt.Sprintf("there is no such page, or %s does not let you (%s) read its repository; log in as someone else if you should see it",
			forgeTitle(repo.Forge), u.Login))
		return false
	}
	return true
}
