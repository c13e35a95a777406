package apt

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// Options configures a Backend. The zero value drives the host's apt and
// dpkg with the host's configuration.
type Options struct {
	// AptConfig is a configuration file passed to every apt command as
	// APT_CONFIG. Empty means the host's configuration. A sandbox's file
	// sets Dir, Dir::State::status and DPkg::Options (--root, --admindir,
	// --force-script-chrootless); the backend reads the paths and dpkg
	// options back from apt-config, so the same code serves both.
	AptConfig string
	// Env is added to every command's environment (KEY=VALUE).
	Env []string
	// LockTimeout is how long apt-get waits for the dpkg lock by itself
	// (DPkg::Lock::Timeout) once it has started. Zero means it does not
	// wait: call WaitLock first.
	LockTimeout time.Duration
	// Logger receives a debug record per command run; nil logs nothing.
	Logger *slog.Logger
	// HTTPProxy, when set, is given to every apt-get run as
	// Acquire::http::Proxy (the agent's verifying apt proxy), with PDiffs
	// off so that indices come whole and by-hash (docs/APT.md). A
	// host-specific Acquire::http::Proxy::<host> in apt's configuration
	// still wins for that host.
	HTTPProxy string
}

// Paths are the directories and files the backend works on, as apt's
// configuration resolves them.
type Paths struct {
	Root     string // apt's Dir; "/" on a host
	AdminDir string // dpkg's database directory
	Status   string // dpkg's status file
	Archives string // Dir::Cache::Archives, where Place puts payloads
	Arch     string // APT::Architecture, the native architecture
}

// Source is one package index that carries a version, with the fields of
// the index's Release file as apt reports them (apt-cache policy).
type Source struct {
	// Index is apt's description of the index, e.g.
	// "http://deb.debian.org/debian-security bookworm-security/main amd64 Packages".
	Index    string
	Priority int    // pin priority of the version from this index
	Origin   string // o=
	Label    string // l=
	Archive  string // a=, the suite, e.g. "oldstable-security"
	Codename string // n=, e.g. "bookworm-security"
	Version  string // v=, the release version
	// Component and Arch are c= and b=.
	Component string
	Arch      string
	// Site is the host the index comes from (apt's "origin" line).
	Site string
}

// IsSecurity reports whether the index is a security archive: its suite or
// codename ends in "-security" (Debian, Ubuntu and their derivatives), or
// its label or origin is Debian's security team's ("Debian-Security").
func (s Source) IsSecurity() bool {
	return strings.HasSuffix(s.Archive, "-security") ||
		strings.HasSuffix(s.Codename, "-security") ||
		s.Label == "Debian-Security" ||
		s.Origin == "Debian-Security"
}

// Candidate is a version of a package that apt can install, with the
// payload's location and hashes exactly as apt reports them from the
// indices it verified.
type Candidate struct {
	Package string // name without architecture qualifier
	Arch    string // architecture of the candidate's .deb ("all" for arch-independent)
	// Installed is the installed version; empty when not installed.
	Installed string
	Version   string
	// Security is true when any source carrying this version is a security
	// archive (Source.IsSecurity).
	Security bool
	// Origin, Label, Archive, Codename, Component and Site describe the
	// primary source: the first security source if any, else the first.
	Origin, Label, Archive, Codename, Component, Site string
	// Sources lists every index carrying the version, in apt's order.
	Sources []Source
	// URI is the payload's URI as apt prints it (percent-encoded).
	URI string
	// Filename is the file name apt uses in its archives directory.
	Filename string
	Size     int64
	// SHA256 is the payload's SHA-256 from the verified index, hex.
	SHA256 string
	// Hash is the strongest hash apt printed, e.g. "SHA256:…" or "SHA512:…".
	Hash string
	// Depends lists the package names the version's Pre-Depends and
	// Depends fields name (filled by Payloads only).
	Depends []string
}

// PkgVersion returns the exact version to install.
func (c Candidate) PkgVersion() PkgVersion {
	return PkgVersion{Name: c.Package, Version: c.Version, Arch: c.Arch}
}

// PkgVersion names an exact version of a package.
type PkgVersion struct {
	Name    string // without architecture qualifier
	Version string
	// Arch is the package's architecture; empty or "all" for the native one.
	Arch string
}

func (p PkgVersion) String() string {
	if p.Arch != "" {
		return p.Name + ":" + p.Arch + "=" + p.Version
	}
	return p.Name + "=" + p.Version
}

// InstallOptions changes how Install runs apt-get.
type InstallOptions struct {
	// AllowDowngrades lets apt install versions older than the installed
	// ones (rollback).
	AllowDowngrades bool
	// NoDownload makes apt use only payloads already in its archives
	// directory (see Place); Install returns ErrNotPlaced before running
	// apt when one is missing.
	NoDownload bool
	// InstallRecommends lets apt install new recommended packages; by
	// default only the requested packages and their dependencies change.
	InstallRecommends bool
}

// PackageStatus is dpkg's record of a package.
type PackageStatus struct {
	Name    string
	Arch    string
	Version string
	// Want, State and Eflag are dpkg's words, e.g. "install", "installed",
	// "ok"; State is "not-installed" for a package dpkg does not know.
	Want, State, Eflag string
}

// Configured reports whether the package is installed and configured
// (triggers may still be pending).
func (s PackageStatus) Configured() bool {
	switch s.State {
	case "installed", "triggers-pending", "triggers-awaited":
		return true
	}
	return false
}

// Errors callers branch on.
var (
	// ErrUnsupported is returned on systems without apt.
	ErrUnsupported = errors.New("apt is only available on Linux")
	// ErrNotPlaced means Install with NoDownload found a payload missing
	// from apt's archives directory.
	ErrNotPlaced = errors.New("payload not placed in apt's archives directory")
	// ErrNotAvailable means no configured source carries the version.
	ErrNotAvailable = errors.New("version not available from any configured source")
	// ErrNotConfigured means dpkg knows the package but it is unpacked,
	// half-installed or half-configured.
	ErrNotConfigured = errors.New("package is not fully installed and configured")
	// ErrPayloadMismatch means Place was given a .deb that is not the
	// package, version and architecture it was told.
	ErrPayloadMismatch = errors.New("payload does not match the package it is placed for")
)

// CommandError is a command that failed. Its message names the command and
// carries the end of its standard error.
type CommandError struct {
	Command  string // e.g. "apt-get install"
	Args     []string
	ExitCode int // -1 when the process did not exit normally
	Stderr   string
	Err      error
}

func (e *CommandError) Error() string {
	msg := strings.TrimSpace(e.Stderr)
	if msg == "" {
		return fmt.Sprintf("%s: %v", e.Command, e.Err)
	}
	return fmt.Sprintf("%s: %v: %s", e.Command, e.Err, msg)
}

func (e *CommandError) Unwrap() error { return e.Err }

// LockedError reports that another process holds the dpkg lock.
type LockedError struct {
	Path    string // the lock file
	PID     int    // 0 when unknown
	Command string // the holder's command line, when known
	Waited  time.Duration
}

func (e *LockedError) Error() string {
	who := "another process"
	if e.PID > 0 {
		who = fmt.Sprintf("process %d", e.PID)
		if e.Command != "" {
			who += fmt.Sprintf(" (%s)", e.Command)
		}
	}
	if e.Waited > 0 {
		return fmt.Sprintf("dpkg lock %s held by %s after waiting %s", e.Path, who, e.Waited.Round(time.Millisecond))
	}
	return fmt.Sprintf("dpkg lock %s held by %s", e.Path, who)
}

// InstallError is an apt-get or dpkg run that failed while changing
// packages. Output is the end of the run's interleaved output, where dpkg
// explains what went wrong.
type InstallError struct {
	Op       string // "install", "remove" or "configure"
	Packages []PkgVersion
	// Failed lists the packages dpkg reported errors for.
	Failed []string
	// Unmet holds apt's unmet-dependency lines ("footool : Depends:
	// libmissing but it is not installable"): why the solver gave up.
	Unmet  []string
	Output string
	Err    error
}

func (e *InstallError) Error() string {
	var b strings.Builder
	b.WriteString(e.Op)
	if len(e.Packages) > 0 {
		b.WriteString(" ")
		for i, p := range e.Packages {
			if i > 0 {
				b.WriteString(" ")
			}
			b.WriteString(p.String())
		}
	}
	fmt.Fprintf(&b, ": %v", e.Err)
	if len(e.Failed) > 0 {
		fmt.Fprintf(&b, " (dpkg failed on %s)", strings.Join(e.Failed, ", "))
	}
	if len(e.Unmet) > 0 {
		fmt.Fprintf(&b, " (unmet dependencies: %s)", strings.Join(e.Unmet, "; "))
	}
	return b.String()
}

func (e *InstallError) Unwrap() error { return e.Err }

// Change is one package a simulated apt run would change, as apt's solver
// decided it (apt-get -s).
type Change struct {
	Package string // without architecture qualifier
	Arch    string // the package's architecture as apt printed it; empty when apt printed none
	// From is the installed version ("" when the package is new); To is
	// the version after ("" when the package would be removed).
	From, To string
}

// Removal reports whether the change removes the package.
func (c Change) Removal() bool { return c.To == "" }

// Plan is what apt would do for a request: every package it changes, in
// apt's order.
type Plan struct {
	Changes []Change
}

// Removals lists the packages the plan removes.
func (p Plan) Removals() []Change {
	var out []Change
	for _, c := range p.Changes {
		if c.Removal() {
			out = append(out, c)
		}
	}
	return out
}

// ApplyOptions changes how Apply runs apt-get.
type ApplyOptions struct {
	// AllowDowngrades lets apt install versions older than the installed
	// ones (rollback).
	AllowDowngrades bool
	// NoDownload makes apt use only payloads already in its archives
	// directory (see Place); Apply returns ErrNotPlaced before running
	// apt when one is missing.
	NoDownload bool
}

// Command is a program with its arguments and complete environment.
type Command struct {
	Path string
	Args []string
	Env  []string
}
