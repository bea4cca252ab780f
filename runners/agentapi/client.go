package agentapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// ErrOffset is wrapped by Client.AppendLog's error when mlbot holds a
// different log length than the chunk's offset; the error is an
// *OffsetError carrying that length.
var ErrOffset = errors.New("log offset mismatch")

// OffsetError says where mlbot's copy of the log ends.
type OffsetError struct {
	// Have is the log's length at mlbot.
	Have int64
}

// Error describes the mismatch.
func (e *OffsetError) Error() string {
	return fmt.Sprintf("%v: mlbot has %d bytes", ErrOffset, e.Have)
}

// Unwrap returns ErrOffset.
func (e *OffsetError) Unwrap() error { return ErrOffset }

// StatusError is an unexpected HTTP answer of mlbot.
type StatusError struct {
	// Method and Path name the request.
	Method, Path string
	// Code is the HTTP status code.
	Code int
	// Message is the start of the answer's body.
	Message string
}

// Error describes the answer.
func (e *StatusError) Error() string {
	return fmt.Sprintf("%s %s: %d %s", e.Method, e.Path, e.Code, e.Message)
}

// Client calls the agent API of one run. It is what `mlbot agent` uses.
type Client struct {
	base  string
	token string
	http  *http.Client
}

// NewClient returns a client of the mlbot at rawURL ("http://…", "https://…"
// or "unix:///path") with the run's token.
func NewClient(rawURL, token string) (*Client, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", EnvURL, err)
	}
	c := &Client{token: token, http: &http.Client{}}
	switch u.Scheme {
	case "http", "https":
		c.base = strings.TrimSuffix(u.String(), "/")
	case "unix":
		sock := u.Path
		c.base = "http://mlbot"
		c.http.Transport = &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		}}
	default:
		return nil, fmt.Errorf("%s %q: want http://, https:// or unix://", EnvURL, rawURL)
	}
	return c, nil
}

func (c *Client) do(ctx context.Context, method, path string, body io.Reader, hdr http.Header) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, err
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	return c.http.Do(req)
}

func statusError(resp *http.Response) error {
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	return &StatusError{Method: resp.Request.Method, Path: resp.Request.URL.Path, Code: resp.StatusCode,
		Message: strings.TrimSpace(string(msg))}
}

// GetJob fetches the run's job.
func (c *Client) GetJob(ctx context.Context) (Job, error) {
	var job Job
	resp, err := c.do(ctx, http.MethodGet, PathJob, nil, nil)
	if err != nil {
		return job, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return job, statusError(resp)
	}
	if err := json.NewDecoder(resp.Body).Decode(&job); err != nil {
		return job, fmt.Errorf("job: %w", err)
	}
	return job, nil
}

// GetSource opens the source archive; the caller closes it.
func (c *Client) GetSource(ctx context.Context) (io.ReadCloser, error) {
	resp, err := c.do(ctx, http.MethodGet, PathSource, nil, nil)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		return nil, statusError(resp)
	}
	return resp.Body, nil
}

// AppendLog sends chunk as the log from offset on and returns the log's
// new length. When mlbot holds another length, the error is an
// *OffsetError with it.
func (c *Client) AppendLog(ctx context.Context, offset int64, chunk []byte) (int64, error) {
	hdr := http.Header{"Content-Range": {ContentRange(offset, len(chunk))}, "Content-Type": {"text/plain"}}
	resp, err := c.do(ctx, http.MethodPatch, PathLog, bytes.NewReader(chunk), hdr)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	have, perr := strconv.ParseInt(resp.Header.Get(HeaderLogOffset), 10, 64)
	switch {
	case resp.StatusCode == http.StatusRequestedRangeNotSatisfiable && perr == nil:
		return 0, &OffsetError{Have: have}
	case resp.StatusCode != http.StatusAccepted:
		return 0, statusError(resp)
	case perr != nil:
		return 0, fmt.Errorf("PATCH %s: no %s in the answer", PathLog, HeaderLogOffset)
	}
	return have, nil
}

// PutFile uploads a metric file or an artifact (kind) at the slash-
// separated path rel, with its digest "sha256:<hex>"; body is streamed.
func (c *Client) PutFile(ctx context.Context, kind, rel, digest string, size int64, body io.Reader) error {
	hdr := http.Header{HeaderDigest: {digest}, "Content-Type": {"application/octet-stream"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, c.base+PathFiles+kind+"/"+escapePath(rel), body)
	if err != nil {
		return err
	}
	req.ContentLength = size
	req.Header = hdr
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return statusError(resp)
	}
	return nil
}

// ReportStep posts how a step ended.
func (c *Client) ReportStep(ctx context.Context, r StepReport) error {
	return c.postJSON(ctx, PathSteps, r)
}

// ReportDone posts the agent's end.
func (c *Client) ReportDone(ctx context.Context, d Done) error {
	return c.postJSON(ctx, PathDone, d)
}

func (c *Client) postJSON(ctx context.Context, path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	resp, err := c.do(ctx, http.MethodPost, path, bytes.NewReader(b), http.Header{"Content-Type": {"application/json"}})
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent && resp.StatusCode != http.StatusOK {
		return statusError(resp)
	}
	return nil
}

// escapePath escapes each segment of a slash-separated path.
func escapePath(rel string) string {
	parts := strings.Split(rel, "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	return strings.Join(parts, "/")
}
