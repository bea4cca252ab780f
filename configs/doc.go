// Package configs holds the two configurations mlbot reads: the per-repository
// .mlbot.yml file (RepoConfig, parsed by ParseRepoConfig) and the server's own
// settings (Server, loaded from flags, environment variables and an optional
// YAML file by ServerFlags.Load).
//
// A .mlbot.yml is written by users and often read from an untrusted pull
// request, so parsing never stops at the first problem and every problem is a
// ConfigError carrying the file, line and column of the offending YAML node:
// the bot quotes these errors verbatim in a failed status and a PR comment.
//
// The package imports nothing else from mlbot, so every other package may
// depend on it.
package configs
