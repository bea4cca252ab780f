package web

import (
	"bytes"
	"html/template"
	"io"
	"net/http"
	"sort"

	"github.com/mlbot/mlbot/bot"
	"github.com/mlbot/mlbot/jobs/report"
)

// contentSecurityPolicy lets the pages load their stylesheet and script
// from this origin and nothing else: no inline script, no frames, forms
// only to this origin.
const contentSecurityPolicy = "default-src 'none'; style-src 'self'; script-src 'self'; connect-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// pageData is what the layout of every page shows, with the page's own
// data in Body.
type pageData struct {
	Title  string
	Crumbs []crumb
	// LoginOn is set when the pages need a login (AuthOAuth).
	LoginOn bool
	// Users are the accounts the person logged in with.
	Users []bot.OAuthUser
	// LoginHref is the login page, coming back here.
	LoginHref string
	Body      any

	session *session
	flash   string
	status  int
}

// crumb is one step of the path to a page.
type crumb struct{ Title, Href string }

// newPage starts the data of a page for r: who is looking.
func (s *Server) newPage(r *http.Request) *pageData {
	p := &pageData{LoginOn: s.opts.Auth == AuthOAuth}
	if p.LoginOn {
		p.session, _ = s.session(r)
		if p.session != nil {
			for _, u := range p.session.Users {
				p.Users = append(p.Users, u)
			}
			sort.Slice(p.Users, func(i, j int) bool { return p.Users[i].Forge < p.Users[j].Forge })
		}
		p.LoginHref = "/login?next=" + template.URLQueryEscaper(r.URL.RequestURI())
	}
	return p
}

// page adapts a page handler, giving it the page's data.
func (s *Server) page(h func(http.ResponseWriter, *http.Request, *pageData)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h(w, r, s.newPage(r))
	})
}

// setPageHeaders sets what every HTML page sends.
func setPageHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	// A page's address (a run's, a deploy's) stays on this site.
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")
}

// render writes page t with p and body. What the host and the training
// sent (titles, branch names, metric names, logs) is escaped by the
// template and stripped of format characters.
func (s *Server) render(w http.ResponseWriter, r *http.Request, t *template.Template, p *pageData, body any) {
	p.Body = body
	var b bytes.Buffer
	if err := t.ExecuteTemplate(&b, "layout", p); err != nil {
		s.log.Error("page not rendered", "path", r.URL.Path, "err", err)
		http.Error(w, "the page could not be rendered", http.StatusInternalServerError)
		return
	}
	setPageHeaders(w)
	status := p.status
	if status == 0 {
		status = http.StatusOK
	}
	w.WriteHeader(status)
	io.WriteString(w, report.StripFormat(b.String()))
}

// errorPage answers with status and a page saying msg.
func (s *Server) errorPage(w http.ResponseWriter, r *http.Request, status int, title, msg string) {
	p := s.newPage(r)
	p.Title, p.status = title, status
	s.render(w, r, errorPageTemplate, p, struct{ Title, Message string }{title, msg})
}

// notFound answers 404.
func (s *Server) notFound(w http.ResponseWriter, r *http.Request, msg string) {
	s.errorPage(w, r, http.StatusNotFound, "Not found", msg)
}

// unavailable answers 503: what failed is named, its error is logged, not
// shown.
func (s *Server) unavailable(w http.ResponseWriter, r *http.Request, what string) {
	s.errorPage(w, r, http.StatusServiceUnavailable, "Unavailable", what+" did not answer; try again in a moment")
}
