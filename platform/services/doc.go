// Package services finds the processes that still run code an install
// replaced, names the service each belongs to, and restarts services
// through the system's own service manager, as Debian's needrestart does.
//
// A process runs replaced code when it maps, executable, a file that was
// deleted (dpkg replaces a file by renaming a new one over it, so the old
// inode lives on only in the processes that map it); the caller says which
// deleted files count (those of the packages it changed). Its service is the
// systemd unit of its cgroup when systemd manages the system, else the SysV
// init script whose PID file names it (kardianos/service's SysV scripts
// write /var/run/NAME.pid) or whose name is the process's command.
//
// The system may be a root other than "/" (a test root entered with a
// runner): only processes whose root directory is that root are looked at,
// and commands run through Options.Command.
//
// Platform code: the scan is Linux only (Stale returns ErrUnsupported
// elsewhere); the parsers are portable.
package services
