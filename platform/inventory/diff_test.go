package inventory

import (
	"encoding/json"
	"slices"
	"testing"
)

func dpkgPkg(name, arch, version, status string) Package {
	return Package{Manager: "dpkg", Name: name, Architecture: arch, Version: version, Status: status}
}

func snapWith(kernel string, reboot bool, pkgs ...Package) *Snapshot {
	return &Snapshot{
		OS:       &OSInfo{KernelRelease: kernel},
		Reboot:   &Reboot{Required: reboot, Reasons: map[bool][]string{true: {"/var/run/reboot-required exists"}}[reboot]},
		Packages: &Packages{Managers: []string{"dpkg"}, Items: pkgs},
	}
}

func TestDiff(t *testing.T) {
	t.Parallel()
	base := []Package{
		dpkgPkg("bash", "amd64", "5.2.15-2+b2", "installed"),
		dpkgPkg("curl", "amd64", "7.88.1-10+deb12u5", "installed"),
		dpkgPkg("libc6", "amd64", "2.36-9+deb12u4", "installed"),
		dpkgPkg("libc6", "i386", "2.36-9+deb12u4", "installed"),
		dpkgPkg("oldconf", "all", "1.0", "config-files"),
		dpkgPkg("vim", "amd64", "2:9.0.1378-2", "installed"),
	}
	tests := []struct {
		name     string
		old, new *Snapshot
		want     []string
	}{
		{"identical", snapWith("6.1.0-18-amd64", false, base...), snapWith("6.1.0-18-amd64", false, base...), nil},
		{"first scan", nil, snapWith("k", false, base...), nil},
		{
			"install, remove, upgrade, downgrade",
			snapWith("6.1.0-18-amd64", false, base...),
			snapWith("6.1.0-18-amd64", false,
				dpkgPkg("bash", "amd64", "5.2.15-2+b7", "installed"),
				dpkgPkg("hello", "amd64", "2.10-3", "installed"),
				dpkgPkg("libc6", "amd64", "2.36-9+deb12u10", "installed"),
				dpkgPkg("libc6", "i386", "2.36-9+deb12u4", "installed"),
				dpkgPkg("oldconf", "all", "1.0", "config-files"),
				dpkgPkg("vim", "amd64", "2:9.0.1378-1", "installed"),
			),
			[]string{
				"package-upgraded bash:amd64 5.2.15-2+b2 -> 5.2.15-2+b7",
				"package-removed curl:amd64 7.88.1-10+deb12u5",
				"package-added hello:amd64 2.10-3",
				"package-upgraded libc6:amd64 2.36-9+deb12u4 -> 2.36-9+deb12u10",
				"package-downgraded vim:amd64 2:9.0.1378-2 -> 2:9.0.1378-1",
			},
		},
		{
			"remove keeps config, purge config, reinstall over config",
			snapWith("k", false, dpkgPkg("a", "all", "1", "installed"), dpkgPkg("b", "all", "1", "config-files"), dpkgPkg("c", "all", "1", "config-files")),
			snapWith("k", false, dpkgPkg("a", "all", "1", "config-files"), dpkgPkg("c", "all", "2", "installed")),
			[]string{"package-removed a:all 1", "package-added c:all 2"},
		},
		{
			"status change and epoch-only spelling",
			snapWith("k", false, dpkgPkg("a", "all", "1", "installed"), dpkgPkg("b", "all", "1.0", "installed")),
			snapWith("k", false, dpkgPkg("a", "all", "1", "half-configured"), dpkgPkg("b", "all", "0:1.0", "installed")),
			[]string{"package-status-changed a:all installed -> half-configured", "package-changed b:all 1.0 -> 0:1.0"},
		},
		{
			"kernel and reboot",
			snapWith("6.1.0-18-amd64", false, base...),
			snapWith("6.1.0-21-amd64", true, base...),
			[]string{"kernel-changed 6.1.0-18-amd64 -> 6.1.0-21-amd64", "reboot-required /var/run/reboot-required exists"},
		},
		{
			"reboot cleared",
			snapWith("k", true, base...),
			snapWith("k", false, base...),
			[]string{"reboot-cleared /var/run/reboot-required exists"},
		},
		{
			"unreadable database is not a mass removal",
			snapWith("k", false, base...),
			&Snapshot{Packages: &Packages{Managers: []string{}, Unavailable: []Unavailable{{Source: "dpkg", Reason: "not present"}}}},
			nil,
		},
		{
			"rpm versions",
			&Snapshot{Packages: &Packages{Managers: []string{"rpm"}, Items: []Package{{Manager: "rpm", Name: "openssl-libs", Architecture: "x86_64", Version: "1:3.0.7-18.el9_2", Status: "installed"}}}},
			&Snapshot{Packages: &Packages{Managers: []string{"rpm"}, Items: []Package{{Manager: "rpm", Name: "openssl-libs", Architecture: "x86_64", Version: "1:3.0.7-24.el9", Status: "installed"}}}},
			[]string{"package-upgraded openssl-libs:x86_64 1:3.0.7-18.el9_2 -> 1:3.0.7-24.el9"},
		},
		{
			"unorderable versions",
			snapWith("k", false, Package{Manager: "pkgutil", Name: "com.example.app", Version: "1.0", Status: "installed"}),
			snapWith("k", false, Package{Manager: "pkgutil", Name: "com.example.app", Version: "2.0", Status: "installed"}),
			nil, // pkgutil is not in Managers of snapWith: not compared
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var got []string
			for _, c := range Diff(tt.old, tt.new) {
				got = append(got, c.String())
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("Diff:\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestDiffWindowsVersionsAreUnordered(t *testing.T) {
	t.Parallel()
	mk := func(v string) *Snapshot {
		return &Snapshot{Packages: &Packages{Managers: []string{"windows-registry"}, Items: []Package{{Manager: "windows-registry", Name: "7-Zip", Version: v, Status: "installed"}}}}
	}
	changes := Diff(mk("23.01"), mk("24.08"))
	if len(changes) != 1 || changes[0].Kind != PackageChanged || changes[0].From != "23.01" || changes[0].To != "24.08" {
		t.Fatalf("changes = %+v", changes)
	}
}

func TestDigest(t *testing.T) {
	t.Parallel()
	a := snapWith("k1", false, dpkgPkg("a", "all", "1", "installed"), dpkgPkg("b", "amd64", "2", "installed"))
	b := snapWith("k1", false, dpkgPkg("b", "amd64", "2", "installed"), dpkgPkg("a", "all", "1", "installed"))
	if a.Digest() != b.Digest() {
		t.Fatal("digest depends on package order")
	}
	d := a.Digest()
	if d.PackageCount != 2 || d.Kernel != "k1" || d.RebootRequired || len(d.Packages) != 64 {
		t.Fatalf("digest = %+v", d)
	}
	for name, other := range map[string]*Snapshot{
		"version":  snapWith("k1", false, dpkgPkg("a", "all", "1.1", "installed"), dpkgPkg("b", "amd64", "2", "installed")),
		"status":   snapWith("k1", false, dpkgPkg("a", "all", "1", "config-files"), dpkgPkg("b", "amd64", "2", "installed")),
		"arch":     snapWith("k1", false, dpkgPkg("a", "amd64", "1", "installed"), dpkgPkg("b", "amd64", "2", "installed")),
		"one less": snapWith("k1", false, dpkgPkg("a", "all", "1", "installed")),
		// field boundaries are part of the hash: "a"+"b" is not "ab"+"".
		"boundary": snapWith("k1", false, dpkgPkg("a", "all1", "", "installed"), dpkgPkg("b", "amd64", "2", "installed")),
	} {
		if other.Digest().Packages == d.Packages {
			t.Errorf("%s change not reflected in digest", name)
		}
	}
}

func TestSnapshotJSONRoundTrip(t *testing.T) {
	t.Parallel()
	s := snapWith("k", true, dpkgPkg("a", "all", "1", "installed"))
	s.Schema = SchemaVersion
	data, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var back Snapshot
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	if back.Digest() != s.Digest() || len(Diff(s, &back)) != 0 {
		t.Fatalf("round trip changed the snapshot: %s", data)
	}
}
