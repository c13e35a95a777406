package apt

import (
	"reflect"
	"strings"
	"testing"
)

const simulationSample = `NOTE: This is only a simulation!
      apt-get needs root privileges for real execution.
Reading package lists...
The following NEW packages will be installed:
  libbar
Remv oldplugin [1.0]
Inst libfoo [1.0] (1.1 test:stable [amd64])
Inst libbar (2.0 test:stable [all])
Inst perl-base [5.36.0-7+deb12u1] (5.36.0-7+deb12u2 Debian-Security:12/stable-security [amd64]) []
Inst libc6:i386 [2.36-9] (2.36-9+deb12u4 Debian:12.5/stable [i386])
Conf libfoo (1.1 test:stable [amd64])
Purg gone:amd64 [1:0.9]
`

func TestParseSimulation(t *testing.T) {
	plan, err := parseSimulation([]byte(simulationSample))
	if err != nil {
		t.Fatal(err)
	}
	want := []Change{
		{Package: "oldplugin", From: "1.0"},
		{Package: "libfoo", Arch: "amd64", From: "1.0", To: "1.1"},
		{Package: "libbar", Arch: "all", To: "2.0"},
		{Package: "perl-base", Arch: "amd64", From: "5.36.0-7+deb12u1", To: "5.36.0-7+deb12u2"},
		{Package: "libc6", Arch: "i386", From: "2.36-9", To: "2.36-9+deb12u4"},
		{Package: "gone", Arch: "amd64", From: "1:0.9"},
	}
	if !reflect.DeepEqual(plan.Changes, want) {
		t.Fatalf("changes:\n got %+v\nwant %+v", plan.Changes, want)
	}
	if rm := plan.Removals(); len(rm) != 2 || rm[0].Package != "oldplugin" || rm[1].Package != "gone" {
		t.Errorf("removals = %+v", rm)
	}
	for _, bad := range []string{
		"Inst BAD [1.0] (1.1 x [amd64])",
		"Inst foo [1.0]",
		"Remv foo",
		"Inst foo [] (1.1 x [amd64])",
		"Inst foo (1.1;rm x [amd64])",
	} {
		if _, err := parseSimulation([]byte(bad + "\n")); err == nil {
			t.Errorf("parseSimulation(%q) accepted it", bad)
		}
	}
}

func TestParseDependsNames(t *testing.T) {
	got := parseDependsNames("libc6 (>= 2.34), libfoo (= 1.1) | libfoo-alt, perl:any, libx [amd64]")
	want := []string{"libc6", "libfoo", "libfoo-alt", "perl", "libx"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

func FuzzParseSimulation(f *testing.F) {
	f.Add([]byte(simulationSample))
	f.Add([]byte("Inst a [1] (2 o:a [all])\nRemv b [1]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		plan, err := parseSimulation(data)
		if err != nil {
			return
		}
		for _, c := range plan.Changes {
			if !validPackageName(c.Package) || strings.ContainsAny(c.From+c.To, " \n") {
				t.Fatalf("bad change %+v", c)
			}
			if c.To != "" {
				if err := (PkgVersion{Name: c.Package, Version: c.To}).Validate(); err != nil {
					t.Fatalf("accepted %+v: %v", c, err)
				}
			} else if c.From == "" {
				t.Fatalf("removal without a version: %+v", c)
			}
		}
	})
}
