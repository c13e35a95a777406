// Package exchange owns patchring's peer-to-peer payload exchange: a libp2p
// host restricted to fleet members and the /patchring/blob/2 protocol with
// which nodes ask each other "who has H" and "send H range [off, len)",
// and the /patchring/meta/1 protocol (files.go) with which they fetch
// repository files by path: the TUF metadata and policy a node verified.
//
// The wire framing (wire.go) is written over io.Reader and io.Writer so that
// it is tested over io.Pipe as well as over real libp2p streams. The
// downloader (Fetch) pulls a payload in pieces from several peers at once,
// straight into the content store's download area, and verifies it against
// the hash from signed metadata before it becomes visible. docs/P2P.md
// explains how pieces are verified without signed piece hashes and how bad
// peers are detected and avoided.
package exchange
