package web

import (
	"embed"
	"html/template"
)

// templateFiles are the pages' templates: the layout, the chart, and one
// file per page.
//
//go:embed templates/*.html templates/*.svg
var templateFiles embed.FS

// parsePage parses a page's template with the layout and the chart.
func parsePage(name string) *template.Template {
	return template.Must(template.New(name).Funcs(funcs).ParseFS(templateFiles,
		"templates/layout.html", "templates/chart.html", "templates/"+name))
}

var (
	overviewPageTemplate = parsePage("overview.html")
	repoPageTemplate     = parsePage("repo.html")
	runPageTemplate      = parsePage("run.html")
	modelPageTemplate    = parsePage("model.html")
	deployPageTemplate   = parsePage("deploy.html")
	sweepPageTemplate    = parsePage("sweep.html")
	loginPageTemplate    = parsePage("login.html")
	errorPageTemplate    = parsePage("error.html")
)
