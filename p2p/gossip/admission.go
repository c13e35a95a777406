package gossip

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/patchring/patchring/policy/credential"
)

// Admission: a member of the pool must carry, in its node meta, a
// credential the fleet's authority signed for its node ID. The gossip key
// only keeps the pool confidential; the credential admits. A member whose
// credential does not verify (missing, forged, expired, revoked, another
// fleet's) is refused by memberlist's alive and merge delegates, and one
// that stops verifying (it expired, or a new fleet document revoked it) is
// dropped by Readmit: it leaves Members, its messages are no longer passed
// on and its leases and results stop counting.

// maxCredentialLen bounds the credential in node meta (credential.MaxSize).
const maxCredentialLen = 384

// maxRefusals bounds the refused node IDs remembered for Refused.
const maxRefusals = 256

// Admitter decides which members the pool admits. Admit verifies raw (the
// credential a member carries in its node meta, possibly empty) for
// nodeID; it returns what the credential says, or an error saying why the
// member is refused. It returns (nil, nil) when admission is off (a fleet
// whose repository publishes no fleet document): every holder of the
// gossip key is then a member, as before credentials. It must not block.
type Admitter interface {
	Admit(nodeID string, raw []byte) (*Credential, error)
}

// Credential is what a member's verified credential says about it.
type Credential struct {
	Hostname string
	Site     string
	Tags     []string
	Serial   uint64
	NotAfter time.Time
}

// Refusal is a node the pool refused, and why.
type Refusal struct {
	NodeID string
	Addr   string
	Reason string
	At     time.Time
	Count  uint64
}

// enforcing reports whether admission is on: an Admitter that says so
// (FleetAdmitter: a fleet document is in force), or one that does not tell.
func (g *Gossip) enforcing() bool {
	if g.cfg.Admitter == nil {
		return false
	}
	if e, ok := g.cfg.Admitter.(interface{ Enforcing() bool }); ok {
		return e.Enforcing()
	}
	return true
}

// admitCheck runs the admitter for a member's meta credential.
func (g *Gossip) admitCheck(name string, raw []byte) (*Credential, error) {
	if g.cfg.Admitter == nil {
		return nil, nil
	}
	c, err := g.cfg.Admitter.Admit(name, raw)
	if err != nil {
		return nil, err
	}
	if c != nil {
		c = &Credential{Hostname: c.Hostname, Site: c.Site, Tags: slices.Clone(c.Tags), Serial: c.Serial, NotAfter: c.NotAfter}
	}
	return c, nil
}

// refuse records a refusal for Refused and the counters, and logs it.
func (g *Gossip) refuse(name, addr string, err error) {
	g.stats.refused.Add(1)
	now := g.clock.Now()
	g.mu.Lock()
	g.refusedBy[RefusalReason(err)]++
	r, ok := g.refusals[name]
	if !ok {
		if len(g.refusals) >= maxRefusals {
			// Forget the oldest: made-up node IDs must not grow the table.
			var oldest string
			for n, x := range g.refusals {
				if oldest == "" || x.At.Before(g.refusals[oldest].At) {
					oldest = n
				}
			}
			delete(g.refusals, oldest)
		}
		r = &Refusal{NodeID: name}
		g.refusals[name] = r
	}
	first := r.Reason != err.Error()
	r.Addr, r.Reason, r.At = addr, err.Error(), now
	r.Count++
	g.mu.Unlock()
	if first {
		g.log.Warn("gossip: member refused", "member", name, "addr", addr, "reason", err)
	} else {
		g.log.Debug("gossip: member refused", "member", name, "addr", addr, "reason", err)
	}
}

// RefusalReasons are the labels RefusalReason gives.
var RefusalReasons = []string{"missing", "malformed", "bad_signature", "unknown_signer", "expired", "not_yet_valid", "revoked", "wrong_node", "issuer_scope", "other"}

// RefusalReason names the kind of an admission refusal, for metrics.
func RefusalReason(err error) string {
	for _, c := range []struct {
		err  error
		name string
	}{{ErrNoCredential, "missing"}, {credential.ErrMalformed, "malformed"}, {credential.ErrBadSignature, "bad_signature"},
		{credential.ErrUnknownSigner, "unknown_signer"}, {credential.ErrExpired, "expired"}, {credential.ErrNotYetValid, "not_yet_valid"},
		{credential.ErrRevoked, "revoked"}, {credential.ErrWrongNode, "wrong_node"}, {credential.ErrIssuerScope, "issuer_scope"}} {
		if errors.Is(err, c.err) {
			return c.name
		}
	}
	return "other"
}

// RefusalCounts counts admission refusals by RefusalReason (refusals of
// members, not of their messages).
func (g *Gossip) RefusalCounts() map[string]uint64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make(map[string]uint64, len(g.refusedBy))
	for k, v := range g.refusedBy {
		out[k] = v
	}
	return out
}

// Refused lists the nodes refused admission (by their last refusal), and
// the admitted-before members whose credential stopped verifying.
func (g *Gossip) Refused() []Refusal {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]Refusal, 0, len(g.refusals))
	for _, r := range g.refusals {
		if m := g.members[r.NodeID]; m != nil && m.known && m.admitted {
			continue // admitted since
		}
		out = append(out, *r)
	}
	slices.SortFunc(out, func(a, b Refusal) int { return cmp.Compare(a.NodeID, b.NodeID) })
	return out
}

// SetCredential replaces this node's own credential (wire form) in its
// node meta, e.g. after a renewal; the pool sees it within a gossip round.
func (g *Gossip) SetCredential(raw []byte) error {
	if len(raw) > maxCredentialLen {
		return fmt.Errorf("gossip: credential of %d bytes, limit %d", len(raw), maxCredentialLen)
	}
	g.mu.Lock()
	changed := string(g.credential) != string(raw)
	g.credential = slices.Clone(raw)
	g.mu.Unlock()
	if changed {
		g.Readmit()
		g.signal(g.metaCh)
	}
	return nil
}

// Readmit checks every member's credential again (and this node's own):
// after a new fleet document (revocations, a new CA) and as credentials
// expire. A member that no longer verifies is dropped: it leaves Members,
// its messages are not passed on, its leases and results stop counting.
// One that verifies again is back.
func (g *Gossip) Readmit() {
	g.mu.Lock()
	type check struct {
		name, addr string
		raw        []byte
	}
	checks := make([]check, 0, len(g.members))
	for name, m := range g.members {
		if !m.known && name != g.name {
			continue
		}
		raw := m.meta.credential
		if name == g.name {
			raw = g.credential
		}
		checks = append(checks, check{name, m.addr, raw})
	}
	g.mu.Unlock()
	var changed []string
	for _, c := range checks {
		cred, err := g.admitCheck(c.name, c.raw)
		g.mu.Lock()
		m := g.members[c.name]
		if m == nil {
			g.mu.Unlock()
			continue
		}
		was := m.admitted
		m.admitted, m.cred = err == nil || c.name == g.name, cred
		m.refusal = ""
		if err != nil {
			m.refusal = err.Error()
		}
		g.mu.Unlock()
		if err != nil && c.name != g.name {
			g.refuse(c.name, c.addr, err)
		}
		if c.name == g.name {
			if err != nil {
				g.selfProblemOnce(err)
			}
			continue
		}
		if was != m.admitted {
			changed = append(changed, c.name)
			if !m.admitted {
				g.log.Warn("gossip: member dropped: its credential no longer verifies", "member", c.name, "reason", err)
			} else {
				g.log.Info("gossip: member admitted", "member", c.name)
			}
		}
	}
	g.mu.Lock()
	g.countLiveLocked()
	g.mu.Unlock()
	for _, name := range changed {
		g.emit(EventUpdate, name, 0)
	}
}

// selfProblemOnce logs this node's own credential problem when it changes.
func (g *Gossip) selfProblemOnce(err error) {
	g.mu.Lock()
	same := g.selfProblem == err.Error()
	g.selfProblem = err.Error()
	g.mu.Unlock()
	if !same {
		g.log.Warn("gossip: this node's own credential does not verify: other members refuse it", "reason", err)
	}
}

// countsLocked reports whether m's leases count here: an admitted member
// of this node's own site. A member visiting from another site (its
// credential names another site) shares payloads and metadata but holds
// no slot of this site's lease and moves none of its gates.
func (g *Gossip) countsLocked(m *member) bool {
	if m.name == g.name {
		return true
	}
	return m.admitted && !g.visitingLocked(m)
}

// visitingLocked reports whether m's credential names a site other than
// this node's own.
func (g *Gossip) visitingLocked(m *member) bool {
	if m.cred == nil || m.name == g.name {
		return false
	}
	return m.cred.Site != g.siteLocked()
}

// siteLocked is this node's site: its credential's when it has a verified
// one, else the configured one.
func (g *Gossip) siteLocked() string {
	if self := g.members[g.name]; self != nil && self.cred != nil {
		return self.cred.Site
	}
	return g.cfg.Site
}

type mergeDelegate struct{ g *Gossip }

var _ memberlist.MergeDelegate = (*mergeDelegate)(nil)

// NotifyMerge refuses a push/pull merge in which no node other than this
// one holds a credential that verifies: an outsider with the gossip key
// offering its view of the pool. In a merge that also carries admitted
// members, NotifyAlive refuses the others one by one.
func (m *mergeDelegate) NotifyMerge(peers []*memberlist.Node) error {
	g := m.g
	if g.cfg.Admitter == nil {
		return nil
	}
	var errs []error
	for _, n := range peers {
		if n.Name == g.name {
			continue
		}
		meta, err := unmarshalMeta(n.Meta)
		if err == nil {
			if _, err = g.admitCheck(n.Name, meta.credential); err == nil {
				return nil
			}
		}
		errs = append(errs, fmt.Errorf("%s: %w", n.Name, err))
	}
	if len(errs) == 0 {
		return nil
	}
	err := fmt.Errorf("merge refused: no member with a valid credential: %w", errors.Join(errs...))
	for _, n := range peers {
		if n.Name != g.name {
			g.refuse(n.Name, n.Address(), err)
		}
	}
	return err
}
