// Package aptproxy is the agent's apt proxy: a loopback HTTP forward proxy
// (apt's Acquire::http::Proxy) that hands apt only bytes it verified
// itself. An InRelease (or Release with Release.gpg) file is checked with
// gpgv against apt's trusted keyrings for its source and refused when it
// is expired or older than one already verified (a replay); an index file,
// by path or by-hash, must match the SHA256 the verified Release lists; a
// .deb the SHA256 of a verified Packages index. Verified files go into the
// agent's content store, and index files and .debs are fetched through the
// same site path as the engine's payloads: one node of the site fetches a
// file from the vendor, the others from it (a PeerFetcher, implemented by
// daemon/membership).
package aptproxy
