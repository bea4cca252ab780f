package runners

import "strings"

// ChildEnv builds the environment of a pipeline step from the worker's own
// (parent, usually os.Environ()). The step is untrusted code as far as the
// bot's credentials go, so it drops every MLBOT_* variable (tokens, webhook
// secrets), git's environment-borne configuration (GIT_CONFIG_*, which is
// how runners/git passes an Authorization header) and GIT_ASKPASS, and any
// variable whose value equals or contains one of secrets (at least 4
// bytes, as LogSink masks). Then it appends extra ("K=V", deliberately
// passed, so not filtered) and sets CI=true, the convention tools use to
// turn off prompts and progress bars. A later value replaces an earlier one
// of the same name, so each name appears once.
func ChildEnv(parent []string, secrets []string, extra ...string) []string {
	var long []string
	for _, s := range secrets {
		if len(s) >= minSecretLen {
			long = append(long, s)
		}
	}
	out := make([]string, 0, len(parent)+len(extra)+1)
	index := map[string]int{} // name -> position in out
	set := func(kv string) {
		name, _, _ := strings.Cut(kv, "=")
		if i, ok := index[name]; ok {
			out[i] = kv
			return
		}
		index[name] = len(out)
		out = append(out, kv)
	}
	for _, kv := range parent {
		name, value, ok := strings.Cut(kv, "=")
		if !ok || name == "" || dropped(name) || containsAny(value, long) {
			continue
		}
		set(kv)
	}
	for _, kv := range extra {
		if name, _, ok := strings.Cut(kv, "="); ok && name != "" {
			set(kv)
		}
	}
	set("CI=true")
	return out
}

// dropped reports whether a variable of this name must not reach a step.
func dropped(name string) bool {
	return strings.HasPrefix(name, "MLBOT_") ||
		name == "GIT_CONFIG" || strings.HasPrefix(name, "GIT_CONFIG_") ||
		name == "GIT_ASKPASS"
}

func containsAny(value string, secrets []string) bool {
	for _, s := range secrets {
		if strings.Contains(value, s) {
			return true
		}
	}
	return false
}
