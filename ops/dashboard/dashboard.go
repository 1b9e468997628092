// Package dashboard serves the web dashboard: one embedded page that any
// host replica serves under /ui/ and that reads the same REST API as the
// CLI (/api/cluster, /api/nodes, /api/tasks, /api/queue).
package dashboard

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed static
var files embed.FS

// Handler serves the dashboard's files; mount it under /ui/ with the prefix
// stripped.
func Handler() http.Handler {
	sub, err := fs.Sub(files, "static")
	if err != nil {
		// The embedded tree is fixed at build time; this cannot happen.
		panic(err)
	}
	return http.FileServer(http.FS(sub))
}
