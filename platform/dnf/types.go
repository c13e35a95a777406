package dnf

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
)

// Options configures New.
type Options struct {
	// Path is the dnf executable; default "dnf" looked up in PATH.
	Path string
	// Env is added to every command's environment.
	Env []string
	// Logger receives a debug record per command; nil logs nothing.
	Logger *slog.Logger

	// Root is the installroot dnf and rpm manage; "" is the running
	// system. With a root, --installroot is passed to dnf and --root to
	// rpm, and the paths below are inside it.
	Root string
	// Args are global dnf options added to every command after its name
	// (e.g. "-c", CONF, "--releasever", "9", "--setopt=reposdir=...").
	Args []string
	// RPMPath is the rpm executable; default "rpm" looked up in PATH.
	RPMPath string
	// CacheDir is dnf's cachedir; default /var/cache/dnf.
	CacheDir string
	// DBPath is rpm's database directory; default /var/lib/rpm.
	DBPath string
	// PlaceDir is where verified payloads are placed for installing;
	// default /var/cache/patchring/rpms.
	PlaceDir string
}

// ErrNotFound means dnf is not available on this system.
var ErrNotFound = errors.New("dnf is not installed")

// CommandError is a dnf run that failed; its message names the command and
// carries the end of dnf's standard error.
type CommandError struct {
	Command  string
	ExitCode int // -1 when dnf did not exit normally
	Stderr   string
	Err      error
}

func (e *CommandError) Error() string {
	if msg := strings.TrimSpace(e.Stderr); msg != "" {
		return fmt.Sprintf("%s: %v: %s", e.Command, e.Err, msg)
	}
	return fmt.Sprintf("%s: %v", e.Command, e.Err)
}

func (e *CommandError) Unwrap() error { return e.Err }
