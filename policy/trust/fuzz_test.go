package trust

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/patchring/patchring/internal/targetname"
	"github.com/patchring/patchring/policy/tufrepo"
)

// dirSource serves a repository directory from disk, with one file
// replaced.
type dirSource struct {
	dir      string
	override map[string][]byte
}

func (d *dirSource) Name() string   { return "dir " + d.dir }
func (d *dirSource) IsOrigin() bool { return true }
func (d *dirSource) Fetch(ctx context.Context, p string, maxLength int64) (io.ReadCloser, error) {
	if b, ok := d.override[p]; ok {
		return io.NopCloser(bytes.NewReader(b)), nil
	}
	b, err := os.ReadFile(filepath.Join(d.dir, filepath.FromSlash(p)))
	if errors.Is(err, os.ErrNotExist) {
		return nil, &metadata.ErrDownloadHTTP{StatusCode: 404, URL: p}
	}
	if err != nil {
		return nil, err
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

// fuzzRepo builds a small repository with a policy and a catalog entry.
func fuzzRepo(tb testing.TB) (dir string, root []byte) {
	tb.Helper()
	base := tb.TempDir()
	dir = filepath.Join(base, "repo")
	r, err := tufrepo.Init(dir, filepath.Join(base, "keys"), tufrepo.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	if err := r.AddTarget("catalog/x/1.0/x.deb", []byte("x"), []byte(`{"package":"x","version":"1.0"}`)); err != nil {
		tb.Fatal(err)
	}
	if _, err := r.PublishPolicy([]byte(`{"p":1}`)); err != nil {
		tb.Fatal(err)
	}
	root, err = r.RootJSON()
	if err != nil {
		tb.Fatal(err)
	}
	return dir, root
}

// FuzzRefreshTimestamp serves arbitrary bytes as timestamp.json: the
// refresh must fail cleanly (never panic) and leave no state, unless the
// bytes are the real timestamp.
func FuzzRefreshTimestamp(f *testing.F) {
	dir, root := fuzzRepo(f)
	good, err := os.ReadFile(filepath.Join(dir, "metadata", "timestamp.json"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add([]byte(`{"signed":{"_type":"timestamp","version":99999999999,"meta":{"snapshot.json":{"version":-1,"length":-5}}},"signatures":[]}`))
	f.Add([]byte(`{"signed":{"_type":"root"},"signatures":[{"keyid":"a","sig":"zz"},{"keyid":"a","sig":"zz"}]}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := New(Config{TrustedRoot: root, StateDir: t.TempDir(),
			Sources: []Source{&dirSource{dir: dir, override: map[string][]byte{"metadata/timestamp.json": data}}}})
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.Refresh(context.Background())
		if bytes.Equal(data, good) {
			if err != nil {
				t.Fatalf("refresh with the real timestamp: %v", err)
			}
			return
		}
		if err == nil {
			t.Fatalf("refresh accepted a forged timestamp %q", data)
		}
		if _, err := c.LastGood(); !errors.Is(err, ErrNoState) {
			t.Fatalf("a failed refresh left state: %v", err)
		}
	})
}

// FuzzStateFile loads arbitrary bytes as the persisted state: LastGood must
// fail cleanly unless the bytes are a real verified state.
func FuzzStateFile(f *testing.F) {
	dir, root := fuzzRepo(f)
	stateDir := f.TempDir()
	c, err := New(Config{TrustedRoot: root, StateDir: stateDir, Sources: []Source{&dirSource{dir: dir}}})
	if err != nil {
		f.Fatal(err)
	}
	if _, err := c.Refresh(context.Background()); err != nil {
		f.Fatal(err)
	}
	good, err := os.ReadFile(filepath.Join(stateDir, stateFile))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(bytes.Replace(good, []byte(`"format":1`), []byte(`"format":2`), 1))
	f.Add([]byte(`{"format":1,"root":"e30=","timestamp":"","snapshot":"","targets":""}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		sd := t.TempDir()
		if err := os.WriteFile(filepath.Join(sd, stateFile), data, 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := New(Config{TrustedRoot: root, StateDir: sd})
		if err != nil {
			t.Fatal(err)
		}
		st, err := c.LastGood()
		if err == nil && st.Versions.Targets < 1 {
			t.Fatalf("accepted a state without targets: %+v", st.Versions)
		}
	})
}

// FuzzCatalogCustom parses arbitrary custom metadata of a catalog target.
func FuzzCatalogCustom(f *testing.F) {
	f.Add([]byte(`{"package":"zoom","version":"6.1.0","applies_to":["debian-12"],"reboot":true,"severity":"high","classification":"security","cves":["CVE-2024-1"]}`))
	f.Add([]byte(`{"package":"","version":"1"}`))
	f.Add([]byte(`{"package":1}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var e CatalogEntry
		if err := parseCatalogCustom(data, &e); err == nil && (e.Package == "" || e.Version == "") {
			t.Fatalf("accepted an entry without package or version: %+v", e)
		}
	})
}

// FuzzValidTargetName checks that every name the download path accepts
// stays inside the download directory and passes the fetch path check.
func FuzzValidTargetName(f *testing.F) {
	for _, s := range []string{"policy.json", "catalog/a/1/a.deb", "../x", "a/../../b", "/etc/passwd", `a\..\b`, "a/./b", "C:/x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if targetname.Check(name) != nil {
			return
		}
		base := filepath.FromSlash("/dst")
		p := filepath.Join(base, filepath.FromSlash(name))
		if !strings.HasPrefix(p, base+string(filepath.Separator)) {
			t.Fatalf("accepted %q, which lands at %s outside %s", name, p, base)
		}
		if checkRelPath("targets/"+name) != nil {
			t.Fatalf("accepted %q but the fetch path check refuses it", name)
		}
	})
}
