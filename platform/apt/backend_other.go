//go:build !linux

package apt

import (
	"context"
	"io"
	"path/filepath"
	"time"
)

// Backend drives apt and dpkg; on this system every method returns
// ErrUnsupported.
type Backend struct{}

// New returns ErrUnsupported: apt is only available on Linux.
func New(ctx context.Context, opts Options) (*Backend, error) { return nil, ErrUnsupported }

// Paths returns zero Paths.
func (b *Backend) Paths() Paths { return Paths{} }

// Refresh returns ErrUnsupported.
func (b *Backend) Refresh(ctx context.Context) error { return ErrUnsupported }

// Upgradable returns ErrUnsupported.
func (b *Backend) Upgradable(ctx context.Context) ([]Candidate, error) { return nil, ErrUnsupported }

// Candidate returns ErrUnsupported.
func (b *Backend) Candidate(ctx context.Context, pkg, version string) (Candidate, error) {
	return Candidate{}, ErrUnsupported
}

// ArchivePath returns the archive file name alone.
func (b *Backend) ArchivePath(pkg, version, arch string) string {
	return filepath.Join(".", ArchiveFilename(pkg, version, arch))
}

// Place returns ErrUnsupported.
func (b *Backend) Place(ctx context.Context, debPath, pkg, version, arch string) (string, error) {
	return "", ErrUnsupported
}

// PlaceFrom returns ErrUnsupported.
func (b *Backend) PlaceFrom(ctx context.Context, r io.Reader, pkg, version, arch string) (string, error) {
	return "", ErrUnsupported
}

// DebPackage returns ErrUnsupported.
func (b *Backend) DebPackage(ctx context.Context, debPath string) (PkgVersion, error) {
	return PkgVersion{}, ErrUnsupported
}

// InstallFiles returns ErrUnsupported.
func (b *Backend) InstallFiles(ctx context.Context, paths []string, opts InstallOptions) error {
	return ErrUnsupported
}

// InstallFilesCommand returns ErrUnsupported.
func (b *Backend) InstallFilesCommand(ctx context.Context, paths []string, opts InstallOptions) (Command, error) {
	return Command{}, ErrUnsupported
}

// Placed reports nothing placed.
func (b *Backend) Placed(pkg, version, arch string) (string, bool) { return "", false }

// Install returns ErrUnsupported.
func (b *Backend) Install(ctx context.Context, pkgs []PkgVersion, opts InstallOptions) error {
	return ErrUnsupported
}

// Remove returns ErrUnsupported.
func (b *Backend) Remove(ctx context.Context, pkgs ...string) error { return ErrUnsupported }

// Status returns ErrUnsupported.
func (b *Backend) Status(ctx context.Context, pkg string) (PackageStatus, error) {
	return PackageStatus{}, ErrUnsupported
}

// InstalledVersion returns ErrUnsupported.
func (b *Backend) InstalledVersion(ctx context.Context, pkg string) (string, error) {
	return "", ErrUnsupported
}

// ConfigurePending returns ErrUnsupported.
func (b *Backend) ConfigurePending(ctx context.Context) error { return ErrUnsupported }

// Audit returns ErrUnsupported.
func (b *Backend) Audit(ctx context.Context) ([]string, error) { return nil, ErrUnsupported }

// RebootRequired reports false.
func (b *Backend) RebootRequired() (bool, []string) { return false, nil }

// LockHolder returns ErrUnsupported.
func (b *Backend) LockHolder() (*LockedError, error) { return nil, ErrUnsupported }

// WaitLock returns ErrUnsupported.
func (b *Backend) WaitLock(ctx context.Context, timeout time.Duration) error { return ErrUnsupported }

// FreeSpace returns ErrUnsupported.
func FreeSpace(path string) (uint64, error) { return 0, ErrUnsupported }

// Simulate is not supported on this system.
func (b *Backend) Simulate(ctx context.Context, pkgs []PkgVersion, remove []string) (Plan, error) {
	return Plan{}, ErrUnsupported
}

// Payloads is not supported on this system.
func (b *Backend) Payloads(ctx context.Context, pkgs []PkgVersion) ([]Candidate, error) {
	return nil, ErrUnsupported
}

// PayloadsAndPrevious is not supported on this system.
func (b *Backend) PayloadsAndPrevious(ctx context.Context, pkgs, previous []PkgVersion) (cur, prev []Candidate, err error) {
	return nil, nil, ErrUnsupported
}

// Apply is not supported on this system.
func (b *Backend) Apply(ctx context.Context, pkgs []PkgVersion, remove []string, opts ApplyOptions) error {
	return ErrUnsupported
}

// Installed is not supported on this system.
func (b *Backend) Installed(ctx context.Context) (map[string]string, error) {
	return nil, ErrUnsupported
}

// Files is not supported on this system.
func (b *Backend) Files(ctx context.Context, pkgs ...string) ([]string, error) {
	return nil, ErrUnsupported
}
