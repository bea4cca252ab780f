package configs

import (
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"

	"gopkg.in/yaml.v3"
)

// Files holding credentials must be mlbot's alone, as ssh insists for a
// private key: a file that group or others may read leaks its secret to
// every account (and every training running as another uid) on the host,
// and one they may write lets them replace it.

// CheckPrivateMode refuses a file whose mode lets group or others read or
// write it. name and what (such as "config file") appear in the error,
// with the command that fixes it.
func CheckPrivateMode(name, what string, info fs.FileInfo) error {
	if perm := info.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("%s %s is readable or writable by group or others (mode %#o): run `chmod 600 %s`", what, name, perm, name)
	}
	return nil
}

// ReadPrivateFile reads a file holding a credential, such as the GitHub
// App's private key, refusing it when CheckPrivateMode does. The mode is
// checked on the open file, so it is the mode of what is read. Symbolic
// links are followed (secret mounts use them), and the target's mode
// counts.
func ReadPrivateFile(name, what string) ([]byte, error) {
	data, info, err := readFileInfo(name)
	if err != nil {
		return nil, err
	}
	if err := CheckPrivateMode(name, what, info); err != nil {
		return nil, err
	}
	return data, nil
}

// secretFileKeys are the config file keys whose values are credentials.
var secretFileKeys = []string{"github_token", "github_webhook_secret", "gitlab_token",
	"gitlab_webhook_secret", "task_key", "api_token", "github_oauth_client_secret", "gitlab_oauth_client_secret"}

// heldSecret names the first credential among a config file's keys: a key
// of secretFileKeys with a value, or a URL with user information (a Redis
// password, a token as the user name). It returns "" when there is none.
func heldSecret(file map[string]pair) string {
	for _, k := range secretFileKeys {
		if p, ok := file[k]; ok && !isNull(p.value) {
			return k
		}
	}
	for _, st := range serverSettings {
		p, ok := file[st.fileKey()]
		if !ok || isNull(p.value) {
			continue
		}
		v := resolve(p.value)
		if v.Kind != yaml.ScalarNode {
			continue
		}
		if u, err := url.Parse(v.Value); err == nil && u.User != nil {
			return st.fileKey()
		}
	}
	return ""
}

// readFileInfo reads a file and returns the mode of the handle it read.
func readFileInfo(name string) ([]byte, fs.FileInfo, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	data, err := io.ReadAll(f)
	return data, info, err
}
