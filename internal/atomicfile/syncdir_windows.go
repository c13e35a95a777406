package atomicfile

// SyncDir is a no-op on Windows, where directories cannot be opened for
// fsync; NTFS journals the rename itself.
func SyncDir(string) error { return nil }
