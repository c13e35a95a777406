// Package reboot restarts the machine through the operating system's own
// tool and tells when the machine last booted. On Linux it uses
// `systemctl reboot` when systemd is the init system and `shutdown -r now`
// otherwise; on Windows `shutdown /r /t 0 /c`; on macOS `shutdown -r now`.
// The command can be replaced by configuration.
package reboot

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
)

// MessagePlaceholder is replaced by the restart message in every argument
// of a configured command.
const MessagePlaceholder = "{message}"

// maxMessage bounds the message handed to the OS tool (Windows' shutdown
// takes at most 512 characters).
const maxMessage = 500

// Options configure a Rebooter. The zero value uses the OS default.
type Options struct {
	// Command replaces the OS default: argv, not a shell line. Each
	// occurrence of MessagePlaceholder in an argument is replaced by the
	// message. Empty uses the default for the OS.
	Command []string
	// SystemdDir is the directory whose existence says systemd is the init
	// system (sd_booted(3)); empty means /run/systemd/system. Only Linux
	// looks at it.
	SystemdDir string
}

// Rebooter restarts the machine.
type Rebooter struct {
	opts Options
}

// New returns a Rebooter.
func New(opts Options) *Rebooter {
	return &Rebooter{opts: opts}
}

// Argv returns the command Reboot runs for message.
func (r *Rebooter) Argv(message string) []string {
	message = cleanMessage(message)
	if len(r.opts.Command) > 0 {
		argv := make([]string, len(r.opts.Command))
		for i, a := range r.opts.Command {
			argv[i] = strings.ReplaceAll(a, MessagePlaceholder, message)
		}
		return argv
	}
	return defaultArgv(r.opts, message)
}

// Reboot asks the OS to restart now, saying message to logged-in users
// where the OS tool supports it. It returns once the tool accepted the
// request; the machine goes down shortly after.
func (r *Rebooter) Reboot(ctx context.Context, message string) error {
	argv := r.Argv(message)
	if len(argv) == 0 || argv[0] == "" {
		return errors.New("reboot: no command configured")
	}
	out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		if msg := strings.TrimSpace(string(out)); msg != "" {
			return fmt.Errorf("reboot: %s: %w: %s", strings.Join(argv, " "), err, msg)
		}
		return fmt.Errorf("reboot: %s: %w", strings.Join(argv, " "), err)
	}
	return nil
}

// cleanMessage keeps the message on one line and within the OS tools'
// limits.
func cleanMessage(m string) string {
	m = strings.Join(strings.Fields(m), " ")
	if len(m) > maxMessage {
		cut := maxMessage
		for cut > 0 && (m[cut]&0xC0) == 0x80 { // do not split a UTF-8 sequence
			cut--
		}
		m = m[:cut]
	}
	return m
}
