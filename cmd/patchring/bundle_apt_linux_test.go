package main

import (
	"archive/tar"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/patchring/patchring/platform/apt/apttest"
	"github.com/patchring/patchring/policy/trust"
	"github.com/patchring/patchring/policy/tufrepo"
)

// `patchring bundle create --apt-source ...` pins the archive's snapshot
// into the signed targets and bundles it; --apt-list does the same from a
// file; a bad source changes nothing.
func TestBundleCreateWithApt(t *testing.T) {
	apttest.RequireTools(t)
	signer := apttest.MustSigner(t)
	archive := apttest.MustStartRepo(t, apttest.RepoConfig{Suite: "bookworm-security", Signer: signer, ByHash: true})
	deb := apttest.MustBuildDeb(t, t.TempDir(), apttest.Package{Name: "tool", Version: "1.0-1", Arch: "all",
		Files: []apttest.File{{Path: "/usr/share/tool/data", Body: []byte("data")}}})
	archive.MustAdd(t, deb)

	base := t.TempDir()
	dir, keys := filepath.Join(base, "repo"), filepath.Join(base, "keys")
	rk := []string{"--repo", dir, "--keys", keys}
	mustCLI(t, append([]string{"repo", "init"}, rk...)...)
	aptTargets := func() []string {
		r, err := tufrepo.Open(dir, keys, "")
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, tg := range r.ListTargets() {
			if strings.HasPrefix(tg.Name, trust.AptPrefix) {
				out = append(out, tg.Name)
			}
		}
		return out
	}

	out, err := runCLI(t, t.Context(), append([]string{"bundle", "create", "--out", filepath.Join(base, "bad.tar.gz"),
		"--apt-source", archive.URL(), "--apt-suite", "bookworm-security", "--apt-keyring", signer.Keyring, "--apt-package", "nosuch"}, rk...)...)
	if err == nil || !strings.Contains(err.Error(), `package "nosuch" is in no Packages index`) || len(aptTargets()) != 0 {
		t.Fatalf("bad package: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(base, "bad.tar.gz")); err == nil {
		t.Fatal("a bundle was written for a failed pin")
	}

	bundle := filepath.Join(base, "site.tar.gz")
	out = mustCLI(t, append([]string{"bundle", "create", "--out", bundle,
		"--apt-source", archive.URL(), "--apt-suite", "bookworm-security", "--apt-keyring", signer.Keyring, "--apt-package", "tool"}, rk...)...)
	if !strings.Contains(out, "pinned apt snapshot:") || !strings.Contains(out, "wrote "+bundle) {
		t.Fatalf("output:\n%s", out)
	}
	pinned := aptTargets()
	kinds := map[string]int{}
	for _, n := range pinned {
		kinds[strings.Split(strings.TrimPrefix(n, trust.AptPrefix), "/")[0]]++
	}
	if kinds["release"] != 1 || kinds["index"] == 0 || kinds["package"] != 1 {
		t.Fatalf("apt targets %v", pinned)
	}
	// The bundle holds every pinned file (named by its hash: consistent
	// snapshots) and the re-signed metadata.
	names := tarNames(t, bundle)
	for _, n := range pinned {
		sum := n[strings.LastIndex(n, "/")+1:]
		found := false
		for _, e := range names {
			if strings.HasPrefix(e, "targets/apt/") && strings.Contains(e, sum) {
				found = true
			}
		}
		if !found {
			t.Errorf("bundle lacks %s: %v", n, names)
		}
	}

	// The same from a list file replaces the snapshot (same files here).
	list := filepath.Join(base, "apt.list")
	if err := os.WriteFile(list, []byte("# site sources\n"+archive.URL()+" bookworm-security "+signer.Keyring+" tool\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	mustCLI(t, append([]string{"bundle", "create", "--out", filepath.Join(base, "site2.tar.gz"), "--apt-list", list}, rk...)...)
	if got := aptTargets(); strings.Join(got, ",") != strings.Join(pinned, ",") {
		t.Fatalf("after --apt-list: %v, want %v", got, pinned)
	}
}

func tarNames(t *testing.T, file string) []string {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	var out []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, h.Name)
	}
}
