// Package enroll is online enrollment: the enrollment token an admin hands
// to a new node, the issuing service's store of tokens, the service itself
// (an http.Handler, so `patchring ca serve` runs it today and the fleet
// console can host it later) and the client an agent uses to enroll and to
// renew its credential.
//
// A token carries everything a blank machine needs to join the fleet: the
// fleet's trusted root.json, the origin's URL, the issuing service's URL
// (and optionally the SHA-256 of its TLS certificate), the token's ID and a
// one-time secret. The service keeps only the secret's hash, with the site
// and tags it grants, the uses left and the expiry.
//
// The service signs credentials with an issuing key the fleet CA delegated
// (an IssuerCert in fleet.json); it never holds the CA key. It refuses with
// a reason the client turns back into a typed error: an expired, used up,
// unknown or foreign token, a revoked node, a credential expired beyond the
// renewal grace.
package enroll
