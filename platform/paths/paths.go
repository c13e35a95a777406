// Package paths knows where patchring keeps its files on each OS: the
// configuration file, the state directory and the local API socket, for the
// system service and for a user trying the agent without root.
package paths

// Defaults are the default locations of patchringd's files.
type Defaults struct {
	Config   string // configuration file
	StateDir string // bbolt state, node key, content store
	Socket   string // local API socket
}
