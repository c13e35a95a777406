package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/patchring/patchring/policy/tufrepo"
)

func TestAdvisoriesImportCLI(t *testing.T) {
	base := t.TempDir()
	dir, keys := filepath.Join(base, "repo"), filepath.Join(base, "keys")
	rk := []string{"--repo", dir, "--keys", keys}
	mustCLI(t, append([]string{"repo", "init"}, rk...)...)
	osv := filepath.Join("..", "..", "policy", "advisory", "testdata")
	out := mustCLI(t, append([]string{"advisories", "import", filepath.Join(osv, "osv"), "--kev", filepath.Join(osv, "kev.json"), "--ecosystem", "Debian:12"}, rk...)...)
	if !strings.Contains(out, "Advisory database version 1") || !strings.Contains(out, "skipped DSA-9000-1: withdrawn") {
		t.Errorf("import output:\n%s", out)
	}
	out = mustCLI(t, append([]string{"advisories", "import", filepath.Join(osv, "osv", "DSA-5514-1.json"), "--kev", filepath.Join(osv, "kev.json")}, rk...)...)
	if !strings.Contains(out, "version 2") || !strings.Contains(out, tufrepo.AdvisoryDeltaTarget(1)) {
		t.Errorf("second import output:\n%s", out)
	}
	out = mustCLI(t, "advisories", "show", "--repo", dir)
	if !strings.Contains(out, "version 2") || !strings.Contains(out, "(1 KEV)") {
		t.Errorf("show:\n%s", out)
	}
	if out, err := runCLI(t, t.Context(), append([]string{"advisories", "import", filepath.Join(osv, "osv", "GHSA-jfh8-c2jp-5v3q.json")}, rk...)...); err == nil || !strings.Contains(err.Error(), "nothing published") {
		t.Errorf("a Maven-only import published: %v\n%s", err, out)
	}
}
