package web

import (
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mlbot/mlbot/internal/urlsig"
	"github.com/mlbot/mlbot/jobs/report"
)

// TestChartImage fetches a pull request's chart image the way the code
// host's image proxy does, without a session and with login required,
// and attacks the URL: no signature, another run's, a later expiry, an
// expired one, one signed by another install, a path that is not a run.
func TestChartImage(t *testing.T) {
	f := newFixture(t)
	images, err := urlsig.New([]byte("0123456789abcdef0123456789abcdef"), ChartImagePurpose)
	if err != nil {
		t.Fatal(err)
	}
	stranger, _ := urlsig.New([]byte("fedcba9876543210fedcba9876543210"), ChartImagePurpose)
	// Login is on: the pages refuse whoever has no session, the image
	// does not.
	srv := f.serve(t, Options{Auth: AuthOAuth, PublicURL: "https://mlbot.example", Images: images})
	signed := func(s *urlsig.Signer, id string, exp time.Time) string {
		p := report.ChartImagePath(id)
		return srv.URL + p + "?" + s.Query(p, exp)
	}
	get := func(t *testing.T, u string) (*http.Response, string) {
		t.Helper()
		res, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res, string(b)
	}
	later := time.Now().Add(time.Hour)

	t.Run("signed", func(t *testing.T) {
		res, body := get(t, signed(images, f.pr.ID, later))
		if res.StatusCode != http.StatusOK {
			t.Fatalf("status %d: %s", res.StatusCode, body)
		}
		for h, want := range map[string]string{"Content-Type": "image/svg+xml", "X-Content-Type-Options": "nosniff"} {
			if got := res.Header.Get(h); got != want {
				t.Errorf("%s = %q, want %q", h, got, want)
			}
		}
		if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
			t.Errorf("Content-Security-Policy = %q", csp)
		}
		if !strings.HasPrefix(body, `<svg xmlns="http://www.w3.org/2000/svg"`) || !strings.HasSuffix(strings.TrimSpace(body), "</svg>") {
			t.Fatalf("not an SVG document:\n%s", body)
		}
		if d := os.Getenv("MLBOT_TEST_ARTIFACTS"); d != "" {
			// The image as the comment shows it, for a reviewer to look at.
			if err := os.MkdirAll(d, 0o755); err == nil {
				os.WriteFile(filepath.Join(d, "chart-image.svg"), []byte(body), 0o644)
			}
		}
		if strings.Contains(body, "<script") {
			t.Fatal("the image has a script")
		}
		// The three default-branch runs and the pull request's, drawn
		// filled and apart from the line.
		if m := regexp.MustCompile(`data-points="(\d+)"`).FindStringSubmatch(body); m == nil || m[1] != "4" {
			t.Fatalf("points %v, want 4:\n%s", m, body)
		}
		if n := strings.Count(body, `class="point bad this"`); n != 1 {
			t.Errorf("%d points marked as this failing pull request, want 1", n)
		}
		if line := regexp.MustCompile(`<polyline class="series" points="([^"]*)"`).FindStringSubmatch(body); line == nil || strings.Count(line[1], ",") != 3 {
			t.Errorf("the line joins %v, want the 3 default-branch runs", line)
		}
		for _, want := range []string{"accuracy on the default branch and this pull request", "min 0.8", "this pull request (ddddddd)", "v2 → production"} {
			if !strings.Contains(body, want) {
				t.Errorf("the image lacks %q", want)
			}
		}
	})

	refused := []struct {
		name string
		url  func() string
		want int
	}{
		{"no signature", func() string { return srv.URL + report.ChartImagePath(f.pr.ID) }, http.StatusForbidden},
		{"another run's signature", func() string {
			u, _ := url.Parse(signed(images, f.baselines[0].ID, later))
			return srv.URL + report.ChartImagePath(f.pr.ID) + "?" + u.RawQuery
		}, http.StatusForbidden},
		{"expiry pushed later", func() string {
			u, _ := url.Parse(signed(images, f.pr.ID, later))
			q := u.Query()
			q.Set("exp", strconv.FormatInt(later.Add(365*24*time.Hour).Unix(), 10))
			u.RawQuery = q.Encode()
			return u.String()
		}, http.StatusForbidden},
		{"expired", func() string { return signed(images, f.pr.ID, time.Now().Add(-time.Second)) }, http.StatusForbidden},
		{"another install's key", func() string { return signed(stranger, f.pr.ID, later) }, http.StatusForbidden},
		{"not a run id", func() string { return signed(images, "../../runs/"+f.pr.ID, later) }, http.StatusNotFound},
		{"no .svg", func() string {
			p := "/charts/runs/" + f.pr.ID
			return srv.URL + p + "?" + images.Query(p, later)
		}, http.StatusNotFound},
		{"a run that does not exist", func() string { return signed(images, strings.Repeat("e", 32), later) }, http.StatusNotFound},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			res, body := get(t, tt.url())
			if res.StatusCode != tt.want {
				t.Fatalf("status %d, want %d: %s", res.StatusCode, tt.want, body)
			}
			if strings.Contains(body, "<svg") || strings.Contains(body, "accuracy") {
				t.Fatalf("a refused request got the chart:\n%s", body)
			}
		})
	}

	t.Run("off without a signer", func(t *testing.T) {
		off := f.serve(t, Options{Auth: AuthNone})
		p := report.ChartImagePath(f.pr.ID)
		res, err := http.Get(off.URL + p + "?" + images.Query(p, later))
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusNotFound {
			t.Fatalf("status %d, want 404", res.StatusCode)
		}
	})
}
