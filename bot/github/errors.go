package github

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/bradleyfalzon/ghinstallation/v2"
	gh "github.com/google/go-github/v60/github"

	"github.com/mlbot/mlbot/bot"
)

// defaultRetryAfter is how long to wait after a rate limit whose answer
// said nothing about when to come back; GitHub's documentation asks for
// at least a minute after a secondary rate limit.
const defaultRetryAfter = time.Minute

// wrap turns what go-github or ghinstallation returned into mlbot's error
// vocabulary: *bot.RateLimitError for primary and secondary rate limits,
// *bot.HostError for any other answer, and a wrapped transport error when
// there was no answer. The messages come from GitHub's JSON or from the
// request line, never from headers, so no token can end up in them.
func (c *Client) wrap(method, path string, err error) error {
	path = c.baseURL.Path + path
	var (
		rle   *gh.RateLimitError
		abuse *gh.AbuseRateLimitError
		er    *gh.ErrorResponse
		ie    *ghinstallation.HTTPError
	)
	switch {
	case errors.As(err, &rle):
		return &bot.RateLimitError{Forge: ForgeName, RetryAfter: until(rle.Rate.Reset.Time), Message: rle.Message}
	case errors.As(err, &abuse):
		d := defaultRetryAfter
		if abuse.RetryAfter != nil && *abuse.RetryAfter > 0 {
			d = *abuse.RetryAfter
		}
		return &bot.RateLimitError{Forge: ForgeName, RetryAfter: d, Message: abuse.Message}
	case errors.As(err, &er) && er.Response != nil:
		return fromResponse(method, path, er.Response, errorMessage(er))
	case errors.As(err, &ie) && ie.Response != nil:
		// ghinstallation hands over the token endpoint's answer unread
		// and unclosed on a non-2xx status.
		var body struct {
			Message string `json:"message"`
		}
		if ie.Response.Body != nil {
			data, _ := io.ReadAll(io.LimitReader(ie.Response.Body, 64<<10))
			ie.Response.Body.Close()
			_ = json.Unmarshal(data, &body)
		}
		msg := body.Message
		if msg == "" {
			msg = http.StatusText(ie.Response.StatusCode)
		}
		return fromResponse(http.MethodPost, "", ie.Response, "installation token: "+msg)
	}
	return fmt.Errorf("github: %s %s: %w", method, path, err)
}

// fromResponse classifies a non-2xx answer. A 403 or 429 carrying
// Retry-After or an exhausted X-RateLimit-Remaining is a rate limit even
// when go-github did not recognise it (it only knows 403s), a 429 is one
// by definition, and so is a 403 whose message says so: GitHub documents
// a secondary limit by its message alone, with no header required, and
// asks for a wait of at least a minute then.
func fromResponse(method, path string, resp *http.Response, msg string) error {
	if resp.Request != nil {
		method, path = resp.Request.Method, resp.Request.URL.Path
	}
	code := resp.StatusCode
	if code == http.StatusForbidden || code == http.StatusTooManyRequests {
		if d, ok := retryAfter(resp.Header); ok {
			return &bot.RateLimitError{Forge: ForgeName, RetryAfter: d, Message: msg}
		}
		if code == http.StatusTooManyRequests || strings.Contains(strings.ToLower(msg), "rate limit") {
			return &bot.RateLimitError{Forge: ForgeName, RetryAfter: defaultRetryAfter, Message: msg}
		}
	}
	return &bot.HostError{Forge: ForgeName, Method: method, Path: path, StatusCode: code, Message: msg}
}

// retryAfter reads Retry-After (seconds or an HTTP date), then an
// exhausted primary limit's X-RateLimit-Reset.
func retryAfter(h http.Header) (time.Duration, bool) {
	if v := h.Get("Retry-After"); v != "" {
		if s, err := strconv.Atoi(v); err == nil && s >= 0 {
			return time.Duration(s) * time.Second, true
		}
		if t, err := http.ParseTime(v); err == nil {
			return until(t), true
		}
		return defaultRetryAfter, true
	}
	if h.Get("X-RateLimit-Remaining") == "0" {
		if s, err := strconv.ParseInt(h.Get("X-RateLimit-Reset"), 10, 64); err == nil {
			return until(time.Unix(s, 0)), true
		}
		return defaultRetryAfter, true
	}
	return 0, false
}

// until is how long to wait for t. A reset already past still waits a
// second, since GitHub's clock and ours need not agree.
func until(t time.Time) time.Duration {
	if t.IsZero() {
		return defaultRetryAfter
	}
	if d := time.Until(t); d > time.Second {
		return d.Round(time.Second)
	}
	return time.Second
}

// errorMessage joins GitHub's message with its validation errors, which
// carry the useful part of a 422 ("body is too long …").
func errorMessage(er *gh.ErrorResponse) string {
	msg := er.Message
	if msg == "" {
		msg = http.StatusText(er.Response.StatusCode)
	}
	var details []string
	for _, e := range er.Errors {
		switch {
		case e.Message != "":
			details = append(details, e.Message)
		case e.Field != "":
			details = append(details, e.Field+" "+e.Code)
		}
	}
	if len(details) > 0 {
		msg += ": " + strings.Join(details, "; ")
	}
	return msg
}
