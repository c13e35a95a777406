package tufrepo

import (
	"io/fs"
	"net/http"
	"os"
	"path"
	"strings"
)

// Handler serves a repository directory to agents: only files under
// metadata/ and targets/, no directory listings, no dot files (temporary
// files, the lock). timestamp.json and the unversioned latest copies are
// sent with Cache-Control: no-cache; versioned and hash-prefixed files never
// change and may be cached.
func Handler(dir string) http.Handler {
	files := http.FileServerFS(repoFS{os.DirFS(dir)})
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method != http.MethodGet && req.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		switch path.Base(req.URL.Path) {
		case "timestamp.json", "root.json", "snapshot.json", "targets.json":
			w.Header().Set("Cache-Control", "no-cache")
		default:
			w.Header().Set("Cache-Control", "public, max-age=86400")
		}
		files.ServeHTTP(w, req)
	})
}

// repoFS exposes only regular, non-hidden files under metadata/ and
// targets/.
type repoFS struct{ fs fs.FS }

func (r repoFS) Open(name string) (fs.File, error) {
	top, _, _ := strings.Cut(name, "/")
	if top != metadataDir && top != targetsDir || name == top {
		return nil, fs.ErrNotExist
	}
	for _, seg := range strings.Split(name, "/") {
		if strings.HasPrefix(seg, ".") {
			return nil, fs.ErrNotExist
		}
	}
	f, err := r.fs.Open(name)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, fs.ErrNotExist
	}
	return f, nil
}
