// Package archive reads and checks the files of a Debian archive as apt
// fetches them: the signed InRelease/Release file (verified with gpgv
// against apt's trusted keyrings for the source), the index files it lists
// by hash, the .deb files the Packages indices list, and the sources
// entries that say which keyrings vouch for which archive. It is pure
// parsing plus one external tool (gpgv); the agent's apt proxy
// (daemon/aptproxy) decides what to fetch and serve.
package archive
