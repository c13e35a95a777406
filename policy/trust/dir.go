package trust

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// DirSource serves a copy of the repository from a directory: an offline
// bundle an admin carried to a site without WAN. It counts as an origin:
// an admin chose to import it, and its root files are the repository's.
// Everything it serves is still verified from the trusted root.
type DirSource struct {
	Dir   string
	Label string // e.g. "bundle site-kit-2026-11.tar.gz"
}

var (
	_ Source = (*DirSource)(nil)
	_ Origin = (*DirSource)(nil)
)

// Name implements Source.
func (s *DirSource) Name() string {
	if s.Label != "" {
		return s.Label
	}
	return "dir " + s.Dir
}

// IsOrigin implements Origin.
func (s *DirSource) IsOrigin() bool { return true }

// Fetch implements Source: the file at path below Dir, or a 404 error.
func (s *DirSource) Fetch(ctx context.Context, path string, maxLength int64) (io.ReadCloser, error) {
	if err := checkRelPath(path); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f, err := os.Open(filepath.Join(s.Dir, filepath.FromSlash(path)))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("fetch %s: %w", path, &metadata.ErrDownloadHTTP{StatusCode: 404, URL: "file:" + path})
	}
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", path, err)
	}
	if fi, err := f.Stat(); err == nil && !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("fetch %s: not a regular file", path)
	}
	return f, nil
}

// RefreshFrom is Refresh through the given sources instead of the
// configured chain, e.g. an imported offline bundle. The verified state
// it reaches is kept like any other.
func (c *Client) RefreshFrom(ctx context.Context, sources []Source) (Result, error) {
	return c.refreshWith(ctx, sources)
}
