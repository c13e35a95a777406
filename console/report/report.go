// Package report owns the signed per-node record that sites send to the
// fleet console: its wire format, its signature (by the node's own ed25519
// key, the key behind its libp2p peer ID) and the strict parser the console
// runs on untrusted input. It uses the standard library only, so both the
// agent side and the console can import it.
package report

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"regexp"
	"time"
)

// Version is the record format this package writes and reads.
const Version = 1

// Limits on untrusted input: a record bigger than these is refused whole.
const (
	MaxEnvelopeBytes = 4 << 20
	MaxPackages      = 20000
	MaxOutcomes      = 1000
	MaxVulns         = 10000
	MaxDevices       = 16384
	MaxDeviceAddrs   = 16
	MaxDeviceSeenBy  = 64
	maxText          = 1024
)

// sigContext separates report signatures from anything else the node key
// signs (libp2p handshakes, gossip).
const sigContext = "patchring-report-v1\n"

// Outcome results.
const (
	ResultSucceeded  = "succeeded"
	ResultFailed     = "failed"
	ResultRolledBack = "rolled_back"
)

// Reboot states.
const (
	RebootNone     = "none"
	RebootPending  = "pending"
	RebootDeferred = "deferred"
	RebootRefused  = "refused"
)

// Record is one node's report: its state now, the update outcomes since its
// previous record and, when it changed, its package list. Seq grows by at
// least one with every record a node signs; the console refuses a sequence
// number it has already passed.
type Record struct {
	V        int       `json:"v"`
	Node     string    `json:"node"` // libp2p peer ID (ed25519 identity multihash)
	Seq      uint64    `json:"seq"`
	Time     time.Time `json:"time"` // when the node signed it
	Site     string    `json:"site"`
	Hostname string    `json:"hostname"`
	Ring     string    `json:"ring,omitempty"`
	// State is the node's engine state: "idle", "installing", "failed"...
	State         string `json:"state"`
	PolicyVersion int64  `json:"policy_version"`
	// Pending counts updates the node knows it still has to install.
	Pending  int       `json:"pending"`
	Outcomes []Outcome `json:"outcomes,omitempty"`
	Reboot   Reboot    `json:"reboot"`
	// PackagesDigest is the hex SHA-256 of the installed package list
	// (see DigestPackages); Packages is sent only when it changed.
	PackagesDigest string    `json:"packages_digest"`
	Packages       []Package `json:"packages,omitempty"`
	// Bytes fetched from LAN peers and from the origin or mirrors since
	// the previous record.
	BytesFromPeers  int64 `json:"bytes_from_peers"`
	BytesFromOrigin int64 `json:"bytes_from_origin"`
	// Expiries of what keeps the node patching (zero when unknown).
	MetadataExpires   time.Time `json:"metadata_expires,omitzero"`
	CredentialExpires time.Time `json:"credential_expires,omitzero"`
	// VulnsDigest is DigestVulns of the node's open vulnerabilities
	// (empty: the node matches no advisories, or is older than this
	// field); Vulns is sent only when it changed. A digest of the empty
	// list with no Vulns says the node's exposure cleared.
	VulnsDigest string `json:"vulns_digest,omitempty"`
	Vulns       []Vuln `json:"vulns,omitempty"`
	// UnmanagedDigest is DigestDevices of the site's unmanaged devices;
	// only the site's reporter sets it (empty: this record says nothing
	// about them), and Unmanaged is sent only when it changed. A digest of
	// the empty list with no Unmanaged says the site has none left.
	UnmanagedDigest string   `json:"unmanaged_digest,omitempty"`
	Unmanaged       []Device `json:"unmanaged,omitempty"`
}

// Vuln is one vulnerability a node is exposed to through one package.
type Vuln struct {
	ID      string `json:"id"` // the CVE, or the advisory's ID when it names none
	Package string `json:"package"`
	Version string `json:"version"`          // installed
	Source  string `json:"source,omitempty"` // the source package, when it differs
	// FixedIn is the first fixed version the advisories give (empty: no
	// fix published).
	FixedIn  string `json:"fixed_in,omitempty"`
	Severity string `json:"severity"` // critical, high, medium, low, none, unknown
	KEV      bool   `json:"kev,omitempty"`
	// Fix is the fix's state on the node: none, not-available,
	// available, approved, pending.
	Fix string `json:"fix,omitempty"`
}

// Urgent is what the policy's urgent rules act on: a KEV entry or a
// critical severity.
func (v Vuln) Urgent() bool { return v.KEV || v.Severity == SeverityCritical }

// Severities, worst first.
const (
	SeverityCritical = "critical"
	SeverityHigh     = "high"
	SeverityMedium   = "medium"
	SeverityLow      = "low"
	SeverityNone     = "none"
	SeverityUnknown  = "unknown"
)

// SeverityRank orders severities, worst highest; an unknown word ranks
// with "unknown".
func SeverityRank(s string) int {
	switch s {
	case SeverityCritical:
		return 5
	case SeverityHigh:
		return 4
	case SeverityMedium:
		return 3
	case SeverityLow:
		return 2
	case SeverityNone:
		return 1
	}
	return 0
}

// Device is one device on a site's LAN that runs no agent, as the site's
// members saw it (daemon/unmanaged).
type Device struct {
	MAC       string    `json:"mac"`
	Vendor    string    `json:"vendor,omitempty"`
	Addrs     []string  `json:"addrs,omitempty"`
	Hostname  string    `json:"hostname,omitempty"`
	FirstSeen time.Time `json:"first_seen"`
	// LastSeen is rounded down by the sender (daemon/reporter rounds to
	// 3 hours), so that a device seen again does not make a new record
	// every round.
	LastSeen time.Time `json:"last_seen"`
	SeenBy   []string  `json:"seen_by,omitempty"` // node IDs of the members that saw it
}

// Outcome is the end of one install or rollback transaction.
type Outcome struct {
	Source  string    `json:"source"`
	Package string    `json:"package"`
	Version string    `json:"version"`
	Result  string    `json:"result"`
	Reason  string    `json:"reason,omitempty"`
	At      time.Time `json:"at"`
}

// Reboot is the node's reboot state and who chose it.
type Reboot struct {
	State     string    `json:"state"`
	By        string    `json:"by,omitempty"` // the user who deferred or refused
	Deadline  time.Time `json:"deadline,omitzero"`
	Deferrals int       `json:"deferrals,omitempty"`
}

// Package is one installed package.
type Package struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Arch    string `json:"arch,omitempty"`
}

// Envelope is a signed record as it travels: the record's exact JSON bytes
// and the node's signature over them, with the node's fleet credential
// (policy/credential wire form). The credential is outside the signed
// payload: the fleet's CA signed it, and the console checks it is this
// node's, so nobody gains by swapping it, and a renewal does not change
// the record's digest.
type Envelope struct {
	Payload    []byte `json:"payload"` // base64 in JSON
	Sig        []byte `json:"sig"`
	Credential []byte `json:"cred,omitempty"`
}

// MaxCredentialBytes bounds an envelope's credential (policy/credential
// keeps its wire form under 384 bytes).
const MaxCredentialBytes = 1024

// Errors callers branch on.
var (
	ErrMalformed = errors.New("malformed record")
	ErrSignature = errors.New("bad signature")
)

// DigestPackages is the hex SHA-256 of a package list in the order given
// (callers sort it by name and arch).
func DigestPackages(pkgs []Package) string {
	h := sha256.New()
	for _, p := range pkgs {
		fmt.Fprintf(h, "%s\x00%s\x00%s\n", p.Name, p.Arch, p.Version)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// DigestVulns is the hex SHA-256 of a vulnerability list in the order
// given (callers sort it by ID and package).
func DigestVulns(vs []Vuln) string {
	h := sha256.New()
	for _, v := range vs {
		fmt.Fprintf(h, "%s\x00%s\x00%s\x00%s\x00%s\x00%s\x00%t\x00%s\n", v.ID, v.Package, v.Version, v.Source, v.FixedIn, v.Severity, v.KEV, v.Fix)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// DigestDevices is the hex SHA-256 of a device list in the order given
// (callers sort it by MAC).
func DigestDevices(ds []Device) string {
	h := sha256.New()
	for _, d := range ds {
		fmt.Fprintf(h, "%s\x00%s\x00%q\x00%s\x00%d\x00%d\x00%q\n", d.MAC, d.Vendor, d.Addrs, d.Hostname, d.FirstSeen.UnixMilli(), d.LastSeen.UnixMilli(), d.SeenBy)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Sign encodes r and signs it with the node's key. r.Node must be the peer
// ID of key's public half.
func Sign(r Record, key ed25519.PrivateKey) (Envelope, error) {
	pub, err := PublicKeyFromNodeID(r.Node)
	if err != nil {
		return Envelope{}, fmt.Errorf("sign record: %w", err)
	}
	if !bytes.Equal(pub, key.Public().(ed25519.PublicKey)) {
		return Envelope{}, fmt.Errorf("sign record: node ID %s is not this key's", r.Node)
	}
	r.V = Version
	if err := r.validate(); err != nil {
		return Envelope{}, fmt.Errorf("sign record: %w", err)
	}
	payload, err := json.Marshal(r)
	if err != nil {
		return Envelope{}, fmt.Errorf("sign record: %w", err)
	}
	return Envelope{Payload: payload, Sig: ed25519.Sign(key, signed(payload))}, nil
}

func signed(payload []byte) []byte { return append([]byte(sigContext), payload...) }

// Digest is the SHA-256 of the envelope's payload: two deliveries of one
// record have the same digest.
func (e Envelope) Digest() string {
	s := sha256.Sum256(e.Payload)
	return hex.EncodeToString(s[:])
}

// Open checks the envelope's signature against the key its record names
// and returns the record and that key. It trusts nothing in the envelope
// until the signature checks.
func Open(e Envelope) (Record, ed25519.PublicKey, error) {
	if len(e.Payload) == 0 || len(e.Payload) > MaxEnvelopeBytes {
		return Record{}, nil, fmt.Errorf("open record: %w: payload of %d bytes", ErrMalformed, len(e.Payload))
	}
	if len(e.Credential) > MaxCredentialBytes {
		return Record{}, nil, fmt.Errorf("open record: %w: credential of %d bytes", ErrMalformed, len(e.Credential))
	}
	// Only the node field is read before the signature is checked.
	var head struct {
		Node string `json:"node"`
	}
	if err := json.Unmarshal(e.Payload, &head); err != nil {
		return Record{}, nil, fmt.Errorf("open record: %w: %v", ErrMalformed, err)
	}
	pub, err := PublicKeyFromNodeID(head.Node)
	if err != nil {
		return Record{}, nil, fmt.Errorf("open record: %w: %v", ErrMalformed, err)
	}
	if len(e.Sig) != ed25519.SignatureSize || !ed25519.Verify(pub, signed(e.Payload), e.Sig) {
		return Record{}, nil, fmt.Errorf("open record of node %s: %w", head.Node, ErrSignature)
	}
	var r Record
	dec := json.NewDecoder(bytes.NewReader(e.Payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return Record{}, nil, fmt.Errorf("open record of node %s: %w: %v", head.Node, ErrMalformed, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Record{}, nil, fmt.Errorf("open record of node %s: %w: data after the record", head.Node, ErrMalformed)
	}
	if r.Node != head.Node {
		return Record{}, nil, fmt.Errorf("open record: %w: node field given twice", ErrMalformed)
	}
	if err := r.validate(); err != nil {
		return Record{}, nil, fmt.Errorf("open record of node %s: %w", r.Node, err)
	}
	return r, pub, nil
}

// ParseEnvelope decodes one envelope from JSON.
func ParseEnvelope(data []byte) (Envelope, error) {
	var e Envelope
	if len(data) > 2*MaxEnvelopeBytes {
		return e, fmt.Errorf("parse envelope: %w: %d bytes", ErrMalformed, len(data))
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		return Envelope{}, fmt.Errorf("parse envelope: %w: %v", ErrMalformed, err)
	}
	return e, nil
}

var (
	namePat   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+:~-]*$`)
	macPat    = regexp.MustCompile(`^[0-9a-f]{2}(:[0-9a-f]{2}){5}$`)
	digestPat = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

func text(field, s string, required bool) error {
	switch {
	case required && s == "":
		return fmt.Errorf("%w: %s is empty", ErrMalformed, field)
	case len(s) > maxText:
		return fmt.Errorf("%w: %s is longer than %d bytes", ErrMalformed, field, maxText)
	}
	for _, c := range s {
		if c < 0x20 || c == 0x7f || c == 0xfffd {
			return fmt.Errorf("%w: %s holds a control or invalid character", ErrMalformed, field)
		}
	}
	return nil
}

func (r *Record) validate() error {
	if r.V != Version {
		return fmt.Errorf("%w: version %d (this console reads %d)", ErrMalformed, r.V, Version)
	}
	if r.Seq == 0 || r.Seq > 1<<62 {
		return fmt.Errorf("%w: sequence number %d out of range", ErrMalformed, r.Seq)
	}
	if r.Time.IsZero() {
		return fmt.Errorf("%w: time is missing", ErrMalformed)
	}
	for _, f := range []struct {
		name, v string
		req     bool
	}{{"site", r.Site, true}, {"hostname", r.Hostname, true}, {"ring", r.Ring, false}, {"state", r.State, true}, {"reboot.by", r.Reboot.By, false}} {
		if err := text(f.name, f.v, f.req); err != nil {
			return err
		}
	}
	if r.PolicyVersion < 0 || r.Pending < 0 || r.BytesFromPeers < 0 || r.BytesFromOrigin < 0 || r.Reboot.Deferrals < 0 {
		return fmt.Errorf("%w: negative count", ErrMalformed)
	}
	switch r.Reboot.State {
	case RebootNone, RebootPending, RebootDeferred, RebootRefused:
	default:
		return fmt.Errorf("%w: reboot state %q", ErrMalformed, r.Reboot.State)
	}
	if !digestPat.MatchString(r.PackagesDigest) {
		return fmt.Errorf("%w: packages_digest is not a hex SHA-256", ErrMalformed)
	}
	if len(r.Packages) > MaxPackages {
		return fmt.Errorf("%w: %d packages (at most %d)", ErrMalformed, len(r.Packages), MaxPackages)
	}
	for i, p := range r.Packages {
		if !namePat.MatchString(p.Name) || len(p.Name) > 256 || !namePat.MatchString(p.Version) || len(p.Version) > 256 || (p.Arch != "" && !namePat.MatchString(p.Arch)) || len(p.Arch) > 32 {
			return fmt.Errorf("%w: package %d (%.64q %.64q %.32q)", ErrMalformed, i, p.Name, p.Version, p.Arch)
		}
	}
	if len(r.Packages) > 0 && DigestPackages(r.Packages) != r.PackagesDigest {
		return fmt.Errorf("%w: packages_digest does not match the package list", ErrMalformed)
	}
	if len(r.Outcomes) > MaxOutcomes {
		return fmt.Errorf("%w: %d outcomes (at most %d)", ErrMalformed, len(r.Outcomes), MaxOutcomes)
	}
	for i, o := range r.Outcomes {
		switch o.Result {
		case ResultSucceeded, ResultFailed, ResultRolledBack:
		default:
			return fmt.Errorf("%w: outcome %d: result %q", ErrMalformed, i, o.Result)
		}
		for _, f := range []struct {
			name, v string
			req     bool
		}{{"source", o.Source, true}, {"package", o.Package, true}, {"version", o.Version, true}, {"reason", o.Reason, false}} {
			if err := text(fmt.Sprintf("outcome %d: %s", i, f.name), f.v, f.req); err != nil {
				return err
			}
		}
		if o.At.IsZero() {
			return fmt.Errorf("%w: outcome %d: time is missing", ErrMalformed, i)
		}
	}
	if err := r.validateVulns(); err != nil {
		return err
	}
	return r.validateDevices()
}

func (r *Record) validateVulns() error {
	if r.VulnsDigest == "" {
		if len(r.Vulns) > 0 {
			return fmt.Errorf("%w: vulns without vulns_digest", ErrMalformed)
		}
		return nil
	}
	if !digestPat.MatchString(r.VulnsDigest) {
		return fmt.Errorf("%w: vulns_digest is not a hex SHA-256", ErrMalformed)
	}
	if len(r.Vulns) > MaxVulns {
		return fmt.Errorf("%w: %d vulns (at most %d)", ErrMalformed, len(r.Vulns), MaxVulns)
	}
	for i, v := range r.Vulns {
		if err := v.Check(); err != nil {
			return fmt.Errorf("vuln %d: %w", i, err)
		}
	}
	if len(r.Vulns) > 0 && DigestVulns(r.Vulns) != r.VulnsDigest {
		return fmt.Errorf("%w: vulns_digest does not match the vulns", ErrMalformed)
	}
	return nil
}

// Check validates one vulnerability as the console will (an agent leaves
// out one that fails rather than fail its whole record).
func (v Vuln) Check() error {
	if err := text("id", v.ID, true); err != nil {
		return err
	}
	if len(v.ID) > 128 {
		return fmt.Errorf("%w: id longer than 128 bytes", ErrMalformed)
	}
	for _, f := range []struct {
		name, v string
		req     bool
	}{{"package", v.Package, true}, {"version", v.Version, true}, {"source", v.Source, false}, {"fixed_in", v.FixedIn, false}} {
		if (f.req || f.v != "") && (!namePat.MatchString(f.v) || len(f.v) > 256) {
			return fmt.Errorf("%w: %s %.64q", ErrMalformed, f.name, f.v)
		}
	}
	switch v.Severity {
	case SeverityCritical, SeverityHigh, SeverityMedium, SeverityLow, SeverityNone, SeverityUnknown:
	default:
		return fmt.Errorf("%w: severity %.32q", ErrMalformed, v.Severity)
	}
	switch v.Fix {
	case "", "none", "not-available", "available", "approved", "pending":
	default:
		return fmt.Errorf("%w: fix state %.32q", ErrMalformed, v.Fix)
	}
	return nil
}

func (r *Record) validateDevices() error {
	if r.UnmanagedDigest == "" {
		if len(r.Unmanaged) > 0 {
			return fmt.Errorf("%w: unmanaged devices without unmanaged_digest", ErrMalformed)
		}
		return nil
	}
	if !digestPat.MatchString(r.UnmanagedDigest) {
		return fmt.Errorf("%w: unmanaged_digest is not a hex SHA-256", ErrMalformed)
	}
	if len(r.Unmanaged) > MaxDevices {
		return fmt.Errorf("%w: %d unmanaged devices (at most %d)", ErrMalformed, len(r.Unmanaged), MaxDevices)
	}
	for i, d := range r.Unmanaged {
		if err := d.Check(); err != nil {
			return fmt.Errorf("unmanaged device %d: %w", i, err)
		}
	}
	if len(r.Unmanaged) > 0 && DigestDevices(r.Unmanaged) != r.UnmanagedDigest {
		return fmt.Errorf("%w: unmanaged_digest does not match the devices", ErrMalformed)
	}
	return nil
}

// Check validates one device as the console will.
func (d Device) Check() error {
	if !macPat.MatchString(d.MAC) {
		return fmt.Errorf("%w: MAC %.32q (want lower-case aa:bb:cc:dd:ee:ff)", ErrMalformed, d.MAC)
	}
	if len(d.Addrs) > MaxDeviceAddrs || len(d.SeenBy) > MaxDeviceSeenBy {
		return fmt.Errorf("%w: %s: %d addresses, seen by %d (at most %d and %d)", ErrMalformed, d.MAC, len(d.Addrs), len(d.SeenBy), MaxDeviceAddrs, MaxDeviceSeenBy)
	}
	for _, a := range d.Addrs {
		if _, err := netip.ParseAddr(a); err != nil {
			return fmt.Errorf("%w: %s: address %.64q", ErrMalformed, d.MAC, a)
		}
	}
	for _, id := range d.SeenBy {
		if _, err := PublicKeyFromNodeID(id); err != nil {
			return fmt.Errorf("%w: %s: seen by %.64q: not a node ID", ErrMalformed, d.MAC, id)
		}
	}
	for _, f := range []struct{ name, v string }{{"vendor", d.Vendor}, {"hostname", d.Hostname}} {
		if err := text(d.MAC+": "+f.name, f.v, false); err != nil {
			return err
		}
		if len(f.v) > 256 {
			return fmt.Errorf("%w: %s: %s longer than 256 bytes", ErrMalformed, d.MAC, f.name)
		}
	}
	if d.FirstSeen.IsZero() || d.LastSeen.IsZero() {
		return fmt.Errorf("%w: %s: first or last seen is missing", ErrMalformed, d.MAC)
	}
	return nil
}
