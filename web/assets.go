package web

import (
	"embed"
	"io/fs"
	"net/http"
)

// assetFiles are the pages' scripts, served under /assets/.
//
//go:embed assets
var assetFiles embed.FS

// Assets serves GET /assets/…: the scripts the pages load (the pages'
// Content-Security-Policy allows scripts from this origin only).
func (s *Server) Assets() http.Handler {
	sub, err := fs.Sub(assetFiles, "assets")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	files := http.StripPrefix("/assets/", http.FileServerFS(sub))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Cache-Control", "public, max-age=300")
		files.ServeHTTP(w, r)
	})
}
