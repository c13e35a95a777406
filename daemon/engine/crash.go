package engine

import "os"

// CrashEnv names the environment variable that makes patchringd kill
// itself right after journaling the named step. Crash-safety tests use it
// to stop the agent at every step; it does nothing unless set.
const CrashEnv = "PATCHRING_CRASH_AT"

// CrashAfterInstall is the crash point after the package manager finished
// but before the journal recorded it.
const CrashAfterInstall = "install-finished"

func crashPoint(step string) {
	if v := os.Getenv(CrashEnv); v != "" && v == step {
		killSelf()
	}
}

// CrashAfterRestart and CrashAfterRestartBack are the crash points after
// the restart step restarted the services (after the install, and after
// a rollback) but before the journal recorded it.
const (
	CrashAfterRestart     = "restarts-finished"
	CrashAfterRestartBack = "rollback-restarts-finished"
)
