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
