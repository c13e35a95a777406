//go:build !unix && !windows

package discovery

// setSockopts does nothing where the socket API has no such options
// (js, wasip1, plan9): the beacon listens, and sending to a broadcast
// address fails and is counted.
func setSockopts(fd uintptr) error { return nil }
