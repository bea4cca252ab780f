package web

import (
	"embed"
	"html/template"
)

// templateFiles are the pages' templates, one file per page.
//
//go:embed templates/*.html
var templateFiles embed.FS

var (
	runPageTemplate    = template.Must(template.ParseFS(templateFiles, "templates/run.html"))
	deployPageTemplate = template.Must(template.ParseFS(templateFiles, "templates/deploy.html"))
)
