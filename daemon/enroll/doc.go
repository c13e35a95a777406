// Package enroll is the agent's side of fleet identity: joining the fleet
// with an enrollment token (staged, all or nothing), the offline request
// and credential install, and the renewal service that keeps the node's
// credential (<state dir>/node.credential) fresh by asking the issuing
// service at about two thirds of its lifetime.
//
// It writes only node.credential, its own state (enroll.json) and, when
// joining, the agent's config file and trusted root; admission with the
// credential is the gossip and exchange layers' business, which re-read
// the file on every policy refresh.
package enroll
