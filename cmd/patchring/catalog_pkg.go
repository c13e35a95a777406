package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/patchring/patchring/platform/dnf"
	"github.com/patchring/patchring/platform/vercmp"
	"github.com/patchring/patchring/policy/tufrepo"
)

// fillFromPackage completes m from the payload file at path: its format
// from the name (.deb or .rpm) and, for an .rpm, the package name,
// [epoch:]version-release and architecture from its header (rpm -qp).
// --package and --version given for an .rpm must agree with the header:
// agents check that the payload is the package at the version the entry
// names, and would refuse it.
func fillFromPackage(ctx context.Context, path string, m *tufrepo.CatalogMeta) error {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".deb":
		m.Format = tufrepo.FormatDeb
		return nil
	case ".rpm":
	default:
		return nil
	}
	n, err := dnf.ReadPackageFile(ctx, path)
	if err != nil {
		return err
	}
	m.Format, m.Arch = tufrepo.FormatRPM, n.Arch
	if m.Package == "" {
		m.Package = n.Name
	} else if m.Package != n.Name {
		return fmt.Errorf("%s: --package %s, but its rpm header names package %s", path, m.Package, n.Name)
	}
	evr := n.EVR.String()
	if m.Version == "" {
		m.Version = evr
		return nil
	}
	if c, err := vercmp.RPM(m.Version, evr); err != nil || c != 0 {
		return fmt.Errorf("%s: --version %s, but its rpm header says version %s", path, m.Version, evr)
	}
	return nil
}
