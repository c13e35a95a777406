package daemon

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// Package managers the engine drives.
const (
	managerApt = "apt"
	managerDnf = "dnf"
)

// pickManager decides which package manager the engine drives on the
// machine whose root is root ("" is "/"): the configured one, or with
// "auto" the one whose database the machine has. An apt configuration file
// (apt.apt_config, which may place dpkg's database anywhere) means apt. A
// dpkg database wins over an rpm one (Debian machines may carry rpm and an
// empty database for tools); an rpm database counts only with dnf
// installed.
func pickManager(configured, root, aptConfig string) (string, error) {
	switch configured {
	case managerApt, managerDnf:
		return configured, nil
	case "", "auto":
	default:
		return "", fmt.Errorf("package manager %q: use auto, apt or dnf", configured)
	}
	if aptConfig != "" {
		return managerApt, nil
	}
	if root == "" {
		root = "/"
	}
	has := func(p string) bool { _, err := os.Stat(filepath.Join(root, p)); return err == nil }
	nonEmpty := func(p string) bool {
		ents, err := os.ReadDir(filepath.Join(root, p))
		return err == nil && len(ents) > 0
	}
	if has("var/lib/dpkg/status") {
		return managerApt, nil
	}
	if nonEmpty("var/lib/rpm") || nonEmpty("usr/lib/sysimage/rpm") {
		if _, err := exec.LookPath("dnf"); err != nil {
			return "", fmt.Errorf("pick package manager: %s has an rpm database but dnf is not installed (yum-only systems are not supported)", root)
		}
		return managerDnf, nil
	}
	return "", errors.New("pick package manager: neither a dpkg database (var/lib/dpkg/status) nor an rpm database (var/lib/rpm, usr/lib/sysimage/rpm) under " + root)
}

// packageFormat is the package format the engine installs, for the site's
// gossip ("deb" or "rpm"; "" when the engine is off or the machine has no
// package manager it drives).
func (d *Daemon) packageFormat() string {
	if !d.cfg.Apt.Enabled {
		return ""
	}
	m, err := pickManager(d.cfg.Apt.Manager, d.cfg.Apt.Root, d.cfg.Apt.AptConfig)
	switch {
	case err != nil:
		return ""
	case m == managerDnf:
		return "rpm"
	}
	return "deb"
}
