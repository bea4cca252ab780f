package main

import (
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/mlbot/mlbot/bot"
	"github.com/mlbot/mlbot/bot/github"
	"github.com/mlbot/mlbot/bot/gitlab"
	"github.com/mlbot/mlbot/configs"
	"github.com/mlbot/mlbot/jobs"
	"github.com/mlbot/mlbot/web"
)

// buildLogins configures the code hosts people log in to the pages with
// (MLBOT_UI_AUTH=oauth): each host with an OAuth client.
func buildLogins(cfg *configs.Server) ([]bot.OAuth, error) {
	if cfg.UIAuth != configs.UIAuthOAuth {
		return nil, nil
	}
	hc := &http.Client{Timeout: 30 * time.Second}
	var out []bot.OAuth
	if cfg.GitHubOAuthClientID != "" {
		o, err := github.NewOAuth(github.OAuthOptions{APIURL: cfg.GitHubAPIURL, ClientID: cfg.GitHubOAuthClientID,
			ClientSecret: cfg.GitHubOAuthClientSecret, HTTPClient: &http.Client{Timeout: hc.Timeout, Transport: bot.InstrumentTransport("github", nil)}})
		if err != nil {
			return nil, fmt.Errorf("MLBOT_GITHUB_OAUTH_CLIENT_ID: %w", err)
		}
		out = append(out, o)
	}
	if cfg.GitLabOAuthClientID != "" {
		o, err := gitlab.NewOAuth(gitlab.OAuthOptions{BaseURL: cfg.GitLabURL, ClientID: cfg.GitLabOAuthClientID,
			ClientSecret: cfg.GitLabOAuthClientSecret, HTTPClient: &http.Client{Timeout: hc.Timeout, Transport: bot.InstrumentTransport("gitlab", nil)}})
		if err != nil {
			return nil, fmt.Errorf("MLBOT_GITLAB_OAUTH_CLIENT_ID: %w", err)
		}
		out = append(out, o)
	}
	return out, nil
}

// pageHosts are the code hosts the pages ask who may read a repository.
func pageHosts(forges []jobs.ForgeSet) map[string]web.PermissionAsker {
	out := map[string]web.PermissionAsker{}
	for _, fs := range forges {
		out[fs.Forge.Name()] = fs.Forge
	}
	return out
}

// warnUIAuth says loudly, at start, when the pages are open to anyone
// who reaches the port, and how to close them.
func warnUIAuth(cfg *configs.Server, log *slog.Logger) {
	if cfg.UIAuth == configs.UIAuthNone {
		log.Warn("MLBOT_UI_AUTH=none: THE WEB PAGES NEED NO LOGIN — anyone who can reach " + cfg.PublicURL +
			" reads every repository's runs, logs, models and deploys. Configure MLBOT_GITHUB_OAUTH_CLIENT_ID and _SECRET (or the GitLab pair) to require a login.")
	}
	if cfg.UIAuth == configs.UIAuthOAuth && cfg.MetricsToken == "" {
		log.Warn("GET /metrics needs no token: anyone who can reach " + cfg.PublicURL +
			" reads the name of every repository with a deployed model, its environments, versions and metrics, which the login keeps from the pages." +
			" Set MLBOT_METRICS_TOKEN and give it to Prometheus (authorization: credentials_file), or keep /metrics off public networks.")
	}
}
