//go:build !windows

package paths

import (
	"os"
	"path/filepath"
)

// System returns the locations used by the system service.
func System() Defaults {
	return Defaults{
		Config:   "/etc/patchring/patchringd.yaml",
		StateDir: "/var/lib/patchring",
		Socket:   "/run/patchring/patchringd.sock",
	}
}

// For returns the defaults for the current user: the system locations for
// root, the XDG base directories for anyone else.
func For() Defaults {
	if os.Geteuid() == 0 {
		return System()
	}
	home, _ := os.UserHomeDir()
	cfg := envOr("XDG_CONFIG_HOME", filepath.Join(home, ".config"))
	state := envOr("XDG_STATE_HOME", filepath.Join(home, ".local", "state"))
	run := os.Getenv("XDG_RUNTIME_DIR")
	if run == "" {
		run = filepath.Join(state, "patchring")
	} else {
		run = filepath.Join(run, "patchring")
	}
	return Defaults{
		Config:   filepath.Join(cfg, "patchring", "patchringd.yaml"),
		StateDir: filepath.Join(state, "patchring"),
		Socket:   filepath.Join(run, "patchringd.sock"),
	}
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
