package trust

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/fetcher"

	"github.com/patchring/patchring/internal/minrate"
)

// remotePrefix is the fake base URL handed to go-tuf; the fetcher adapter
// strips it to get the path relative to the repository root.
const (
	remotePrefix      = "patchring://repository/"
	remoteMetadataURL = remotePrefix + "metadata"
)

// guardedBody wraps a source's body with the request deadline, the minimum
// rate watchdog (internal/minrate) and the length cap. Close stops the
// watchdog and waits for it.
type guardedBody struct {
	ctx    context.Context
	guard  *minrate.Guard
	cancel context.CancelFunc
	rc     io.ReadCloser
	path   string
	max    int64

	closeOnce sync.Once
}

// open asks src for path with a deadline of timeout, the configured minimum
// rate and a cap of maxLength bytes. The caller must Close the body.
func (c *Client) open(ctx context.Context, src Source, path string, maxLength int64, timeout time.Duration) (io.ReadCloser, error) {
	guard := minrate.Watch(ctx, c.cfg.MinRate, c.cfg.RateWindow, ErrSlow)
	reqCtx, cancelTimeout := context.WithTimeoutCause(guard.Context(), timeout, ErrTimeout)
	g := &guardedBody{ctx: reqCtx, guard: guard, cancel: cancelTimeout, path: path, max: maxLength}
	rc, err := src.Fetch(reqCtx, path, maxLength)
	if err != nil {
		err = g.mapErr(err)
		g.Close()
		return nil, err
	}
	g.rc = rc
	return g, nil
}

// mapErr turns an error seen after the deadline or the watchdog fired into
// ErrTimeout or ErrSlow.
func (g *guardedBody) mapErr(err error) error {
	if g.ctx.Err() != nil {
		if cause := context.Cause(g.ctx); errors.Is(cause, ErrSlow) || errors.Is(cause, ErrTimeout) {
			return fmt.Errorf("fetch %s: %w after %d bytes: %v", g.path, cause, g.guard.Bytes(), err)
		}
	}
	return err
}

// Read implements io.Reader; it fails with ErrTooLarge once more than max
// bytes arrived.
func (g *guardedBody) Read(p []byte) (int, error) {
	remaining := g.max - g.guard.Bytes()
	if remaining < math.MaxInt64 {
		remaining++ // read one byte past the cap to notice an overrun
	}
	if remaining <= 0 {
		return 0, fmt.Errorf("fetch %s: %w: more than %d bytes", g.path, ErrTooLarge, g.max)
	}
	if int64(len(p)) > remaining {
		p = p[:remaining]
	}
	n, err := g.rc.Read(p)
	if total := g.guard.Add(n); total > g.max {
		g.guard.Done()
		return n - int(total-g.max), fmt.Errorf("fetch %s: %w: more than %d bytes", g.path, ErrTooLarge, g.max)
	}
	switch {
	case err == io.EOF:
		g.guard.Done()
	case err != nil:
		err = g.mapErr(err)
	}
	return n, err
}

// Close implements io.Closer.
func (g *guardedBody) Close() error {
	var err error
	g.closeOnce.Do(func() {
		g.guard.Done()
		if g.rc != nil {
			err = g.rc.Close()
		}
		g.cancel()
		g.guard.Stop()
	})
	return err
}

// fetchAll reads a whole (small) file from src under the metadata limits.
func (c *Client) fetchAll(ctx context.Context, src Source, path string, maxLength int64) ([]byte, error) {
	body, err := c.open(ctx, src, path, maxLength, c.cfg.Timeout)
	if err != nil {
		return nil, err
	}
	defer body.Close()
	data, err := io.ReadAll(body)
	if err != nil {
		return nil, err
	}
	return data, nil
}

func isNotFound(err error) bool {
	var h *metadata.ErrDownloadHTTP
	return errors.As(err, &h) && h.StatusCode == 404
}

func isOrigin(s Source) bool {
	o, ok := s.(Origin)
	return ok && o.IsOrigin()
}

var nextRootPath = regexp.MustCompile(`^metadata/[1-9][0-9]*\.root\.json$`)

// tufFetcher adapts one source of the chain to go-tuf's Fetcher, which has
// no context: it carries the refresh's context.
type tufFetcher struct {
	ctx     context.Context
	c       *Client
	sources []Source
	i       int // index of the source this refresh goes through

	// roots are the root versions fetched during this refresh, by
	// version. go-tuf verifies each before it asks for the next, so after
	// a successful refresh they are the verified chain (kept to serve
	// peers that are still on an older root).
	mu    sync.Mutex
	roots map[int64][]byte
}

var _ fetcher.Fetcher = (*tufFetcher)(nil)

// DownloadFile implements fetcher.Fetcher. The timeout argument is unused
// by go-tuf; the client's own limits apply.
func (f *tufFetcher) DownloadFile(urlPath string, maxLength int64, _ time.Duration) ([]byte, error) {
	path, ok := strings.CutPrefix(urlPath, remotePrefix)
	if !ok {
		return nil, fmt.Errorf("fetch %s: not a repository path", urlPath)
	}
	src := f.sources[f.i]
	data, err := f.c.fetchAll(f.ctx, src, path, maxLength)
	if err != nil && isNotFound(err) && nextRootPath.MatchString(path) && !isOrigin(src) {
		data, err = f.confirmNoRoot(path, maxLength, err)
	}
	if err == nil && nextRootPath.MatchString(path) {
		f.recordRoot(path, data)
	}
	return data, err
}

// recordRoot remembers a fetched root version (see tufFetcher.roots).
func (f *tufFetcher) recordRoot(path string, data []byte) {
	v, ok := rootFileVersion(strings.TrimPrefix(path, "metadata/"))
	if !ok {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.roots == nil {
		f.roots = map[int64][]byte{}
	}
	f.roots[v] = data
}

// fetchedRoots returns the roots recorded during the refresh.
func (f *tufFetcher) fetchedRoots() map[int64][]byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return maps.Clone(f.roots)
}

// minRootDenials is how many sources must answer 404 for the next root
// version, when the origin cannot be asked, before the agent believes it.
const minRootDenials = 2

// confirmNoRoot handles a 404 for the next root version from a source that
// is not the origin: a hostile peer could hide a key rotation that way. The
// other sources are asked, origins first. Any of them that has the file
// provides it (go-tuf verifies it like any root); the 404 is believed when
// an origin confirms it, or when minRootDenials sources in all deny it.
func (f *tufFetcher) confirmNoRoot(path string, maxLength int64, denial error) ([]byte, error) {
	denier := f.sources[f.i]
	var order []int
	for pass := 0; pass < 2; pass++ {
		for j, s := range f.sources {
			if j != f.i && isOrigin(s) == (pass == 0) {
				order = append(order, j)
			}
		}
	}
	denials := 1
	var problems []string
	for _, j := range order {
		if f.ctx.Err() != nil {
			break
		}
		other := f.sources[j]
		data, err := f.c.fetchAll(f.ctx, other, path, maxLength)
		switch {
		case err == nil:
			f.c.log.Warn("source denied a root version another source has", "path", path, "denied_by", denier.Name(), "served_by", other.Name())
			return data, nil
		case isNotFound(err) && isOrigin(other):
			return nil, denial
		case isNotFound(err):
			denials++
			if denials >= minRootDenials {
				return nil, denial
			}
		default:
			problems = append(problems, other.Name()+": "+err.Error())
		}
	}
	msg := fmt.Sprintf("%s answered 404 for %s and no origin or second source confirmed it", denier.Name(), path)
	if len(problems) > 0 {
		msg += " (" + strings.Join(problems, "; ") + ")"
	}
	return nil, fmt.Errorf("%w: %s", ErrRootUnconfirmed, msg)
}
