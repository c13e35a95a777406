package main

import (
	"crypto/ed25519"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/patchring/patchring/console/report"
	"github.com/patchring/patchring/platform/apt/apttest"
	"github.com/patchring/patchring/policy/trust"
	"github.com/patchring/patchring/policy/tufrepo"
)

// `patchring bundle create --apt-inventory REPORTS`: the site's exported
// reports say what its nodes have installed; the bundle carries each
// package the archive has newer than a version a node has (and none that
// no node needs), from each node's newest record; a record whose
// signature does not verify is refused, naming the file and the record.
func TestBundleCreateAptFromInventory(t *testing.T) {
	apttest.RequireTools(t)
	signer := apttest.MustSigner(t)
	archive := apttest.MustStartRepo(t, apttest.RepoConfig{Suite: "bookworm-security", Signer: signer, ByHash: true})
	debDir := t.TempDir()
	for _, p := range []struct{ name, version string }{{"openssl", "3.0.15-1~deb12u1"}, {"libssl3", "3.0.15-1~deb12u1"}, {"libc6", "2.36-9+deb12u4"}, {"unused", "1.0-1"}} {
		archive.MustAdd(t, apttest.MustBuildDeb(t, debDir, apttest.Package{Name: p.name, Version: p.version, Arch: "all",
			Files: []apttest.File{{Path: "/usr/share/" + p.name + "/data", Body: []byte(p.version)}}}))
	}

	record := func(key ed25519.PrivateKey, seq uint64, pkgs ...report.Package) report.Envelope {
		t.Helper()
		r := report.Record{V: report.Version, Node: report.NodeID(key.Public().(ed25519.PublicKey)), Seq: seq,
			Time: time.Now().UTC().Truncate(time.Second), Site: "branch", Hostname: "desk", State: "idle", Reboot: report.Reboot{State: report.RebootNone},
			Packages: pkgs, PackagesDigest: report.DigestPackages(pkgs)}
		env, err := report.Sign(r, key)
		if err != nil {
			t.Fatal(err)
		}
		return env
	}
	key := func(seed byte) ed25519.PrivateKey {
		s := make([]byte, ed25519.SeedSize)
		s[0] = seed
		return ed25519.NewKeyFromSeed(s)
	}
	write := func(name string, envs ...report.Envelope) string {
		t.Helper()
		var recs []json.RawMessage
		for _, e := range envs {
			raw, err := json.Marshal(e)
			if err != nil {
				t.Fatal(err)
			}
			recs = append(recs, raw)
		}
		data, err := json.Marshal(map[string]any{"records": recs})
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(t.TempDir(), name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pkg := func(name, version string) report.Package {
		return report.Package{Name: name, Version: version, Arch: "amd64"}
	}
	a, b := key(1), key(2)
	reports := write("site-reports.json",
		// Node a runs the old openssl; its older record (a still older
		// libc6) is superseded.
		record(a, 3, pkg("openssl", "3.0.11-1~deb12u2"), pkg("libc6", "2.36-9+deb12u4"), pkg("bash", "5.2.15-2+b2")),
		record(a, 1, pkg("openssl", "3.0.11-1~deb12u2"), pkg("libc6", "2.36-9+deb12u1")),
		// Node b has openssl already but the old libssl3.
		record(b, 5, pkg("openssl", "3.0.15-1~deb12u1"), pkg("libssl3", "3.0.11-1~deb12u2"), pkg("libc6", "2.36-9+deb12u4")),
		// A record without a package list (unchanged since the last).
		record(b, 6))

	base := t.TempDir()
	dir, keys := filepath.Join(base, "repo"), filepath.Join(base, "keys")
	rk := []string{"--repo", dir, "--keys", keys}
	mustCLI(t, append([]string{"repo", "init"}, rk...)...)
	apt := []string{"--apt-source", archive.URL(), "--apt-suite", "bookworm-security", "--apt-keyring", signer.Keyring}
	pinnedPackages := func() []string {
		t.Helper()
		r, err := tufrepo.Open(dir, keys, "")
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, tg := range r.ListTargets() {
			if !strings.HasPrefix(tg.Name, trust.AptPrefix+"package/") {
				continue
			}
			var c struct {
				Apt struct{ URL string } `json:"apt"`
			}
			if err := json.Unmarshal(tg.Custom, &c); err != nil {
				t.Fatal(err)
			}
			out = append(out, c.Apt.URL[strings.LastIndex(c.Apt.URL, "/")+1:])
		}
		return out
	}

	// A forged record: node a's record with its package list changed.
	forged := record(a, 9, pkg("unused", "0.1"))
	var rec map[string]any
	if err := json.Unmarshal(forged.Payload, &rec); err != nil {
		t.Fatal(err)
	}
	rec["packages"] = []report.Package{pkg("libc6", "2.0")}
	forged.Payload, _ = json.Marshal(rec)
	bad := write("forged.json", record(b, 1, pkg("libc6", "2.36-9+deb12u4")), forged)
	out, err := runCLI(t, t.Context(), append(append([]string{"bundle", "create", "--out", filepath.Join(base, "bad.tar.gz"),
		"--apt-inventory", bad}, apt...), rk...)...)
	if err == nil || !strings.Contains(err.Error(), "forged.json: records[1]") {
		t.Fatalf("forged record: %v\n%s", err, out)
	}
	if got := pinnedPackages(); len(got) != 0 {
		t.Fatalf("a forged inventory pinned %v", got)
	}

	out = mustCLI(t, append(append([]string{"bundle", "create", "--out", filepath.Join(base, "site.tar.gz"),
		"--apt-inventory", reports}, apt...), rk...)...)
	got := pinnedPackages()
	slices.Sort(got)
	want := []string{"libssl3_3.0.15-1~deb12u1_all.deb", "openssl_3.0.15-1~deb12u1_all.deb"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("pinned packages %v, want %v (the site's pending updates)\n%s", got, want, out)
	}
}
