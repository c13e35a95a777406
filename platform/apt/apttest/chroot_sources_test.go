package apttest

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

const debianSources = `Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
# http://snapshot.debian.org/archive/debian-security/20250520T000000Z
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
`

func TestParseSources(t *testing.T) {
	cases := []struct {
		name    string
		file    string
		data    string
		want    []aptSource
		wantErr string
	}{
		{
			name: "deb822 as Debian's container images ship it",
			file: "debian.sources",
			data: debianSources,
			want: []aptSource{
				{File: "debian.sources", Line: 1, Types: []string{"deb"}, URIs: []string{"http://deb.debian.org/debian"},
					Suites: []string{"bookworm", "bookworm-updates"}, Components: []string{"main"}},
				{File: "debian.sources", Line: 8, Types: []string{"deb"}, URIs: []string{"http://deb.debian.org/debian-security"},
					Suites: []string{"bookworm-security"}, Components: []string{"main"}},
			},
		},
		{
			name: "deb822 disabled entry, continuation lines, field case",
			file: "x.sources",
			data: "types: deb deb-src\nURIs: https://a.example/debian\n  https://b.example/debian\nSuites: bookworm\nComponents: main contrib\nSigned-By:\n -----BEGIN PGP PUBLIC KEY BLOCK-----\n .\n -----END PGP PUBLIC KEY BLOCK-----\n\nTypes: deb\nEnabled: no\nURIs: http://off.example/\nSuites: bookworm\n",
			want: []aptSource{{File: "x.sources", Line: 1, Types: []string{"deb", "deb-src"},
				URIs: []string{"https://a.example/debian", "https://b.example/debian"}, Suites: []string{"bookworm"}, Components: []string{"main", "contrib"}}},
		},
		{
			name: "one-line with options and comments",
			file: "sources.list",
			data: "# comment\n\ndeb [ arch=amd64 signed-by=/k.gpg ] http://ftp.de.debian.org/debian bookworm main non-free # trailing\ndeb-src http://ftp.de.debian.org/debian bookworm main\n",
			want: []aptSource{
				{File: "sources.list", Line: 3, Types: []string{"deb"}, URIs: []string{"http://ftp.de.debian.org/debian"},
					Suites: []string{"bookworm"}, Components: []string{"main", "non-free"}},
				{File: "sources.list", Line: 4, Types: []string{"deb-src"}, URIs: []string{"http://ftp.de.debian.org/debian"},
					Suites: []string{"bookworm"}, Components: []string{"main"}},
			},
		},
		{name: "one-line unclosed options", file: "a.list", data: "deb [arch=amd64 http://x/ bookworm main\n", wantErr: "a.list:1: options in [ ] are not closed"},
		{name: "one-line unknown type", file: "a.list", data: "\ndeb-foo http://x/ bookworm\n", wantErr: "a.list:2: unknown type"},
		{name: "one-line without suite", file: "a.list", data: "deb http://x/\n", wantErr: "a.list:1: want a URI and a suite"},
		{name: "deb822 without URIs", file: "a.sources", data: "Types: deb\nSuites: bookworm\n", wantErr: "a.sources:1: entry without Types, URIs or Suites"},
		{name: "deb822 stray continuation", file: "a.sources", data: " main\n", wantErr: "a.sources:1: continuation line without a field"},
		{name: "deb822 not a field", file: "a.sources", data: "Types deb\n", wantErr: "a.sources:1: want Field: value"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseSources(tc.file, []byte(tc.data))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestChooseMirror(t *testing.T) {
	cases := []struct {
		name       string
		files      map[string]string // relative to etc/apt
		env        string
		opt        string
		suite      string
		want, from string
		wantErr    string
	}{
		{
			name:  "deb822 in sources.list.d",
			files: map[string]string{"sources.list.d/debian.sources": debianSources, "sources.list.d/other.list.disabled": "deb http://no/ bookworm main\n"},
			suite: "bookworm", want: "http://deb.debian.org/debian", from: "sources.list.d/debian.sources:1",
		},
		{
			name:  "security suite",
			files: map[string]string{"sources.list.d/debian.sources": debianSources},
			suite: "bookworm-security", want: "http://deb.debian.org/debian-security", from: "sources.list.d/debian.sources:8",
		},
		{
			name: "sources.list before sources.list.d, skipping deb-src and cdrom",
			files: map[string]string{
				"sources.list":                  "deb cdrom:[Debian 12]/ bookworm main\ndeb-src http://src/ bookworm main\ndeb http://first.example/debian bookworm main\n",
				"sources.list.d/debian.sources": debianSources,
			},
			suite: "bookworm", want: "http://first.example/debian", from: "sources.list:3",
		},
		{
			name:  "environment wins",
			files: map[string]string{"sources.list.d/debian.sources": debianSources},
			env:   "http://env.example/debian", suite: "bookworm", want: "http://env.example/debian", from: "$" + MirrorEnv,
		},
		{
			name: "option wins", opt: "http://opt.example/debian", env: "http://env.example/debian",
			suite: "bookworm", want: "http://opt.example/debian", from: "ChrootOptions.Mirror",
		},
		{
			name:  "no source for the suite",
			files: map[string]string{"sources.list.d/debian.sources": debianSources, "sources.list": "deb [broken http://x/ y\n"},
			suite: "trixie", wantErr: "no apt source of type deb for suite trixie",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			etc := t.TempDir()
			for rel, body := range tc.files {
				p := filepath.Join(etc, rel)
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			t.Setenv(MirrorEnv, tc.env)
			got, from, err := chooseMirror(ChrootOptions{Suite: tc.suite, Mirror: tc.opt}, etc)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), MirrorEnv) {
					t.Fatalf("err = %v, want %q and a hint at %s", err, tc.wantErr, MirrorEnv)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want || strings.TrimPrefix(from, etc+"/") != tc.from {
				t.Errorf("mirror %q from %q, want %q from %q", got, from, tc.want, tc.from)
			}
		})
	}
}

func TestChrootCacheKey(t *testing.T) {
	base := ChrootOptions{}.withDefaults()
	k := base.cacheKey("http://deb.debian.org/debian")
	if k != base.cacheKey("http://deb.debian.org/debian/") {
		t.Error("a trailing slash on the mirror changed the key")
	}
	reordered := ChrootOptions{Include: []string{"b", "a", "a"}}.withDefaults()
	if reordered.cacheKey("m") != (ChrootOptions{Include: []string{"a", "b"}}.withDefaults()).cacheKey("m") {
		t.Error("the order of Include changed the key")
	}
	for name, o := range map[string]ChrootOptions{
		"suite":   {Suite: "trixie"},
		"variant": {Variant: "apt"},
		"include": {Include: []string{"adduser", "systemd"}},
		"arch":    {Arch: "arm64"},
	} {
		if o.withDefaults().cacheKey("http://deb.debian.org/debian") == k {
			t.Errorf("changing the %s kept the key", name)
		}
	}
	if base.cacheKey("http://other.example/debian") == k {
		t.Error("changing the mirror kept the key")
	}
	p := base.cachePath("http://deb.debian.org/debian")
	if filepath.Dir(p) != os.TempDir() || !strings.HasPrefix(filepath.Base(p), "patchring-mmdebstrap-cache-") || !strings.HasSuffix(p, ".tar") {
		t.Errorf("cache path %s", p)
	}
}

func FuzzParseSources(f *testing.F) {
	f.Add(true, []byte(debianSources))
	f.Add(false, []byte("deb [ arch=amd64 ] http://x/debian bookworm main # c\ndeb-src http://x/ y\n"))
	f.Add(true, []byte("Types: deb\n x\nEnabled: no\n\n\nURIs: a\n"))
	f.Add(false, []byte("deb [ http://x"))
	f.Fuzz(func(t *testing.T, deb822 bool, data []byte) {
		name := "f.list"
		if deb822 {
			name = "f.sources"
		}
		srcs, err := parseSources(name, data)
		if err != nil {
			return
		}
		for _, s := range srcs {
			if len(s.Types) == 0 || len(s.URIs) == 0 || len(s.Suites) == 0 || s.Line < 1 {
				t.Fatalf("incomplete entry accepted: %+v", s)
			}
		}
		if u, s, ok := mirrorFor(srcs, "bookworm"); ok && (u == "" || len(s.URIs) == 0) {
			t.Fatalf("mirrorFor returned %q from %+v", u, s)
		}
	})
}
