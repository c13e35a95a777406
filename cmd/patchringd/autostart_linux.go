package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/patchring/patchring/tray/autostart"
)

// autostartDir is where desktop sessions look for system-wide autostart
// entries (XDG Autostart Specification).
const autostartDir = "/etc/xdg/autostart"

// installAutostart installs the tray's autostart entry with the agent, so
// every desktop user gets the reboot prompts.
func installAutostart() error {
	if err := os.MkdirAll(autostartDir, 0o755); err != nil {
		return fmt.Errorf("tray autostart: %w", err)
	}
	p := filepath.Join(autostartDir, autostart.FileName)
	if err := os.WriteFile(p, autostart.Entry, 0o644); err != nil {
		return fmt.Errorf("tray autostart: %w", err)
	}
	return nil
}

func removeAutostart() error {
	err := os.Remove(filepath.Join(autostartDir, autostart.FileName))
	if err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("tray autostart: %w", err)
	}
	return nil
}
