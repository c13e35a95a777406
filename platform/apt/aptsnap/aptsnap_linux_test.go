package aptsnap

import (
	"context"
	"encoding/json"
	"path"
	"strings"
	"testing"

	"github.com/patchring/patchring/platform/apt/apttest"
	aptarchive "github.com/patchring/patchring/platform/apt/archive"
)

// fakeRepo records the targets a pin leaves.
type fakeRepo struct{ targets map[string]json.RawMessage }

func (r *fakeRepo) AddTargetFile(name, _ string, custom json.RawMessage) error {
	r.targets[name] = custom
	return nil
}
func (r *fakeRepo) RemoveTarget(name string) error { delete(r.targets, name); return nil }
func (r *fakeRepo) TargetNames() []string {
	var out []string
	for n := range r.targets {
		out = append(out, n)
	}
	return out
}

// A snapshot is pinned whole or not at all: a tampered index or .deb, or
// a package the archive does not have, leaves the repository as it was;
// a good pin replaces the previous apt targets and keeps the others.
func TestPinVerifiesEverything(t *testing.T) {
	apttest.RequireTools(t)
	ctx := context.Background()
	signer := apttest.MustSigner(t)
	archive := apttest.MustStartRepo(t, apttest.RepoConfig{Suite: "bookworm-security", Signer: signer, ByHash: true})
	dir := t.TempDir()
	deb := apttest.MustBuildDeb(t, dir, apttest.Package{Name: "tool", Version: "1.0-1", Arch: "all",
		Files: []apttest.File{{Path: "/usr/share/tool/data", Body: []byte("data")}}})
	entries := archive.MustAdd(t, deb)
	src := Source{URL: archive.URL(), Suite: "bookworm-security", Keyrings: []string{signer.Keyring}, Packages: []string{"tool"}}
	repo := &fakeRepo{targets: map[string]json.RawMessage{"policy.json": nil, "apt/release/old": nil}}
	opts := Options{Prefix: "apt/", WorkDir: t.TempDir()}
	before := len(repo.targets)

	idx, err := archive.ReadFile("dists/bookworm-security/main/binary-" + apttest.DefaultArch + "/Packages")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, rel, want string
		data            []byte
		src             Source
	}{
		{"tampered .deb", entries[0].Filename, "the verified metadata says", []byte("not the package"), src},
		{"missing package", "", "is in no Packages index", nil, Source{URL: src.URL, Suite: src.Suite, Keyrings: src.Keyrings, Packages: []string{"nosuch"}}},
		{"no keyring", "", "no keyring", nil, Source{URL: src.URL, Suite: src.Suite}},
		{"https source", "", "only http://", nil, Source{URL: "https://example.invalid/debian", Suite: src.Suite, Keyrings: src.Keyrings}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.rel != "" {
				archive.Override(c.rel, c.data)
				defer archive.Override(c.rel, nil)
			}
			_, err := Pin(ctx, repo, []Source{c.src}, opts)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want %q", err, c.want)
			}
			if len(repo.targets) != before {
				t.Fatalf("a failed pin changed the repository: %v", repo.TargetNames())
			}
		})
	}
	// A tampered index (by-hash, the name Pin asks for) fails the pin.
	relText, err := archive.ReadFile("dists/bookworm-security/Release")
	if err != nil {
		t.Fatal(err)
	}
	rel, err := aptarchive.ParseRelease(relText)
	if err != nil {
		t.Fatal(err)
	}
	bad := append([]byte("Package: evil\n\n"), idx...)
	var byHash, plain []string
	for _, fh := range rel.Files {
		if aptarchive.IsPackagesIndex(fh.Path) {
			byHash = append(byHash, "dists/bookworm-security/"+path.Dir(fh.Path)+"/by-hash/SHA256/"+fh.SHA256)
			plain = append(plain, "dists/bookworm-security/"+fh.Path)
		}
	}
	for _, rel := range byHash {
		archive.Override(rel, bad)
	}
	if _, err := Pin(ctx, repo, []Source{src}, opts); err == nil || !strings.Contains(err.Error(), "/by-hash/SHA256/") || len(repo.targets) != before {
		t.Fatalf("tampered index: %v; targets %v", err, repo.TargetNames())
	}
	for _, rel := range byHash {
		archive.Override(rel, nil)
	}
	// Plain names are not asked for when the archive offers by-hash.
	for _, rel := range plain {
		archive.Override(rel, bad)
	}
	files, err := Pin(ctx, repo, []Source{src}, opts)
	if err != nil {
		t.Fatalf("pin: %v", err)
	}
	if _, ok := repo.targets["apt/release/old"]; ok {
		t.Fatal("the previous apt snapshot was kept")
	}
	if _, ok := repo.targets["policy.json"]; !ok {
		t.Fatal("a non-apt target was removed")
	}
	kinds := map[string]int{}
	for _, f := range files {
		kinds[f.Kind]++
		var c struct{ Apt struct{ URL, Kind string } }
		if err := json.Unmarshal(repo.targets[f.Target], &c); err != nil || c.Apt.URL != f.URL || c.Apt.Kind != f.Kind {
			t.Errorf("custom metadata of %s: %s", f.Target, repo.targets[f.Target])
		}
	}
	if kinds["release"] != 1 || kinds["index"] == 0 || kinds["package"] != 1 {
		t.Fatalf("pinned %v", kinds)
	}
}
