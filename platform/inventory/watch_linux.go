package inventory

import "path/filepath"

// WatchPaths lists the package database files whose change means the
// packages section is stale: the dpkg status file and its updates journal
// directory, and the rpm database directories. Paths that do not exist are
// included; a watcher may skip them.
func (o Options) WatchPaths() []string {
	root := o.Root
	if root == "" {
		root = "/"
	}
	status := o.DpkgStatus
	if status == "" {
		status = filepath.Join(root, "var/lib/dpkg/status")
	}
	return []string{
		status,
		filepath.Join(filepath.Dir(status), "updates"),
		filepath.Join(root, "var/lib/rpm"),
		filepath.Join(root, "usr/lib/sysimage/rpm"),
	}
}
