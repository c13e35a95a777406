package aptproxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/patchring/patchring/internal/testutil"
	"github.com/patchring/patchring/p2p/content"
	"github.com/patchring/patchring/p2p/exchange"
	"github.com/patchring/patchring/platform/apt/apttest"
)

// fakeSite is the site as the asking proxy sees it: the fetcher's proxy
// answers in process, or serve replaces its answer.
type fakeSite struct {
	fetcher *Proxy // nil: this node is the fetcher

	mu    sync.Mutex
	serve func(durl string) ([]byte, error) // overrides the fetcher
	asked int
	bad   []string
}

func (s *fakeSite) FetchRelease(ctx context.Context, durl string) ([]byte, string, error) {
	s.mu.Lock()
	s.asked++
	serve := s.serve
	s.mu.Unlock()
	if s.fetcher == nil {
		return nil, "self", ErrSiteFetcher
	}
	if serve != nil {
		data, err := serve(durl)
		return data, "fetcher", err
	}
	rc, _, err := s.fetcher.OpenFile(ctx, ReleasePath(durl))
	if err != nil {
		return nil, "fetcher", err
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	return data, "fetcher", err
}

func (s *fakeSite) set(serve func(durl string) ([]byte, error)) {
	s.mu.Lock()
	s.serve = serve
	s.mu.Unlock()
}

func (s *fakeSite) count() (asked, bad int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.asked, len(s.bad)
}

func (s *fakeSite) BadRelease(from string, err error) {
	s.mu.Lock()
	s.bad = append(s.bad, from+": "+err.Error())
	s.mu.Unlock()
}

// TestReleaseThroughSite: two nodes of a site run apt-get update through
// their proxies; the archive is asked for InRelease once, by the site's
// fetcher for it, and the other node verifies the fetcher's copy itself.
// A copy that fails gpgv is refused (the member is reported), one older
// than the node's release is not used, and both go to the vendor; so does
// a node whose own vendor check is due.
func TestReleaseThroughSite(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	inRelease := "dists/bookworm-security/InRelease"
	fetcherSite := &fakeSite{}
	fetcher := startProxy(t, Config{Listen: "127.0.0.1:0", Root: f.root, Store: f.store, Now: f.clock.Now,
		Releases: fetcherSite, Logger: testutil.Logger(t)})
	store2, err := content.Open(filepath.Join(t.TempDir(), "content"), content.Options{})
	if err != nil {
		t.Fatal(err)
	}
	site := &fakeSite{fetcher: fetcher}
	asker := startProxy(t, Config{Listen: "127.0.0.1:0", Root: f.root, Store: store2, Now: f.clock.Now,
		Releases: site, VendorCheck: 24 * time.Hour, Logger: testutil.Logger(t)})
	asker.vendorChecked[f.repo.DistURL()] = f.clock.Now() // not due in this test until it says so
	through := func(p *Proxy) *fixture { g := *f; g.proxy = p; return &g }
	// transfers counts the archive's whole InRelease answers (not the
	// 304s to the fetcher's conditional requests).
	transfers := func() int { return f.repo.CountRequests(inRelease) - f.repo.CountUnchanged(inRelease) }
	s1, s2 := f.sandbox(t), f.sandbox(t)

	through(asker).mustApt(t, s2, "update")
	through(fetcher).mustApt(t, s1, "update")
	through(asker).mustApt(t, s2, "update")
	if n, asked := transfers(), f.repo.CountRequests(inRelease); n != 1 || asked != 3 {
		t.Errorf("the archive served InRelease %d times and was asked %d times for three apt-get updates on a site; want once, and asked each time (conditionally)", n, asked)
	}
	if st := asker.Stats()["release"]; st.FromVendor != 0 || st.FromPeers == 0 {
		t.Errorf("the asking node's releases: %+v; want all from the site's fetcher", st)
	}
	if st := fetcher.Stats()["release"]; st.FromVendor == 0 {
		t.Errorf("the fetcher's releases: %+v; want one read from the vendor", st)
	}

	// A forged copy: refused, the member reported, apt served from the vendor.
	good, err := f.repo.ReadFile(inRelease)
	if err != nil {
		t.Fatal(err)
	}
	forged := []byte(strings.Replace(string(good), "Label: Debian-Security", "Label: Debian-Securitz", 1))
	site.set(func(string) ([]byte, error) { return forged, nil })
	before, refused := transfers(), asker.Stats()["release"].Refused
	through(asker).mustApt(t, s2, "update")
	if transfers() != before+1 || asker.Stats()["release"].Refused != refused+1 || badCount(site) != 1 {
		t.Errorf("a forged copy: archive asked %d more times, %d refusals counted, members reported %q; want 1, 1, one",
			transfers()-before, asker.Stats()["release"].Refused-refused, site.bad)
	}

	// An older copy (the archive published since): not used, not blamed.
	newer := apttest.MustBuildDeb(t, t.TempDir(), apttest.Package{Name: "batch0", Version: "1.1-1", Arch: "all"})
	f.repo.MustAdd(t, newer)
	site.set(nil)
	through(asker).mustApt(t, s2, "update") // through the fetcher, newest
	site.set(func(string) ([]byte, error) { return good, nil })
	before = transfers()
	through(asker).mustApt(t, s2, "update")
	through(asker).mustApt(t, s2, "install", "-y", "batch0")
	if v := installed(t, s2, "batch0"); v != "1.1-1" || transfers() != before+1 || badCount(site) != 1 {
		t.Errorf("an older copy: batch0 %q, archive asked %d more times, members reported %q; want 1.1-1 from the vendor's release, once, none more",
			v, transfers()-before, site.bad)
	}

	// A fetcher that cannot be reached: from the vendor.
	site.set(func(string) ([]byte, error) { return nil, errors.New("dial: connection refused") })
	before = transfers()
	through(asker).mustApt(t, s2, "update")
	if transfers() != before+1 {
		t.Errorf("an unreachable fetcher: the archive was asked %d more times, want once", transfers()-before)
	}

	// The node's own check of the vendor falls due: the site is not asked.
	site.set(nil)
	asked, _ := site.count()
	f.clock.Advance(25 * time.Hour)
	before = transfers()
	through(asker).mustApt(t, s2, "update")
	if now, _ := site.count(); now != asked || transfers() != before+1 {
		t.Errorf("a due vendor check: the site was asked %d times, the archive %d; want 0 and 1", func() int { n, _ := site.count(); return n - asked }(), transfers()-before)
	}
	// A distribution that is not among the fetcher's sources is not fetched for anyone.
	if _, _, err := fetcher.OpenFile(context.Background(), ReleasePath("http://127.0.0.1:1/elsewhere/dists/x/")); err == nil {
		t.Error("the fetcher fetched a release of a distribution outside its apt sources for a member")
	}
}

func badCount(s *fakeSite) int { _, n := s.count(); return n }

// TestPrefetchForAMember: a member asks this node (the site's fetcher of
// a .deb) to fetch it now; the node does, for a .deb listed in a Packages
// index it verified, and refuses any other hash.
func TestPrefetchForAMember(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	s := f.sandbox(t)
	f.mustApt(t, s, "update")
	e := f.debs[1]
	h := content.MustParseHash(e.SHA256)
	ctx := context.Background()
	// Asked until it says it holds the file, as a member does.
	testutil.WaitFor(t, time.Minute, "the fetcher to say it holds the prefetched .deb", func() error {
		rc, n, err := f.proxy.OpenFile(ctx, PrefetchPath(h))
		if err != nil {
			t.Fatalf("prefetch request: %v", err)
		}
		b, _ := io.ReadAll(rc)
		rc.Close()
		if string(b) != PrefetchHeld || n != 1 {
			return fmt.Errorf("answer %q", b)
		}
		return nil
	})
	if !f.store.Has(h) {
		t.Fatal("the fetcher said it holds a .deb its store does not have")
	}
	if n := f.repo.CountRequests(e.Filename); n != 1 {
		t.Errorf("the archive served %s %d times, want once", e.Filename, n)
	}
	// Asked again (it is here now): nothing is fetched.
	if _, _, err := f.proxy.OpenFile(ctx, PrefetchPath(h)); err != nil || f.repo.CountRequests(e.Filename) != 1 {
		t.Errorf("a second prefetch of a stored .deb: %v, archive asked %d times", err, f.repo.CountRequests(e.Filename))
	}
	// A hash no verified index lists.
	if _, _, err := f.proxy.OpenFile(ctx, PrefetchPath(content.Sum([]byte("not a package")))); !errors.Is(err, exchange.ErrFileNotFound) {
		t.Errorf("prefetch of an unlisted hash: %v, want ErrFileNotFound", err)
	}
	// apt then gets the .deb from the store.
	f.mustApt(t, s, "install", "-y", e.Package)
	if f.repo.CountRequests(e.Filename) != 1 {
		t.Errorf("apt's install went to the archive again after the prefetch")
	}
}
