package trust

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// Source is one place the agent fetches repository files from: the origin,
// a mirror, a peer. Sources are untrusted transport; everything they return
// is verified against signed metadata.
//
// path is relative to the repository root, e.g. "metadata/timestamp.json",
// "metadata/3.root.json" or "targets/catalog/x/1.0/<sha256>.x.deb".
// A file the source does not have must come back as an error wrapping
// *metadata.ErrDownloadHTTP{StatusCode: 404}. maxLength is the most the
// caller will read; a source may refuse early (ErrTooLarge) when it knows the
// file is longer. The returned body must stop reading (return an error)
// once ctx is done.
type Source interface {
	Name() string
	Fetch(ctx context.Context, path string, maxLength int64) (io.ReadCloser, error)
}

// Origin is implemented by sources that speak for the repository itself
// (the admin's server): their 404 for the next root version is believed
// without confirmation.
type Origin interface {
	IsOrigin() bool
}

// HTTPSource fetches from a static HTTP server holding the repository
// layout (metadata/ and targets/ below BaseURL).
type HTTPSource struct {
	// BaseURL is the repository root, e.g. "https://patch.example.org/repo".
	BaseURL string
	// Client is the HTTP client; nil uses a client with sane transport
	// timeouts. The trust client adds its own per-request deadline and
	// minimum rate, so Client.Timeout can stay zero.
	Client *http.Client
	// IsOriginServer marks the admin's own server (see Origin).
	IsOriginServer bool
	// Label names the source in errors; default "origin <BaseURL>" or
	// "mirror <BaseURL>".
	Label     string
	UserAgent string
}

var _ Source = (*HTTPSource)(nil)
var _ Origin = (*HTTPSource)(nil)

// NewOriginSource returns the HTTP source of the admin's origin server.
func NewOriginSource(baseURL string) *HTTPSource {
	return &HTTPSource{BaseURL: baseURL, IsOriginServer: true}
}

var defaultHTTPClient = &http.Client{
	Transport: &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   15 * time.Second,
		ResponseHeaderTimeout: 60 * time.Second,
		ForceAttemptHTTP2:     true,
	},
}

// Name implements Source.
func (s *HTTPSource) Name() string {
	switch {
	case s.Label != "":
		return s.Label
	case s.IsOriginServer:
		return "origin " + s.BaseURL
	default:
		return "mirror " + s.BaseURL
	}
}

// IsOrigin implements Origin.
func (s *HTTPSource) IsOrigin() bool { return s.IsOriginServer }

// Fetch implements Source.
func (s *HTTPSource) Fetch(ctx context.Context, path string, maxLength int64) (io.ReadCloser, error) {
	if err := checkRelPath(path); err != nil {
		return nil, err
	}
	u := s.URL(path)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", path, err)
	}
	if s.UserAgent != "" {
		req.Header.Set("User-Agent", s.UserAgent)
	}
	c := s.Client
	if c == nil {
		c = defaultHTTPClient
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, fmt.Errorf("fetch %s: %w", path, &metadata.ErrDownloadHTTP{StatusCode: resp.StatusCode, URL: u})
	}
	if cl := resp.Header.Get("Content-Length"); cl != "" {
		if n, err := strconv.ParseInt(cl, 10, 64); err == nil && n > maxLength {
			resp.Body.Close()
			return nil, fmt.Errorf("fetch %s: %w: Content-Length %d, at most %d expected", path, ErrTooLarge, n, maxLength)
		}
	}
	return resp.Body, nil
}

// URL returns the address of path (relative to the repository root) on
// this source: BaseURL joined with the path, each segment escaped.
func (s *HTTPSource) URL(path string) string {
	segs := strings.Split(path, "/")
	for i, seg := range segs {
		segs[i] = url.PathEscape(seg)
	}
	return strings.TrimSuffix(s.BaseURL, "/") + "/" + strings.Join(segs, "/")
}

// checkRelPath refuses paths that could leave the repository root.
func checkRelPath(p string) error {
	if p == "" || strings.HasPrefix(p, "/") || strings.Contains(p, "\\") {
		return fmt.Errorf("fetch %q: %w", p, ErrBadTargetName)
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("fetch %q: %w", p, ErrBadTargetName)
		}
	}
	return nil
}
