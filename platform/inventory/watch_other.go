//go:build !linux

package inventory

// WatchPaths lists the package database files whose change means the
// packages section is stale. Outside Linux there is no file to watch (the
// registry and pkgutil receipts are polled).
func (o Options) WatchPaths() []string { return nil }
