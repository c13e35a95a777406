package engine

import (
	"context"
	"fmt"
	"io"

	"github.com/patchring/patchring/platform/apt"
	"github.com/patchring/patchring/platform/detach"
)

// PlaceFile writes the verified payload to a staging file next to apt's
// archives, checks with dpkg-deb that it is pkg at version, and moves it
// into the archives under apt's file name (Backend.Place).
func (a *aptPackages) PlaceFile(ctx context.Context, r io.Reader, pkg, version string) error {
	staged, done, err := a.stage(r)
	if err != nil {
		return err
	}
	defer done()
	got, err := a.b.DebPackage(ctx, staged)
	if err != nil {
		return err
	}
	if got.Name != pkg || got.Version != version {
		return fmt.Errorf("the payload is %s %s, not %s %s: %w", got.Name, got.Version, pkg, version, apt.ErrPayloadMismatch)
	}
	_, err = a.b.Place(ctx, staged, pkg, version, got.Arch)
	return err
}

// InstallFiles installs the payloads PlaceFile placed with apt-get, which
// takes their dependencies from the configured sources.
func (a *aptPackages) InstallFiles(ctx context.Context, pkgs []PkgVersion, allowDowngrades bool) error {
	paths := make([]string, 0, len(pkgs))
	for _, p := range pkgs {
		path, ok := a.b.Placed(p.Package, p.Version, "")
		if !ok {
			return fmt.Errorf("install %s=%s: %w", p.Package, p.Version, apt.ErrNotPlaced)
		}
		paths = append(paths, path)
	}
	return a.b.InstallFiles(ctx, paths, apt.InstallOptions{AllowDowngrades: allowDowngrades})
}

func (a *aptPackages) Remove(ctx context.Context, pkgs ...string) error {
	return a.b.Remove(ctx, pkgs...)
}

// InstallFilesCommand returns the apt-get run InstallFiles would make for
// the placed payloads, to run detached (the agent's own package).
func (a *aptPackages) InstallFilesCommand(ctx context.Context, pkgs []PkgVersion, allowDowngrades bool) (detach.Command, error) {
	paths := make([]string, 0, len(pkgs))
	for _, p := range pkgs {
		path, ok := a.b.Placed(p.Package, p.Version, "")
		if !ok {
			return detach.Command{}, fmt.Errorf("install %s=%s: %w", p.Package, p.Version, apt.ErrNotPlaced)
		}
		paths = append(paths, path)
	}
	c, err := a.b.InstallFilesCommand(ctx, paths, apt.InstallOptions{AllowDowngrades: allowDowngrades})
	return detach.Command(c), err
}
