package engine_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/patchring/patchring/daemon/engine"
	"github.com/patchring/patchring/policy"
	"github.com/patchring/patchring/policy/trust"
)

var (
	debian12 = policy.NodeFacts{OSID: "debian", OSVersion: "12", Arch: "amd64", Installed: map[string]string{"libxcb1": "1.15-1"}}
	ubuntu22 = policy.NodeFacts{OSID: "ubuntu", OSVersion: "22.04", Arch: "amd64"}
	suseARM  = policy.NodeFacts{OSID: "opensuse-leap", OSVersion: "15.5", Arch: "arm64"}
)

func TestParseScopes(t *testing.T) {
	for _, tc := range []struct {
		name      string
		items     []string
		want      []policy.AppliesTo
		applies   []policy.NodeFacts
		doesNot   []policy.NodeFacts
		whyNot    string // in the reason for the first of doesNot
		wantError string
	}{
		{name: "empty applies everywhere", want: []policy.AppliesTo{{}},
			applies: []policy.NodeFacts{debian12, ubuntu22, suseARM}},
		{name: "os and version", items: []string{"debian-12"},
			want:    []policy.AppliesTo{{OSID: []string{"debian"}, OSVersion: []string{"12"}}},
			applies: []policy.NodeFacts{debian12}, doesNot: []policy.NodeFacts{ubuntu22, {OSID: "debian", OSVersion: "11"}},
			whyNot: `OS "ubuntu" is not one of debian`},
		{name: "several OSes are alternatives", items: []string{"debian-12", "ubuntu-22.*"},
			want: []policy.AppliesTo{
				{OSID: []string{"debian"}, OSVersion: []string{"12"}},
				{OSID: []string{"ubuntu"}, OSVersion: []string{"22.*"}},
			},
			applies: []policy.NodeFacts{debian12, ubuntu22},
			// Not debian 22.04 or ubuntu 12: pairs, not a cross product.
			doesNot: []policy.NodeFacts{{OSID: "debian", OSVersion: "22.04"}, {OSID: "ubuntu", OSVersion: "12"}}},
		{name: "dashed os id", items: []string{"os:opensuse-leap-15.*"},
			want:    []policy.AppliesTo{{OSID: []string{"opensuse-leap"}, OSVersion: []string{"15.*"}}},
			applies: []policy.NodeFacts{suseARM}},
		{name: "os without version", items: []string{"opensuse-leap"},
			want:    []policy.AppliesTo{{OSID: []string{"opensuse-leap"}}},
			applies: []policy.NodeFacts{suseARM}, doesNot: []policy.NodeFacts{debian12}},
		{name: "arch and requires apply to every OS", items: []string{"arch:amd64", "requires:libxcb1", "debian", "ubuntu"},
			want: []policy.AppliesTo{
				{OSID: []string{"debian"}, Arch: []string{"amd64"}, RequiresPackage: []string{"libxcb1"}},
				{OSID: []string{"ubuntu"}, Arch: []string{"amd64"}, RequiresPackage: []string{"libxcb1"}},
			},
			applies: []policy.NodeFacts{debian12}, doesNot: []policy.NodeFacts{ubuntu22, suseARM},
			whyNot: "requires package libxcb1, which is not installed"},
		{name: "rpm distributions and an rpm arch", items: []string{"rhel-9", "fedora-41", "arch:x86_64"},
			want: []policy.AppliesTo{
				{OSID: []string{"rhel"}, OSVersion: []string{"9"}, Arch: []string{"x86_64"}},
				{OSID: []string{"fedora"}, OSVersion: []string{"41"}, Arch: []string{"x86_64"}},
			},
			// The daemon's facts name the architecture as dpkg does (amd64):
			// x86_64 is the same architecture.
			applies: []policy.NodeFacts{{OSID: "rhel", OSVersion: "9", Arch: "amd64"}, {OSID: "fedora", OSVersion: "41", Arch: "x86_64"}},
			doesNot: []policy.NodeFacts{{OSID: "rhel", OSVersion: "9", Arch: "arm64"}, debian12, {OSID: "rhel", OSVersion: "8", Arch: "amd64"}},
			whyNot:  `architecture "arm64" is not one of x86_64`},
		{name: "unknown kind", items: []string{"kernel:6.1"}, wantError: `unknown kind "kernel"`},
		{name: "empty value", items: []string{"arch:"}, wantError: "empty value"},
		{name: "bad pattern", items: []string{"debian-[12"}, wantError: "not a valid pattern"},
		{name: "bad arch", items: []string{"arch:AMD 64"}, wantError: "not an architecture"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := engine.ParseScopes(tc.items)
			if tc.wantError != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantError) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantError)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("scopes = %+v\nwant %+v", got, tc.want)
			}
			it := engine.CatalogItem{Entry: policy.CatalogEntry{Package: "p", Version: "1"}, Scopes: got}
			for _, f := range tc.applies {
				if ok, why := it.AppliesTo(f); !ok {
					t.Errorf("does not apply to %+v: %s", f, why)
				}
			}
			for i, f := range tc.doesNot {
				ok, why := it.AppliesTo(f)
				if ok {
					t.Errorf("applies to %+v", f)
				}
				if i == 0 && tc.whyNot != "" && !strings.Contains(why, tc.whyNot) {
					t.Errorf("reason %q does not contain %q", why, tc.whyNot)
				}
			}
		})
	}
}

func TestCatalogItemFromTrust(t *testing.T) {
	info := trust.TargetInfo{Name: "catalog/zoom/6.1/zoom_6.1_amd64.deb", Length: 42, Hashes: map[string]string{"sha256": strings.Repeat("ab", 32)}}
	custom := func(v any) json.RawMessage { b, _ := json.Marshal(v); return b }
	for _, tc := range []struct {
		name    string
		in      trust.CatalogEntry
		want    policy.CatalogEntry
		scopes  int
		problem string
	}{
		{"admin tools' form", trust.CatalogEntry{TargetInfo: info, Package: "zoom", Version: "6.1", AppliesTo: []string{"debian-12"},
			Reboot: true, Severity: "important", Classification: "feature", CVEs: []string{"CVE-2024-1234"}},
			policy.CatalogEntry{Package: "zoom", Version: "6.1", Reboot: true, Severity: "high", Classification: "enhancement", CVEs: []string{"CVE-2024-1234"}}, 1, ""},
		{"unknown classification counts as other", trust.CatalogEntry{TargetInfo: info, Package: "zoom", Version: "6.1", Severity: "moderate", Classification: "hotfix"},
			policy.CatalogEntry{Package: "zoom", Version: "6.1", Severity: "medium", Classification: "other"}, 1, ""},
		{"policy schema", trust.CatalogEntry{TargetInfo: info, Problem: "custom metadata: json: cannot unmarshal object",
			Custom: custom(map[string]any{"package": "zoom", "version": "6.1", "applies_to": map[string]any{"os_id": []string{"ubuntu"}}})},
			policy.CatalogEntry{Package: "zoom", Version: "6.1", Scope: policy.AppliesTo{OSID: []string{"ubuntu"}}}, 0, ""},
		{"unreadable metadata", trust.CatalogEntry{TargetInfo: info, Problem: "custom metadata: package is missing", Custom: custom(map[string]any{"version": "6.1"})},
			policy.CatalogEntry{}, 0, "package is missing"},
		{"bad applies_to", trust.CatalogEntry{TargetInfo: info, Package: "zoom", Version: "6.1", AppliesTo: []string{"kernel:6"}},
			policy.CatalogEntry{}, 0, "unknown kind"},
		{"bad severity", trust.CatalogEntry{TargetInfo: info, Package: "zoom", Version: "6.1", Severity: "severe"},
			policy.CatalogEntry{}, 0, "not a severity"},
		{"no sha256", trust.CatalogEntry{TargetInfo: trust.TargetInfo{Name: info.Name, Length: 42, Hashes: map[string]string{"sha512": "00"}}, Package: "zoom", Version: "6.1"},
			policy.CatalogEntry{}, 0, "no sha256"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			it := engine.CatalogItemFromTrust(tc.in)
			if tc.problem != "" {
				if !strings.Contains(it.Problem, tc.problem) {
					t.Fatalf("problem = %q, want one containing %q", it.Problem, tc.problem)
				}
				return
			}
			if it.Problem != "" {
				t.Fatalf("problem: %s", it.Problem)
			}
			if it.Target != info.Name || it.Size != 42 || it.SHA256 != info.Hashes["sha256"] {
				t.Errorf("item = %+v", it)
			}
			if !reflect.DeepEqual(it.Entry, tc.want) || len(it.Scopes) != tc.scopes {
				t.Errorf("entry = %+v (%d scopes)\nwant %+v (%d)", it.Entry, len(it.Scopes), tc.want, tc.scopes)
			}
		})
	}
}

// FuzzParseScopes: applies_to lists from signed metadata never panic, and
// what parses validates under the policy's rules.
func FuzzParseScopes(f *testing.F) {
	for _, s := range []string{"debian-12", "os:ubuntu-22.*\narch:amd64", "requires:libxcb1\nopensuse-leap-15.5", "kernel:6", "-12", "a-[", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		scopes, err := engine.ParseScopes(strings.Split(s, "\n"))
		if err != nil {
			return
		}
		for _, sc := range scopes {
			e := policy.CatalogEntry{Package: "p", Version: "1", Scope: sc}
			if err := e.Validate(); err != nil {
				t.Fatalf("ParseScopes(%q) accepted a scope that does not validate: %v", s, err)
			}
			e.AppliesTo(debian12)
		}
	})
}
