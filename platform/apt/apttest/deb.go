package apttest

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/goreleaser/nfpm/v2"
	"github.com/goreleaser/nfpm/v2/deb"
	"github.com/goreleaser/nfpm/v2/files"
)

// File is one file a test package installs.
type File struct {
	// Path is the absolute path inside the installed system, e.g.
	// "/usr/bin/acme-tool".
	Path string
	Body []byte
	// Mode defaults to 0644.
	Mode fs.FileMode
	// Conffile marks the file as a dpkg conffile (listed in conffiles).
	Conffile bool
}

// Package describes a .deb to build.
type Package struct {
	Name string
	// Version is a full Debian version: [epoch:]upstream[-revision].
	Version string
	// Arch defaults to "amd64"; "all" builds an architecture-independent package.
	Arch        string
	Maintainer  string // defaults to "patchring tests <tests@patchring.invalid>"
	Description string // defaults to "patchring test package <Name>"
	Section     string
	Priority    string

	Depends    []string
	PreDepends []string
	Conflicts  []string
	Breaks     []string
	Replaces   []string
	Provides   []string

	Files []File

	// Fields are extra control fields, e.g. {"Essential": "yes"}.
	Fields map[string]string

	// Maintainer scripts, as script text. A script without a "#!" line gets
	// "#!/bin/sh" prepended. Scripts run chrootless in a sandbox: they must
	// prefix every path with "$DPKG_ROOT" (empty on a real system).
	Preinst, Postinst, Prerm, Postrm string
}

// DefaultArch is the architecture packages are built for when Package.Arch
// is empty and the one sandboxes use when SandboxOptions.Arch is empty.
const DefaultArch = "amd64"

// FailingPostinst returns a postinst that fails while the file flag (an
// absolute path inside the root, e.g. "/etc/acme-tool/fail-postinst")
// exists and succeeds once it is removed. It is how tests make a
// configuration fail on demand and then recover with dpkg --configure -a.
func FailingPostinst(flag string) string {
	return `#!/bin/sh
set -e
if [ -e "$DPKG_ROOT` + flag + `" ]; then
	echo "postinst: failing on demand: $DPKG_ROOT` + flag + ` exists" >&2
	exit 1
fi
exit 0
`
}

// PoolFilename is the conventional file name of a package in a pool:
// name_version_arch.deb, the version without its epoch.
func PoolFilename(name, version, arch string) string {
	if i := strings.IndexByte(version, ':'); i >= 0 {
		version = version[i+1:]
	}
	return fmt.Sprintf("%s_%s_%s.deb", name, version, arch)
}

// splitVersion splits a Debian version into epoch, upstream and revision
// the way nfpm's control template joins them again.
func splitVersion(v string) (epoch, upstream, revision string) {
	if i := strings.IndexByte(v, ':'); i >= 0 {
		epoch, v = v[:i], v[i+1:]
	}
	if i := strings.LastIndexByte(v, '-'); i >= 0 {
		v, revision = v[:i], v[i+1:]
	}
	return epoch, v, revision
}

// BuildDeb builds p with nfpm's deb packager and writes it to
// dir/PoolFilename(...). It returns the path of the .deb.
func BuildDeb(dir string, p Package) (string, error) {
	if p.Name == "" || p.Version == "" {
		return "", errors.New("build deb: package name and version are required")
	}
	if p.Arch == "" {
		p.Arch = DefaultArch
	}
	stage, err := os.MkdirTemp(dir, ".stage-"+p.Name+"-")
	if err != nil {
		return "", fmt.Errorf("build deb %s %s: %w", p.Name, p.Version, err)
	}
	defer os.RemoveAll(stage)

	epoch, upstream, revision := splitVersion(p.Version)
	info := &nfpm.Info{
		Name:          p.Name,
		Arch:          p.Arch,
		Platform:      "linux",
		Epoch:         epoch,
		Version:       upstream,
		Release:       revision,
		VersionSchema: "none",
		Section:       p.Section,
		Priority:      p.Priority,
		Maintainer:    p.Maintainer,
		Description:   p.Description,
		MTime:         time.Unix(1700000000, 0).UTC(),
	}
	if info.Maintainer == "" {
		info.Maintainer = "patchring tests <tests@patchring.invalid>"
	}
	if info.Description == "" {
		info.Description = "patchring test package " + p.Name
	}
	info.Deb.Arch = p.Arch
	info.Depends = p.Depends
	info.Deb.Predepends = p.PreDepends
	info.Conflicts = p.Conflicts
	info.Deb.Breaks = p.Breaks
	info.Replaces = p.Replaces
	info.Provides = p.Provides
	info.Deb.Fields = p.Fields

	for i, f := range p.Files {
		if !path.IsAbs(f.Path) || path.Clean(f.Path) != f.Path {
			return "", fmt.Errorf("build deb %s %s: file %q: path must be absolute and clean", p.Name, p.Version, f.Path)
		}
		src := filepath.Join(stage, fmt.Sprintf("file-%d", i))
		if err := os.WriteFile(src, f.Body, 0o600); err != nil {
			return "", fmt.Errorf("build deb %s %s: %w", p.Name, p.Version, err)
		}
		mode := f.Mode
		if mode == 0 {
			mode = 0o644
		}
		typ := ""
		if f.Conffile {
			typ = files.TypeConfig
		}
		info.Contents = append(info.Contents, &files.Content{
			Source:      src,
			Destination: f.Path,
			Type:        typ,
			FileInfo:    &files.ContentFileInfo{Mode: mode, Owner: "root", Group: "root"},
		})
	}

	scripts := []struct {
		body string
		dst  *string
		name string
	}{
		{p.Preinst, &info.Scripts.PreInstall, "preinst"},
		{p.Postinst, &info.Scripts.PostInstall, "postinst"},
		{p.Prerm, &info.Scripts.PreRemove, "prerm"},
		{p.Postrm, &info.Scripts.PostRemove, "postrm"},
	}
	for _, s := range scripts {
		if s.body == "" {
			continue
		}
		body := s.body
		if !strings.HasPrefix(body, "#!") {
			body = "#!/bin/sh\n" + body
		}
		src := filepath.Join(stage, s.name)
		if err := os.WriteFile(src, []byte(body), 0o700); err != nil {
			return "", fmt.Errorf("build deb %s %s: %w", p.Name, p.Version, err)
		}
		*s.dst = src
	}

	out := filepath.Join(dir, PoolFilename(p.Name, p.Version, p.Arch))
	tmp, err := os.CreateTemp(dir, ".deb-*")
	if err != nil {
		return "", fmt.Errorf("build deb %s %s: %w", p.Name, p.Version, err)
	}
	defer os.Remove(tmp.Name())
	if err := deb.Default.Package(info, tmp); err != nil {
		tmp.Close()
		return "", fmt.Errorf("build deb %s %s: %w", p.Name, p.Version, err)
	}
	if err := tmp.Close(); err != nil {
		return "", fmt.Errorf("build deb %s %s: %w", p.Name, p.Version, err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return "", fmt.Errorf("build deb %s %s: %w", p.Name, p.Version, err)
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		return "", fmt.Errorf("build deb %s %s: %w", p.Name, p.Version, err)
	}
	return out, nil
}

// MustBuildDeb is BuildDeb for tests: it fails t on error.
func MustBuildDeb(t TB, dir string, p Package) string {
	t.Helper()
	out, err := BuildDeb(dir, p)
	if err != nil {
		t.Fatalf("%v", err)
	}
	return out
}
