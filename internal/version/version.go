// Package version holds the version of the patchring binaries, set at build
// time with -ldflags "-X github.com/patchring/patchring/internal/version.Version=...".
package version

// Version is the version of this build.
var Version = "dev"
