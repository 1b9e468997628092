// Package dashboard serves the web dashboard: a single-page application
// embedded in the binary that any host replica serves under /ui/ and that
// reads the same REST API as the CLI. Its browser libraries are vendored
// from Debian packages by vendor.sh (static/vendor, with their licenses).
package dashboard

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/http"
	"path"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"
)

//go:embed static
var files embed.FS

// assetRef matches a reference to an embedded file in index.html.
var assetRef = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`(src|href)="/ui/([^"?]+)"`) })

// versioned appends ?v=<hash of the content> to every reference of
// index.html to a file of sub, so that files may be cached for long.
func versioned(sub fs.FS, index []byte) []byte {
	return assetRef().ReplaceAllFunc(index, func(m []byte) []byte {
		g := assetRef().FindSubmatch(m)
		b, err := fs.ReadFile(sub, string(g[2]))
		if err != nil {
			return m
		}
		sum := sha256.Sum256(b)
		return []byte(fmt.Sprintf(`%s="/ui/%s?v=%s"`, g[1], g[2], hex.EncodeToString(sum[:6])))
	})
}

// withPages replaces the <!--pages--> marker of index.html with a script
// element per file of static/pages (in name order): adding a page is adding
// its file.
func withPages(sub fs.FS, index []byte) []byte {
	names, err := fs.Glob(sub, "pages/*.js")
	if err != nil {
		return index
	}
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		fmt.Fprintf(&b, "<script src=\"/ui/%s\"></script>\n", n)
	}
	return bytes.Replace(index, []byte("<!--pages-->\n"), []byte(b.String()), 1)
}

// Handler serves the dashboard; mount it under /ui/ with the prefix
// stripped. A path without a dot in its last element ("", "tasks",
// "task/123") is a page of the application: it gets index.html, never
// cached, so that a reload or a shared link of /ui/task/123 works. Files
// (vendor libraries, scripts) get a long cache lifetime.
func Handler() http.Handler {
	sub, err := fs.Sub(files, "static")
	if err != nil {
		// The embedded tree is fixed at build time; this cannot happen.
		panic(err)
	}
	index, err := fs.ReadFile(sub, "index.html")
	if err != nil {
		panic(err)
	}
	index = versioned(sub, withPages(sub, index))
	static := http.FileServer(http.FS(sub))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		p := strings.TrimPrefix(r.URL.Path, "/")
		if p == "index.html" || !strings.Contains(path.Base("/"+p), ".") {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.Header().Set("Cache-Control", "no-cache")
			w.Header().Set("X-Content-Type-Options", "nosniff")
			w.Header().Set("Referrer-Policy", "same-origin")
			http.ServeContent(w, r, "index.html", time.Time{}, bytes.NewReader(index))
			return
		}
		// index.html names every file with a hash of its content
		// (versioned): a file may be cached for a year, a new binary's
		// files have new names.
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		static.ServeHTTP(w, r)
	})
}
