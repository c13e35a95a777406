package trust_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"testing"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/patchring/patchring/policy/trust"
	"github.com/patchring/patchring/policy/tufrepo"
)

// verifiedSource serves what another client verified, the way a peer
// does: VerifiedFile, and a 404 for anything else.
type verifiedSource struct {
	name string
	c    *trust.Client
}

func (s *verifiedSource) Name() string { return s.name }

func (s *verifiedSource) Fetch(ctx context.Context, path string, maxLength int64) (io.ReadCloser, error) {
	data, ok := s.c.VerifiedFile(path)
	if !ok {
		return nil, fmt.Errorf("fetch %s: %w", path, &metadata.ErrDownloadHTTP{StatusCode: 404, URL: s.name + "/" + path})
	}
	return io.NopCloser(bytes.NewReader(data)), nil
}

func TestVerifiedFile(t *testing.T) {
	f := newFixture(t, tufrepo.Options{})
	cfg := f.config()
	c, err := trust.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// Before any refresh: only the installed root.
	if got, ok := c.VerifiedFile("metadata/1.root.json"); !ok || !bytes.Equal(got, f.rootV1) {
		t.Errorf("installed root before a refresh: ok=%v", ok)
	}
	if _, ok := c.VerifiedFile("metadata/timestamp.json"); ok {
		t.Error("timestamp served before anything was verified")
	}
	if _, err := c.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Two root rotations and a new policy; the client walks 1 -> 2 -> 3.
	for range 2 {
		if _, err := f.reopen().RotateKey(tufrepo.RoleRoot); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.reopen().PublishPolicy(policyV2); err != nil {
		t.Fatal(err)
	}
	res, err := c.Refresh(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if res.Versions.Root != 3 || c.RootVersion() != 3 {
		t.Fatalf("root version %d (RootVersion %d), want 3", res.Versions.Root, c.RootVersion())
	}
	var policySHA string
	for _, tg := range f.repo.ListTargets() {
		if tg.Name == trust.PolicyTarget {
			policySHA = tg.SHA256
		}
	}
	v := res.Versions
	served := map[string][]byte{
		"metadata/1.root.json":                               f.metaBytes("1.root.json"),
		"metadata/2.root.json":                               f.metaBytes("2.root.json"),
		"metadata/3.root.json":                               f.metaBytes("3.root.json"),
		"metadata/root.json":                                 f.metaBytes("3.root.json"),
		"metadata/timestamp.json":                            f.metaBytes("timestamp.json"),
		"metadata/snapshot.json":                             f.metaBytes(fmt.Sprintf("%d.snapshot.json", v.Snapshot)),
		fmt.Sprintf("metadata/%d.snapshot.json", v.Snapshot): f.metaBytes(fmt.Sprintf("%d.snapshot.json", v.Snapshot)),
		"metadata/targets.json":                              f.metaBytes(fmt.Sprintf("%d.targets.json", v.Targets)),
		fmt.Sprintf("metadata/%d.targets.json", v.Targets):   f.metaBytes(fmt.Sprintf("%d.targets.json", v.Targets)),
		"targets/policy.json":                                policyV2,
		"targets/" + policySHA + ".policy.json":              policyV2,
	}
	notServed := []string{
		"metadata/4.root.json",
		"metadata/0.root.json",
		"metadata/01.root.json",
		fmt.Sprintf("metadata/%d.snapshot.json", v.Snapshot-1),
		fmt.Sprintf("metadata/%d.targets.json", v.Targets-1),
		"metadata/1.timestamp.json",
		"metadata/x.snapshot.json",
		"metadata/",
		"metadata",
		"metadata/sub/timestamp.json",
		"../trusted.json",
		"trusted.json",
		"targets/" + f.catalog,
		"targets/" + policySHA[:10] + ".policy.json",
		"targets/" + policySHA + ".other.json",
		"",
	}
	check := func(t *testing.T, c *trust.Client) {
		t.Helper()
		for path, want := range served {
			got, ok := c.VerifiedFile(path)
			if !ok || !bytes.Equal(got, want) {
				t.Errorf("VerifiedFile(%q): ok=%v, %d bytes; want the repository's %d bytes", path, ok, len(got), len(want))
			}
		}
		for _, path := range notServed {
			if got, ok := c.VerifiedFile(path); ok {
				t.Errorf("VerifiedFile(%q) = %d bytes, want not found", path, len(got))
			}
		}
	}
	t.Run("running client", func(t *testing.T) { check(t, c) })
	t.Run("after restart", func(t *testing.T) {
		c2, err := trust.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		check(t, c2)
	})
	t.Run("enough for a peer to refresh", func(t *testing.T) {
		// A fresh agent installed with root 1 refreshes only from what two
		// nodes verified (two sources, so their 404 for root 4 is believed).
		other := f.client()
		if _, err := other.Refresh(context.Background()); err != nil {
			t.Fatal(err)
		}
		fresh := f.client(func(cfg *trust.Config) {
			cfg.Sources = []trust.Source{&verifiedSource{"peer1", c}, &verifiedSource{"peer2", other}}
		})
		res, err := fresh.Refresh(context.Background())
		if err != nil {
			t.Fatalf("refresh from peers: %v", err)
		}
		if res.Source != "peer1" || res.Versions != v || !bytes.Equal(res.Policy, policyV2) {
			t.Errorf("refresh from peers: source %q versions %+v policy %q; want peer1, %+v, the new policy", res.Source, res.Versions, res.Policy, v)
		}
	})
}
