// Package diskspace reports the size of the file system holding a path and
// the space left on it for the agent.
package diskspace

// Usage is the size of a file system and what is left of it.
type Usage struct {
	// Total is the file system's size in bytes.
	Total uint64
	// Free is what the caller may still write, in bytes (for an
	// unprivileged caller: without the blocks reserved for root).
	Free uint64
}

// Of returns the usage of the file system holding path.
func Of(path string) (Usage, error) { return of(path) }
