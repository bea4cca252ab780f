package gitlab

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	gl "gitlab.com/gitlab-org/api/client-go"

	"github.com/mlbot/mlbot/bot"
)

// DefaultRetryAfter is how long a 429 asks us to wait when GitLab sent
// neither Retry-After nor RateLimit-Reset.
const DefaultRetryAfter = 60 * time.Second

// apiError turns what the gl client returned for a failed call into mlbot's
// typed errors: *bot.RateLimitError for 429, *bot.HostError for any other
// answer, and a wrapped transport error when no answer arrived. method and
// path describe the call when the response does not; the token never
// appears in either, as gl sends it in a header.
func apiError(method, path string, resp *gl.Response, err error) error {
	if resp == nil || resp.Response == nil {
		return fmt.Errorf("gitlab API %s %s: %w", method, path, err)
	}
	if req := resp.Request; req != nil {
		method, path = req.Method, req.URL.EscapedPath()
	}
	if resp.StatusCode < 300 {
		// The call succeeded but its answer did not decode: retrying will
		// not help, and it is no host refusal either.
		return fmt.Errorf("gitlab API %s %s: %d answer: %w", method, path, resp.StatusCode, err)
	}
	msg := errorMessage(err)
	if resp.StatusCode == http.StatusTooManyRequests {
		return &bot.RateLimitError{
			Forge:      ForgeName,
			RetryAfter: retryAfter(resp.Header, time.Now()),
			Message:    msg,
		}
	}
	return &bot.HostError{
		Forge:      ForgeName,
		Method:     method,
		Path:       path,
		StatusCode: resp.StatusCode,
		Message:    msg,
	}
}

// errorMessage extracts GitLab's own words from an API error. GitLab
// answers {"message": "..."}, {"message": {"field": ["..."]}} or
// {"error": "..."}; gl flattens the first two into Go-map syntax, so the
// body is read again here.
func errorMessage(err error) string {
	var er *gl.ErrorResponse
	if !errors.As(err, &er) {
		if errors.Is(err, gl.ErrNotFound) {
			// gl drops the body of a 404 unread.
			return "404 Not Found"
		}
		if err != nil {
			return err.Error()
		}
		return ""
	}
	body := strings.TrimSpace(string(er.Body))
	var obj struct {
		Message json.RawMessage `json:"message"`
		Error   string          `json:"error"`
	}
	if json.Unmarshal(er.Body, &obj) != nil {
		// Rate-limit answers and proxies in front of GitLab send plain text.
		return truncate(body, 500)
	}
	var s string
	switch {
	case json.Unmarshal(obj.Message, &s) == nil && s != "":
		return s
	case len(obj.Message) > 0 && string(obj.Message) != "null":
		return truncate(string(obj.Message), 500)
	case obj.Error != "":
		return obj.Error
	}
	return truncate(body, 500)
}

// retryAfter reads how long GitLab asks a rate-limited client to wait:
// Retry-After in seconds (or as an HTTP date), else RateLimit-Reset as a
// Unix time, else DefaultRetryAfter.
func retryAfter(h http.Header, now time.Time) time.Duration {
	if v := strings.TrimSpace(h.Get("Retry-After")); v != "" {
		if secs, err := strconv.ParseInt(v, 10, 64); err == nil && secs >= 0 {
			return time.Duration(secs) * time.Second
		}
		if at, err := http.ParseTime(v); err == nil {
			if d := at.Sub(now); d > 0 {
				return d
			}
			return 0
		}
	}
	if v := strings.TrimSpace(h.Get("RateLimit-Reset")); v != "" {
		if unix, err := strconv.ParseInt(v, 10, 64); err == nil && unix > 0 {
			if d := time.Unix(unix, 0).Sub(now); d > 0 {
				return d.Round(time.Second)
			}
			return 0
		}
	}
	return DefaultRetryAfter
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	// Cutting bytes may split a rune; drop the broken tail rather than
	// put invalid UTF-8 into logs.
	return strings.ToValidUTF8(s[:n], "") + "…"
}
