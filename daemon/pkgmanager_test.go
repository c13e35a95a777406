package daemon

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

func TestPickManager(t *testing.T) {
	mk := func(files ...string) string {
		root := t.TempDir()
		for _, f := range files {
			p := filepath.Join(root, f)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return root
	}
	_, dnfErr := exec.LookPath("dnf")
	for _, c := range []struct {
		name, configured, root, want string
		fails                        bool
		aptConfig                    string
	}{
		{"dpkg", "auto", mk("var/lib/dpkg/status"), managerApt, false, ""},
		{"dpkg wins over an rpm database", "", mk("var/lib/dpkg/status", "var/lib/rpm/rpmdb.sqlite"), managerApt, false, ""},
		{"rpm", "auto", mk("var/lib/rpm/rpmdb.sqlite"), managerDnf, dnfErr != nil, ""},
		{"fedora sysimage", "auto", mk("usr/lib/sysimage/rpm/rpmdb.sqlite"), managerDnf, dnfErr != nil, ""},
		{"empty rpm database dir", "auto", emptyRPMDir(t), "", true, ""},
		{"nothing", "auto", mk(), "", true, ""},
		{"apt configuration given", "auto", mk("var/lib/rpm/rpmdb.sqlite"), managerApt, false, "/etc/patchring/apt.conf"},
		{"configured", "dnf", mk("var/lib/dpkg/status"), managerDnf, false, ""},
		{"unknown", "yum", mk(), "", true, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := pickManager(c.configured, c.root, c.aptConfig)
			if c.fails {
				if err == nil {
					t.Fatalf("picked %q, want an error", got)
				}
				return
			}
			if err != nil || got != c.want {
				t.Fatalf("pickManager = %q, %v; want %q", got, err, c.want)
			}
		})
	}
}

func emptyRPMDir(t *testing.T) string {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "var/lib/rpm"), 0o755); err != nil {
		t.Fatal(err)
	}
	return root
}
