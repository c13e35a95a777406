package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/patchring/patchring/platform/dnf/dnftest"
	"github.com/patchring/patchring/policy/tufrepo"
)

// TestCatalogAddRPM: catalog add reads an .rpm's name, version and
// architecture from its header (rpm -qp) and records the format; flags
// that disagree with the header and files that are no rpm are refused
// with the file named.
func TestCatalogAddRPM(t *testing.T) {
	if err := dnftest.CheckTools(); err != nil {
		t.Fatalf("%v", err)
	}
	base := t.TempDir()
	dir, keys := filepath.Join(base, "repo"), filepath.Join(base, "keys")
	rk := []string{"--repo", dir, "--keys", keys}
	mustCLI(t, append([]string{"repo", "init", "--no-fleet-ca"}, rk...)...)
	file := dnftest.MustBuildRPM(t, base, dnftest.Package{Name: "acme-agent", Version: "2.4.1", Release: "3", Epoch: "1",
		Files: []dnftest.File{{Path: "/usr/share/acme-agent/VERSION", Body: []byte("2.4.1\n")}}})

	out := mustCLI(t, append([]string{"catalog", "add", file, "--applies-to", "rhel-9", "--severity", "important"}, rk...)...)
	if !strings.Contains(out, "catalog/acme-agent/1_2.4.1-3/") {
		t.Errorf("catalog add output:\n%s", out)
	}
	var list []tufrepo.Target
	if err := json.Unmarshal([]byte(mustCLI(t, "catalog", "list", "--repo", dir, "-o", "json")), &list); err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].Catalog == nil {
		t.Fatalf("catalog list = %+v", list)
	}
	if c := list[0].Catalog; c.Package != "acme-agent" || c.Version != "1:2.4.1-3" || c.Format != tufrepo.FormatRPM || c.Arch != "x86_64" {
		t.Errorf("entry = %+v; want acme-agent 1:2.4.1-3, rpm, x86_64 from the header", *c)
	}
	if out := mustCLI(t, "catalog", "list", "--repo", dir); !strings.Contains(out, "rpm") {
		t.Errorf("catalog list does not show the format:\n%s", out)
	}

	// The same version spelled another way is accepted; another is not.
	mustCLI(t, append([]string{"catalog", "add", file, "--package", "acme-agent", "--version", "1:2.4.1-3"}, rk...)...)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--version", "2.4.2-1"}, "rpm header says version 1:2.4.1-3"},
		{[]string{"--package", "other"}, "rpm header names package acme-agent"},
	} {
		out, err := runCLI(t, context.Background(), append(append([]string{"catalog", "add", file}, tc.args...), rk...)...)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), file) {
			t.Errorf("catalog add %v: %v (want an error naming the file and %q)\n%s", tc.args, err, tc.want, out)
		}
	}
	bogus := filepath.Join(base, "bogus-1.0-1.x86_64.rpm")
	if err := os.WriteFile(bogus, []byte("not an rpm\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := runCLI(t, context.Background(), append([]string{"catalog", "add", bogus}, rk...)...); err == nil || !strings.Contains(err.Error(), bogus) {
		t.Errorf("catalog add of a file that is no rpm: %v", err)
	}
	if n := len(catalogEntriesAt(t, dir)); n != 1 {
		t.Errorf("%d catalog entries after the refused adds, want 1", n)
	}
}

func catalogEntriesAt(t *testing.T, dir string) []tufrepo.Target {
	t.Helper()
	var list []tufrepo.Target
	if err := json.Unmarshal([]byte(mustCLI(t, "catalog", "list", "--repo", dir, "-o", "json")), &list); err != nil {
		t.Fatal(err)
	}
	return list
}
