package aptproxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"sync"
	"time"
)

// A site whose WAN is down must not make apt wait on the vendor for every
// file: each attempt would hang until a TCP or header timeout (minutes per
// file for a few hundred index and package files). The proxy remembers a
// vendor host that could not be reached and, until a backoff passes, does
// not try it again: a pinned Release is served from the store at once and
// an index or package comes from the site's peers or is refused at once.
// The first answer from the host (any HTTP status) forgets it.
const (
	// reachMinBackoff is how long a host is left alone after its first
	// failure; each further failure doubles it, up to reachMaxBackoff.
	reachMinBackoff = 15 * time.Second
	reachMaxBackoff = 5 * time.Minute
	// dialTimeout bounds one TCP connection attempt to a vendor.
	dialTimeout = 15 * time.Second
	// pinnedProbe is Config.PinnedProbe's default: the wait for the
	// vendor's Release when a pinned one could be served instead (the
	// vendor still wins when it answers within it).
	pinnedProbe = 20 * time.Second
)

// errVendorDown is returned for a vendor host in its backoff.
var errVendorDown = errors.New("vendor unreachable")

// reachability remembers unreachable vendor hosts.
type reachability struct {
	now  func() time.Time
	mu   sync.Mutex
	down map[string]*downHost
}

type downHost struct {
	until   time.Time
	backoff time.Duration
	err     error
}

func newReachability(now func() time.Time) *reachability {
	return &reachability{now: now, down: map[string]*downHost{}}
}

func hostOf(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return rawURL
	}
	return u.Host
}

// check returns an error wrapping errVendorDown while host is in its
// backoff.
func (r *reachability) check(host string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	d := r.down[host]
	if d == nil {
		return nil
	}
	now := r.now()
	if !now.Before(d.until) {
		return nil
	}
	return fmt.Errorf("%w: %s (not retried for %s after: %v)", errVendorDown, host, d.until.Sub(now).Round(time.Second), d.err)
}

// result records the outcome of one attempt to reach host: a nil err (an
// HTTP answer) forgets it; a failure to connect or to get an answer in
// time starts or doubles its backoff. A request the caller ended is not
// counted against the host.
func (r *reachability) result(ctx context.Context, host string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err == nil {
		delete(r.down, host)
		return
	}
	if !unreachable(ctx, err) {
		return
	}
	d := r.down[host]
	if d == nil {
		d = &downHost{backoff: reachMinBackoff}
		r.down[host] = d
	} else {
		d.backoff = min(2*d.backoff, reachMaxBackoff)
	}
	d.until, d.err = r.now().Add(d.backoff), err
}

// unreachable reports whether err means the host could not be reached:
// a network error or a timeout of the request itself, not the caller's
// cancellation.
func unreachable(ctx context.Context, err error) bool {
	if ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return false
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne)
}
