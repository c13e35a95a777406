package main

import (
	"embed"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/goreleaser/nfpm/v2"
	"github.com/goreleaser/nfpm/v2/deb"
	"github.com/goreleaser/nfpm/v2/files"
	"github.com/goreleaser/nfpm/v2/rpm"

	"github.com/patchring/patchring/daemon/aptproxy"
	"github.com/patchring/patchring/tray/autostart"
)

//go:embed files
var embedded embed.FS

// Installed paths.
const (
	pathDaemon = "/usr/sbin/patchringd"
	pathCLI    = "/usr/bin/patchring"
	pathUnit   = "/usr/lib/systemd/system/patchringd.service"
	pathSysV   = "/etc/init.d/patchringd"
	pathConfig = "/etc/patchring/patchringd.yaml"
	// pathAptSnippet is the apt proxy snippet shipped as an example.
	pathAptSnippet = "/usr/share/patchring/apt-proxy.conf"
	pathDesktop    = "/etc/xdg/autostart/" + autostart.FileName
)

// payload is everything one architecture's packages hold.
type payload struct {
	Version pkgVersion
	// Arch is Go's name of the architecture (amd64, arm64).
	Arch string
	// Daemon and CLI are paths of the linux/Arch binaries.
	Daemon, CLI string
	// Unit and SysV are the service files kardianos/service writes
	// (see serviceFiles).
	Unit, SysV []byte
	// Completions maps bash, zsh and fish to the CLI's completion script.
	Completions map[string][]byte
	// MTime is every file's modification time and the build date.
	MTime time.Time
	// Compression is nfpm's compression setting for both formats, e.g.
	// "gzip:1" (default: nfpm's, gzip at its default level).
	Compression string
}

var debArch = map[string]string{"amd64": "amd64", "arm64": "arm64"}
var rpmArch = map[string]string{"amd64": "x86_64", "arm64": "aarch64"}

// fileNames returns the .deb's and .rpm's file names.
func (p *payload) fileNames() (debName, rpmName string) {
	return fmt.Sprintf("patchring_%s_%s.deb", p.Version.Deb, debArch[p.Arch]),
		fmt.Sprintf("patchring-%s-%s.%s.rpm", p.Version.RPMVersion, p.Version.RPMRelease, rpmArch[p.Arch])
}

// info returns nfpm's description of the package for format ("deb" or
// "rpm"); stage is a directory for the files that are not on disk yet.
func (p *payload) info(format, stage string) (*nfpm.Info, error) {
	if debArch[p.Arch] == "" {
		return nil, fmt.Errorf("architecture %q: use amd64 or arm64", p.Arch)
	}
	info := &nfpm.Info{
		Name:          "patchring",
		Arch:          p.Arch,
		Platform:      "linux",
		VersionSchema: "none",
		Section:       "admin",
		Priority:      "optional",
		Maintainer:    "patchring maintainers <maintainers@patchring.invalid>",
		Vendor:        "patchring",
		Homepage:      "https://github.com/patchring/patchring",
		License:       "Apache-2.0",
		Description: "endpoint patch manager agent and admin CLI\n" +
			"patchringd inventories the machine, follows the fleet's signed ring policy,\n" +
			"installs updates with apt in rings and shares payloads with LAN peers;\n" +
			"patchring is the admin CLI and the desktop tray (patchring tray).",
		MTime: p.MTime,
	}
	info.Deb.Arch = debArch[p.Arch]
	info.RPM.Arch = rpmArch[p.Arch]
	info.RPM.BuildHost = "patchring-build" // not the build machine's name: reproducible
	info.RPM.Summary = "endpoint patch manager agent and admin CLI"
	info.RPM.Group = "System Environment/Daemons"
	info.Deb.Compression, info.RPM.Compression = p.Compression, p.Compression
	switch format {
	case "deb":
		info.Version, info.Release = splitDeb(p.Version.Deb)
	case "rpm":
		info.Version, info.Release = p.Version.RPMVersion, p.Version.RPMRelease
	default:
		return nil, fmt.Errorf("package format %q: use deb or rpm", format)
	}

	write := func(name string, data []byte) (string, error) {
		dst := filepath.Join(stage, format+"-"+name)
		if err := os.WriteFile(dst, data, 0o644); err != nil {
			return "", err
		}
		return dst, nil
	}
	read := func(name string) ([]byte, error) { return embedded.ReadFile("files/" + name) }
	config, err := read("patchringd.yaml")
	if err != nil {
		return nil, err
	}
	zsh := "/usr/share/zsh/vendor-completions/_patchring"
	if format == "rpm" {
		zsh = "/usr/share/zsh/site-functions/_patchring"
	}
	type entry struct {
		dst  string
		src  string // a file on disk, or
		data []byte // the file's bytes
		mode os.FileMode
		typ  string
	}
	confType := files.TypeConfig
	if format == "rpm" {
		confType = files.TypeConfigNoReplace
	}
	entries := []entry{
		{dst: pathDaemon, src: p.Daemon, mode: 0o755},
		{dst: pathCLI, src: p.CLI, mode: 0o755},
		{dst: pathUnit, data: p.Unit, mode: 0o644},
		// Generated from the package's own binary: replaced on upgrade,
		// removed with the package (no stale script for a missing binary).
		{dst: pathSysV, data: p.SysV, mode: 0o755},
		{dst: pathConfig, data: config, mode: 0o644, typ: confType},
		{dst: pathDesktop, data: autostart.Entry, mode: 0o644},
		{dst: "/usr/share/bash-completion/completions/patchring", data: p.Completions["bash"], mode: 0o644},
		{dst: zsh, data: p.Completions["zsh"], mode: 0o644},
		{dst: "/usr/share/fish/vendor_completions.d/patchring.fish", data: p.Completions["fish"], mode: 0o644},
		// The apt proxy's apt.conf.d snippet, for admins who manage apt's
		// configuration themselves (the agent writes it into
		// /etc/apt/apt.conf.d while apt.proxy is on; docs/APT.md).
		{dst: pathAptSnippet, data: aptproxy.Snippet("http://127.0.0.1:3142/"), mode: 0o644},
	}
	slices.SortFunc(entries, func(a, b entry) int { return strings.Compare(a.dst, b.dst) })
	for i, e := range entries {
		src := e.src
		if src == "" {
			if len(e.data) == 0 {
				return nil, fmt.Errorf("package %s: no content for %s", format, e.dst)
			}
			if src, err = write(fmt.Sprintf("file-%d", i), e.data); err != nil {
				return nil, err
			}
		}
		info.Contents = append(info.Contents, &files.Content{
			Source: src, Destination: e.dst, Type: e.typ,
			FileInfo: &files.ContentFileInfo{Mode: e.mode, Owner: "root", Group: "root", MTime: p.MTime},
		})
	}
	var scripts map[string]*string
	if format == "deb" {
		scripts = map[string]*string{"deb-postinst": &info.Scripts.PostInstall, "deb-prerm": &info.Scripts.PreRemove, "deb-postrm": &info.Scripts.PostRemove}
	} else {
		scripts = map[string]*string{"rpm-post": &info.Scripts.PostInstall, "rpm-preun": &info.Scripts.PreRemove, "rpm-postun": &info.Scripts.PostRemove}
	}
	for name, dst := range scripts {
		data, err := read(name)
		if err != nil {
			return nil, err
		}
		if *dst, err = write(name, data); err != nil {
			return nil, err
		}
	}
	return info, nil
}

// splitDeb splits a Debian version upstream-revision.
func splitDeb(v string) (upstream, revision string) {
	i := strings.LastIndexByte(v, '-')
	return v[:i], v[i+1:]
}

// pack writes the .deb and the .rpm of p into dir and returns their paths.
// Same payload, same bytes.
func pack(p *payload, dir string) ([]string, error) {
	stage, err := os.MkdirTemp("", "patchring-package-*")
	if err != nil {
		return nil, fmt.Errorf("package: %w", err)
	}
	defer os.RemoveAll(stage)
	debName, rpmName := p.fileNames()
	var out []string
	for _, f := range []struct {
		format, name string
		pkgr         nfpm.Packager
	}{{"deb", debName, deb.Default}, {"rpm", rpmName, rpm.DefaultRPM}} {
		info, err := p.info(f.format, stage)
		if err != nil {
			return nil, fmt.Errorf("package %s: %w", f.name, err)
		}
		if err := nfpm.PrepareForPackager(info, f.format); err != nil {
			return nil, fmt.Errorf("package %s: %w", f.name, err)
		}
		dst := filepath.Join(dir, f.name)
		if err := writePackage(dst, func(w io.Writer) error { return f.pkgr.Package(info, w) }); err != nil {
			return nil, fmt.Errorf("package %s: %w", f.name, err)
		}
		out = append(out, dst)
	}
	return out, nil
}

// writePackage writes dst through a temporary file, so a failed build
// leaves no half-written package behind.
func writePackage(dst string, write func(io.Writer) error) error {
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".pkg-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := write(tmp); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), dst)
}
