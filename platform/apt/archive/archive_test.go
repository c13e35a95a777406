package archive

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/patchring/patchring/platform/apt/apttest"
)

const sampleRelease = `Origin: Debian
Label: Debian-Security
Suite: stable-security
Codename: bookworm-security
Date: Thu, 03 Dec 2026 10:00:00 UTC
Valid-Until: Thu, 10 Dec 2026 10:00:00 UTC
Acquire-By-Hash: yes
Architectures: amd64
Components: main
MD5Sum:
 00000000000000000000000000000000 10 main/binary-amd64/Packages
SHA256:
 1111111111111111111111111111111111111111111111111111111111111111 1234 main/binary-amd64/Packages
 2222222222222222222222222222222222222222222222222222222222222222 321 main/binary-amd64/Packages.gz
 3333333333333333333333333333333333333333333333333333333333333333 55 main/i18n/Translation-en
`

func TestParseRelease(t *testing.T) {
	r, err := ParseRelease([]byte(sampleRelease))
	if err != nil {
		t.Fatal(err)
	}
	if r.Codename != "bookworm-security" || !r.AcquireByHash || len(r.Files) != 3 {
		t.Fatalf("parsed %+v", r)
	}
	if got := r.ValidUntil.Sub(r.Date); got != 7*24*time.Hour {
		t.Fatalf("Valid-Until - Date = %s", got)
	}
	fh, ok := r.Lookup("main/binary-amd64/Packages.gz")
	if !ok || fh.Size != 321 {
		t.Fatalf("lookup by path: %+v %v", fh, ok)
	}
	fh, ok = r.Lookup("main/binary-amd64/by-hash/SHA256/" + strings.Repeat("1", 64))
	if !ok || fh.Path != "main/binary-amd64/Packages" {
		t.Fatalf("lookup by hash: %+v %v", fh, ok)
	}
	// The hash is listed, but for another directory.
	if _, ok := r.Lookup("main/i18n/by-hash/SHA256/" + strings.Repeat("1", 64)); ok {
		t.Fatal("by-hash lookup matched a file of another directory")
	}
	if _, ok := r.Lookup("main/binary-amd64/Packages.xz"); ok {
		t.Fatal("lookup of an unlisted file succeeded")
	}
	now := r.Date.Add(time.Hour)
	if err := r.CheckFresh(now, time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := r.CheckFresh(r.ValidUntil.Add(time.Second), time.Minute); !errors.Is(err, ErrStale) {
		t.Fatalf("expired release: %v", err)
	}
	if err := r.CheckFresh(r.Date.Add(-time.Hour), time.Minute); !errors.Is(err, ErrStale) {
		t.Fatalf("release from the future: %v", err)
	}
}

func TestParseReleaseErrors(t *testing.T) {
	for name, text := range map[string]string{
		"no date":     "Origin: x\nSHA256:\n " + strings.Repeat("a", 64) + " 1 main/Packages\n",
		"bad date":    "Date: yesterday\nSHA256:\n " + strings.Repeat("a", 64) + " 1 main/Packages\n",
		"no files":    "Date: Thu, 03 Dec 2026 10:00:00 UTC\n",
		"short hash":  "Date: Thu, 03 Dec 2026 10:00:00 UTC\nSHA256:\n abcd 1 main/Packages\n",
		"escape":      "Date: Thu, 03 Dec 2026 10:00:00 UTC\nSHA256:\n " + strings.Repeat("a", 64) + " 1 ../../etc/passwd\n",
		"neg size":    "Date: Thu, 03 Dec 2026 10:00:00 UTC\nSHA256:\n " + strings.Repeat("a", 64) + " -1 main/Packages\n",
		"not a field": "Date: Thu, 03 Dec 2026 10:00:00 UTC\nthis is not a field\n",
		"two hashes": "Date: Thu, 03 Dec 2026 10:00:00 UTC\nSHA256:\n " + strings.Repeat("a", 64) + " 1 main/Packages\n " +
			strings.Repeat("b", 64) + " 1 main/Packages\n",
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := ParseRelease([]byte(text)); !errors.Is(err, ErrMalformed) {
				t.Fatalf("got %v, want ErrMalformed", err)
			}
		})
	}
}

func TestParsePackages(t *testing.T) {
	text := "Package: a\nVersion: 1\nDescription: x\n long\nFilename: pool/main/a/a_1_all.deb\nSize: 10\nSHA256: " + strings.Repeat("A", 64) +
		"\n\nPackage: b\nFilename: pool/main/b/b_1_all.deb\nSize: 20\nSHA256: " + strings.Repeat("b", 64) + "\n"
	var got []DebHash
	if err := ParsePackages(strings.NewReader(text), func(d DebHash) error { got = append(got, d); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].SHA256 != strings.Repeat("a", 64) || got[1].Size != 20 {
		t.Fatalf("got %+v", got)
	}
	for name, bad := range map[string]string{
		"no sha":   "Package: a\nFilename: pool/a.deb\nSize: 1\n\n",
		"bad size": "Filename: pool/a.deb\nSize: x\nSHA256: " + strings.Repeat("a", 64) + "\n",
		"escape":   "Filename: /etc/passwd\nSize: 1\nSHA256: " + strings.Repeat("a", 64) + "\n",
	} {
		if err := ParsePackages(strings.NewReader(bad), func(DebHash) error { return nil }); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: got %v, want ErrMalformed", name, err)
		}
	}
}

func TestParseSources(t *testing.T) {
	one, err := ParseSourcesList("sources.list", []byte("# comment\ndeb [arch=amd64 signed-by=/usr/share/keyrings/a.gpg] http://deb.debian.org/debian bookworm main\ndeb http://security.debian.org/debian-security bookworm-security main # x\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(one) != 2 || one[0].SignedBy[0] != "/usr/share/keyrings/a.gpg" || one[1].URIs[0] != "http://security.debian.org/debian-security/" {
		t.Fatalf("got %+v", one)
	}
	s, ok := Match(one, "http://security.debian.org/debian-security/dists/bookworm-security/")
	if !ok || s.Where != "sources.list:3" {
		t.Fatalf("match: %+v %v", s, ok)
	}
	if _, ok := Match(one, "http://security.debian.org/debian-security/dists/bookworm/"); ok {
		t.Fatal("matched a suite that is not listed")
	}
	d, err := ParseDeb822Sources("debian.sources", []byte("Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm bookworm-updates\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\nTypes: deb\nURIs: http://x/\nSuites: y\nEnabled: no\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(d) != 1 || len(d[0].Suites) != 2 || d[0].SignedBy[0] != "/usr/share/keyrings/debian-archive-keyring.gpg" {
		t.Fatalf("got %+v", d)
	}
	if _, err := ParseSourcesList("x", []byte("rpm http://x y\n")); !errors.Is(err, ErrMalformed) {
		t.Fatalf("bad type: %v", err)
	}
}

// TestVerifyReal signs with the real gpg and checks with the real gpgv:
// the signed text comes back, a changed byte, another key, or text outside
// the signed message is refused.
func TestVerifyReal(t *testing.T) {
	signer := apttest.MustSigner(t)
	other := apttest.MustSigner(t)
	ctx := context.Background()
	text := []byte(sampleRelease)
	signed, err := signer.ClearSign(text)
	if err != nil {
		t.Fatal(err)
	}
	kr := Keyring{Files: []string{signer.Keyring}}
	var v Verifier
	got, err := v.VerifyInRelease(ctx, kr, signed)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseRelease(got); err != nil {
		t.Fatalf("verified text does not parse: %v\n%s", err, got)
	}
	tampered := bytes.Replace(signed, []byte("1234 main"), []byte("1235 main"), 1)
	if _, err := v.VerifyInRelease(ctx, kr, tampered); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("tampered: %v", err)
	}
	if _, err := v.VerifyInRelease(ctx, Keyring{Files: []string{other.Keyring}}, signed); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("other key: %v", err)
	}
	if _, err := v.VerifyInRelease(ctx, kr, append(append([]byte{}, signed...), []byte("\nSHA256:\n extra\n")...)); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("trailing text: %v", err)
	}
	sig, err := signer.DetachSign(text)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.VerifyDetached(ctx, kr, text, sig); err != nil {
		t.Fatal(err)
	}
	if err := v.VerifyDetached(ctx, kr, append([]byte("X"), text...), sig); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("detached, changed: %v", err)
	}
	// An armoured keyring (.asc, as in /etc/apt/trusted.gpg.d) works too.
	bin, err := os.ReadFile(signer.Keyring)
	if err != nil {
		t.Fatal(err)
	}
	asc := filepath.Join(t.TempDir(), "k.asc")
	if err := os.WriteFile(asc, armor(bin), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := v.VerifyInRelease(ctx, Keyring{Files: []string{asc}}, signed); err != nil {
		t.Fatalf("armoured keyring: %v", err)
	}
}

func armor(bin []byte) []byte {
	var b bytes.Buffer
	b.WriteString("-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n")
	enc := base64Std(bin)
	for len(enc) > 64 {
		b.WriteString(enc[:64] + "\n")
		enc = enc[64:]
	}
	b.WriteString(enc + "\n-----END PGP PUBLIC KEY BLOCK-----\n")
	return b.Bytes()
}
