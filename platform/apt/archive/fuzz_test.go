package archive

import (
	"bytes"
	"encoding/base64"
	"testing"
)

func base64Std(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// The parsers read files from archives and peers before anything is
// trusted; they must never panic and never accept a path that escapes.
func FuzzParseRelease(f *testing.F) {
	f.Add([]byte(sampleRelease))
	f.Add([]byte("Date: Thu, 03 Dec 2026 10:00:00 UTC\nSHA256:\n " + string(bytes.Repeat([]byte("a"), 64)) + " 1 x\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ParseRelease(data)
		if err != nil {
			return
		}
		for p, fh := range r.Files {
			if !validRelPath(p) || fh.Size < 0 || len(fh.SHA256) != 64 {
				t.Fatalf("accepted %+v", fh)
			}
			if got, ok := r.Lookup(p); !ok || got != fh {
				t.Fatalf("lookup %q", p)
			}
		}
	})
}

func FuzzParsePackages(f *testing.F) {
	f.Add([]byte("Package: a\nFilename: pool/a.deb\nSize: 1\nSHA256: " + string(bytes.Repeat([]byte("a"), 64)) + "\n\n"))
	f.Add([]byte("Filename: pool/a.deb\n\n\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		_ = ParsePackages(bytes.NewReader(data), func(d DebHash) error {
			if !validRelPath(d.Filename) || d.Size < 0 || len(d.SHA256) != 64 {
				t.Fatalf("accepted %+v", d)
			}
			return nil
		})
	})
}

func FuzzParseSources(f *testing.F) {
	f.Add([]byte("deb [signed-by=/k.gpg] http://x/debian bookworm main\n"), true)
	f.Add([]byte("Types: deb\nURIs: http://x/\nSuites: a b\nSigned-By:\n -----BEGIN PGP PUBLIC KEY BLOCK-----\n .\n abc\n"), false)
	f.Fuzz(func(t *testing.T, data []byte, oneLine bool) {
		var ss []Source
		var err error
		if oneLine {
			ss, err = ParseSourcesList("f", data)
		} else {
			ss, err = ParseDeb822Sources("f", data)
		}
		if err != nil {
			return
		}
		for _, s := range ss {
			for _, u := range s.URIs {
				Match(ss, u+"dists/x/")
			}
		}
	})
}

func FuzzDearmor(f *testing.F) {
	f.Add([]byte("-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nAAEC\n=abcd\n-----END PGP PUBLIC KEY BLOCK-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) { _, _ = Dearmor(data) })
}
