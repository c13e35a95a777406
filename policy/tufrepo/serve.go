package tufrepo

import (
	"io"
	"io/fs"
	"net/http"
	"os"
	"path"
	"regexp"
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
		// Versioned snapshot/targets and hash-prefixed payloads never
		// change. Everything else may: the unversioned latest copies, and
		// N.root.json, whose 404 tells agents there is no newer root (a
		// cached 404 would delay a rotation).
		base := path.Base(req.URL.Path)
		if strings.HasPrefix(req.URL.Path, "/"+targetsDir+"/") || versionedMeta.MatchString(base) {
			w.Header().Set("Cache-Control", "public, max-age=86400, immutable")
		} else {
			w.Header().Set("Cache-Control", "no-cache")
		}
		files.ServeHTTP(noStoreErrors{w}, req)
	})
}

// noStoreErrors marks error answers (a 404 for the next root above all)
// Cache-Control: no-store; http.FileServer drops the handler's header on
// errors.
type noStoreErrors struct{ http.ResponseWriter }

func (w noStoreErrors) WriteHeader(code int) {
	if code >= 400 {
		w.Header().Set("Cache-Control", "no-store")
	}
	w.ResponseWriter.WriteHeader(code)
}

// ReadFrom keeps the server's sendfile path for payloads.
func (w noStoreErrors) ReadFrom(r io.Reader) (int64, error) { return io.Copy(w.ResponseWriter, r) }

// Unwrap lets http.ResponseController reach the real writer.
func (w noStoreErrors) Unwrap() http.ResponseWriter { return w.ResponseWriter }

var versionedMeta = regexp.MustCompile(`^[1-9][0-9]*\.(snapshot|targets)\.json$`)

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
