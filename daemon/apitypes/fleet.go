package apitypes

import "time"

// Fleet is the answer of GET /v1/fleet: the members of this node's site as
// gossip describes them. Members describe themselves: the view is a hint.
type Fleet struct {
	Site    string        `json:"site"`
	Members []FleetMember `json:"members"`
	// Refused are nodes the pool refused or dropped (no valid credential:
	// missing, forged, expired, revoked, another fleet's), with the reason.
	Refused []RefusedMember `json:"refused,omitempty"`
}

// RefusedMember is a node refused admission to the site's pool.
type RefusedMember struct {
	NodeID string    `json:"node_id"`
	Addr   string    `json:"addr,omitempty"`
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
	Count  uint64    `json:"count"`
}

// FleetMember is one member of the site.
type FleetMember struct {
	NodeID   string `json:"node_id"`
	Hostname string `json:"hostname"`
	Site     string `json:"site"`
	Ring     string `json:"ring,omitempty"`
	// Format is the package format it installs: deb (apt) or rpm (dnf).
	Format         string    `json:"format,omitempty"`
	Tags           []string  `json:"tags,omitempty"`
	Liveness       string    `json:"liveness"`
	LastSeen       time.Time `json:"last_seen,omitzero"`
	Local          bool      `json:"local,omitempty"`
	PolicyVersion  uint64    `json:"policy_version"`
	AgentVersion   string    `json:"agent_version,omitempty"`
	Pending        int       `json:"pending"`
	Installed      int       `json:"installed"`
	Failed         int       `json:"failed"`
	LastUpdate     time.Time `json:"last_update,omitzero"`
	RebootRequired bool      `json:"reboot_required"`
	RebootDeadline time.Time `json:"reboot_deadline,omitzero"`
	RebootRefused  bool      `json:"reboot_refused"`
	// RebootHeld: its pre-reboot hook failed and holds its reboot;
	// Unhealthy: its post-reboot hook failed after its last reboot.
	RebootHeld bool `json:"reboot_held,omitempty"`
	Unhealthy  bool `json:"unhealthy,omitempty"`
	Content    int  `json:"content_items"`
	// Credentialed: its site and tags are from its verified credential.
	Credentialed bool      `json:"credentialed,omitempty"`
	CredExpires  time.Time `json:"credential_expires,omitzero"`
	// Visiting: its credential names another site; it shares payloads
	// here but counts in none of this site's gates or leases.
	Visiting bool `json:"visiting,omitempty"`
	// Exposure is the member's vulnerability exposure as it gossips it.
	Exposure VulnSummary `json:"exposure,omitzero"`
}

// Peers is the answer of GET /v1/peers: payload traffic of this node.
type Peers struct {
	FromPeers  int64 `json:"bytes_from_peers"`
	FromOrigin int64 `json:"bytes_from_origin"`
	ToPeers    int64 `json:"bytes_to_peers"`
	// BandwidthOptimization is the share of payload bytes that came from
	// peers, in percent (Delivery Optimization's figure).
	BandwidthOptimization float64       `json:"bandwidth_optimization_pct"`
	Peers                 []PeerTraffic `json:"peers"`
	// Apt is what the agent's apt proxy handed to apt, per kind of file
	// ("release", "index", "package"); empty when the proxy is off.
	Apt []AptTraffic `json:"apt,omitempty"`
}

// AptTraffic is the apt proxy's bytes for one kind of file, by where they
// came from, and the files it refused.
type AptTraffic struct {
	Kind       string `json:"kind"`
	FromVendor int64  `json:"bytes_from_vendor"`
	FromPeers  int64  `json:"bytes_from_peers"`
	FromStore  int64  `json:"bytes_from_store"`
	Refused    int64  `json:"refused"`
}

// PeerTraffic is this node's traffic with one peer.
type PeerTraffic struct {
	ID         string    `json:"id"`
	BytesIn    int64     `json:"bytes_in"`
	BytesOut   int64     `json:"bytes_out"`
	BadData    int       `json:"bad_data,omitempty"`
	Failures   int       `json:"failures,omitempty"`
	AvoidUntil time.Time `json:"avoid_until,omitzero"`
	LastError  string    `json:"last_error,omitempty"`
}

// KeyRequest changes this node's gossip keyring (admin). Op is install,
// use or remove; Key is base64.
type KeyRequest struct {
	Op  string `json:"op"`
	Key string `json:"key"`
}

// FleetKeys are key fingerprints (never keys): this node's and what each
// member announces.
type FleetKeys struct {
	Primary   string       `json:"primary"`
	Installed []string     `json:"installed"`
	Members   []MemberKeys `json:"members"`
}

// MemberKeys is one member's announced keyring.
type MemberKeys struct {
	NodeID    string   `json:"node_id"`
	Hostname  string   `json:"hostname"`
	Liveness  string   `json:"liveness"`
	Local     bool     `json:"local,omitempty"`
	Primary   string   `json:"primary"`
	Installed []string `json:"installed"`
}

// Unmanaged is GET /v1/fleet/unmanaged: the devices on this node's site
// that run no agent, as this node knows them (its own sightings and its
// live members').
type Unmanaged struct {
	Site    string `json:"site"`
	Enabled bool   `json:"enabled"` // discovery on by policy
	// Sweep: the policy enables the active sweep on this node's subnets.
	Sweep     bool              `json:"sweep"`
	Devices   []UnmanagedDevice `json:"devices"`
	Observed  int               `json:"observed"`          // devices this node saw itself (members included)
	Members   int               `json:"members"`           // members whose sightings are merged
	Dropped   int               `json:"dropped,omitempty"` // devices left out by the site cap
	Probes    int64             `json:"probes"`            // ARP requests this node sent in sweeps
	LastSweep time.Time         `json:"last_sweep,omitzero"`
}

// UnmanagedDevice is one device that runs no agent.
type UnmanagedDevice struct {
	MAC       string    `json:"mac"`
	Vendor    string    `json:"vendor,omitempty"`
	Addrs     []string  `json:"addrs,omitempty"`
	Hostname  string    `json:"hostname,omitempty"`
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
	SeenBy    []string  `json:"seen_by"` // node IDs of the members that saw it
}
