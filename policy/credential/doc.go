// Package credential is the fleet's node identity: credentials that bind a
// node ID to its hostname, site and tags under the fleet CA's signature, the
// issuing keys the CA delegates, the signed fleet document (fleet.json, a TUF
// target) that publishes the CA, the issuers and the revocation list, and
// the enrollment requests a node makes with its own key.
//
// A credential is a compact binary record (a few hundred bytes) so that it
// fits in a gossip member's node metadata next to what is there already.
// Its layout, version 1:
//
//	version   1 byte (1)
//	node      uvarint length + the node ID's bytes (a libp2p peer ID)
//	hostname  uvarint length + UTF-8
//	site      uvarint length + UTF-8
//	tags      uvarint count, each uvarint length + UTF-8
//	serial    uvarint
//	notBefore uvarint, Unix seconds
//	notAfter  uvarint, Unix seconds
//	signer    8 bytes: the first 8 bytes of SHA-256 over the signer's public key
//	signature 64 bytes: ed25519 over a domain prefix and everything before it
//
// Nothing here does I/O: callers read files and fetch targets.
package credential
