package dnftest

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/goreleaser/nfpm/v2"
	"github.com/goreleaser/nfpm/v2/files"
	"github.com/goreleaser/nfpm/v2/rpm"
)

// File is one file a test package installs.
type File struct {
	Path string // absolute path in the installed system
	Body []byte
	Mode fs.FileMode // default 0644
}

// Package describes an .rpm to build.
type Package struct {
	Name    string
	Version string // upstream version, e.g. "1.0"
	Release string // default "1"
	Epoch   string // "" for none
	Arch    string // default "x86_64"; "noarch" for architecture-independent

	Requires  []string
	Provides  []string
	Conflicts []string
	Obsoletes []string

	Files []File

	// Scriptlets, as /bin/sh script text; they run chrooted in the root.
	Pre, Post, Preun, Postun string
}

// EVR is the package's [epoch:]version-release as rpm prints it.
func (p Package) EVR() string {
	s := p.Version + "-" + p.release()
	if p.Epoch != "" && p.Epoch != "0" {
		s = p.Epoch + ":" + s
	}
	return s
}

// NEVRA is name-[epoch:]version-release.arch.
func (p Package) NEVRA() string { return p.Name + "-" + p.EVR() + "." + p.arch() }

// FileName is the file name createrepo_c and dnf expect:
// name-version-release.arch.rpm.
func (p Package) FileName() string {
	return p.Name + "-" + p.Version + "-" + p.release() + "." + p.arch() + ".rpm"
}

func (p Package) release() string {
	if p.Release == "" {
		return "1"
	}
	return p.Release
}

func (p Package) arch() string {
	if p.Arch == "" {
		return "x86_64"
	}
	return p.Arch
}

// FailingScript is a scriptlet that fails while the file flag exists in
// the root (so a test can make a later run succeed by removing it).
func FailingScript(flag string) string {
	return fmt.Sprintf("if [ -e %q ]; then echo 'patchring test: scriptlet fails on purpose' >&2; exit 1; fi\n", flag)
}

// BuildRPM builds p into dir with nfpm and returns the file's path.
func BuildRPM(dir string, p Package) (string, error) {
	if p.Name == "" || p.Version == "" {
		return "", errors.New("build rpm: name and version are required")
	}
	work, err := os.MkdirTemp("", "dnftest-rpm-")
	if err != nil {
		return "", fmt.Errorf("build rpm %s: %w", p.Name, err)
	}
	defer os.RemoveAll(work)
	var contents files.Contents
	for i, f := range p.Files {
		src := filepath.Join(work, fmt.Sprintf("f%d", i))
		if err := os.WriteFile(src, f.Body, 0o644); err != nil {
			return "", fmt.Errorf("build rpm %s: %w", p.Name, err)
		}
		mode := f.Mode
		if mode == 0 {
			mode = 0o644
		}
		contents = append(contents, &files.Content{Source: src, Destination: f.Path, Type: files.TypeFile,
			FileInfo: &files.ContentFileInfo{Mode: mode, MTime: time.Unix(1700000000, 0)}})
	}
	script := func(name, body string) (string, error) {
		if body == "" {
			return "", nil
		}
		if !strings.HasPrefix(body, "#!") {
			body = "#!/bin/sh\n" + body
		}
		path := filepath.Join(work, name)
		return path, os.WriteFile(path, []byte(body), 0o755)
	}
	var scripts nfpm.Scripts
	for _, s := range []struct {
		name, body string
		dst        *string
	}{{"pre", p.Pre, &scripts.PreInstall}, {"post", p.Post, &scripts.PostInstall}, {"preun", p.Preun, &scripts.PreRemove}, {"postun", p.Postun, &scripts.PostRemove}} {
		if *s.dst, err = script(s.name, s.body); err != nil {
			return "", fmt.Errorf("build rpm %s: %w", p.Name, err)
		}
	}
	info := &nfpm.Info{
		Name: p.Name, Version: p.Version, VersionSchema: "none", Release: p.release(), Epoch: p.Epoch,
		Arch: p.arch(), Platform: "linux", Maintainer: "patchring tests <tests@patchring.invalid>",
		Description: "patchring test package " + p.Name, License: "MIT", MTime: time.Unix(1700000000, 0),
		Overridables: nfpm.Overridables{
			Depends: p.Requires, Provides: p.Provides, Conflicts: p.Conflicts, Replaces: p.Obsoletes,
			Contents: contents, Scripts: scripts,
		},
	}
	info = nfpm.WithDefaults(info)
	if err := info.Validate(); err != nil {
		return "", fmt.Errorf("build rpm %s: %w", p.Name, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("build rpm %s: %w", p.Name, err)
	}
	out := filepath.Join(dir, p.FileName())
	f, err := os.Create(out)
	if err != nil {
		return "", fmt.Errorf("build rpm %s: %w", p.Name, err)
	}
	if err := rpm.DefaultRPM.Package(info, f); err != nil {
		f.Close()
		os.Remove(out)
		return "", fmt.Errorf("build rpm %s: %w", p.Name, err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("build rpm %s: %w", p.Name, err)
	}
	return out, nil
}

// MustBuildRPM is BuildRPM for tests.
func MustBuildRPM(t TB, dir string, p Package) string {
	t.Helper()
	path, err := BuildRPM(dir, p)
	if err != nil {
		t.Fatalf("%v", err)
	}
	return path
}
