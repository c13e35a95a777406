package paths

import (
	"os"
	"path/filepath"
)

// System returns the locations used by the system service.
func System() Defaults {
	pd := os.Getenv("ProgramData")
	if pd == "" {
		pd = `C:\ProgramData`
	}
	base := filepath.Join(pd, "patchring")
	return Defaults{
		Config:   filepath.Join(base, "patchringd.yaml"),
		StateDir: filepath.Join(base, "state"),
		Socket:   filepath.Join(base, "patchringd.sock"),
	}
}

// For returns the defaults for the current user. On Windows the service
// locations are used for everyone.
func For() Defaults { return System() }
