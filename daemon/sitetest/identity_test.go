//go:build linux

package sitetest

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/patchring/patchring/policy/credential"
	"github.com/patchring/patchring/policy/credential/credtest"
)

// policyLabGate: every desk but desk-03 is in the lab (by hostname, a
// fact); desk-03 is pilot, gated on three lab nodes reporting success.
const policyLabGate = `schema: 1
name: lab-gate
expires: 2035-01-01T00:00:00Z
rings:
  - name: lab
    select: [{hostname: desk-00}, {hostname: desk-01}, {hostname: desk-02}, {hostname: desk-04}, {hostname: desk-05}, {hostname: desk-06}, {hostname: desk-07}]
    defer: 0s
  - name: pilot
    default: true
    defer: 0s
    gates: [{ring: lab, min_success: 100%, min_nodes: 3}]
auto_approve:
  - name: vendor updates
    sources: [apt]
`

// TestSiteGateCountsCredentialedNodesOnly: a site of eight agents in their
// own network namespaces. Five lab nodes hold the gossip key but no valid
// credential: desk-02 none, desk-04 a forged one, desk-05 an expired one,
// desk-06 one from another fleet's CA, desk-07 a revoked one. They install
// acme-tool 1.1 like the other lab nodes (from the origin: no member serves
// them) and gossip their success, but the site refuses them, so pilot's
// gate (three lab successes) stays shut at two. The admin then revokes desk-01's credential in
// fleet.json: within a refresh its success no longer counts either (one of
// three). A credential for desk-02 and a new one for desk-01 (new serial)
// reach them as files, without a restart: three lab nodes count, the gate
// opens and desk-03 installs.
func TestSiteGateCountsCredentialedNodesOnly(t *testing.T) {
	var s *testSite
	otherFleet := credtest.NewCA(t)
	why := map[int]string{2: "no credential", 4: credential.ErrBadSignature.Error(), 5: credential.ErrExpired.Error(),
		6: credential.ErrUnknownSigner.Error(), 7: credential.ErrRevoked.Error()}
	s = newSite(t, siteConfig{Nodes: 8, Credential: func(t testing.TB, i int, id string) []byte {
		spec := credtest.Spec{Hostname: fmt.Sprintf("desk-%02d", i), Site: "branch"}
		switch i {
		case 2:
			return nil
		case 4:
			return s.origin.ca.Forge(t, id, spec)
		case 5:
			spec.NotBefore, spec.NotAfter = time.Now().Add(-72*time.Hour), time.Now().Add(-time.Hour)
		case 6:
			_, raw := otherFleet.Issue(t, id, spec)
			return raw
		case 7:
			if _, err := s.origin.tuf.UpdateFleet(func(d *credential.Document) error {
				d.Revoked.Nodes = append(d.Revoked.Nodes, credential.RevokedNode{NodeID: id, Reason: "stolen", At: time.Now()})
				return nil
			}); err != nil {
				t.Fatal(err)
			}
		}
		_, raw := s.origin.ca.Issue(t, id, spec)
		return raw
	}})
	deb11, _ := s.buildPayload(t, "1.1", 0)
	s.origin.publishPolicy(t, policyLabGate)
	s.startNodes(t)
	pilot := s.nodes[3]
	members := []*node{s.nodes[0], s.nodes[1], s.nodes[3]}
	var lab, outsiders []*node
	for i, n := range s.nodes {
		if i != 3 {
			lab = append(lab, n)
		}
		if why[i] != "" {
			outsiders = append(outsiders, n)
		}
	}

	// Gossip refuses the outsider, and every member says why.
	refusedBy := func(n *node, id, reason string) func(ctx context.Context) (bool, string) {
		return func(ctx context.Context) (bool, string) {
			f, err := n.c.Fleet(ctx)
			if err != nil {
				return false, err.Error()
			}
			for _, m := range f.Members {
				if m.NodeID == id {
					return false, fmt.Sprintf("%s lists %s as a member", n.hostname, id)
				}
			}
			for _, r := range f.Refused {
				if r.NodeID == id && strings.Contains(r.Reason, reason) {
					return true, ""
				}
			}
			return false, fmt.Sprintf("%s does not list %s as refused for %q: %+v", n.hostname, id, reason, f.Refused)
		}
	}
	for _, n := range members {
		for i, reason := range why {
			s.waitFor(t, 2*time.Minute, n.hostname+" refuses "+s.nodes[i].hostname, refusedBy(n, s.nodes[i].id.String(), reason))
		}
	}

	// The release: the lab installs it (the outsider too: it follows the
	// signed policy; it just is not counted).
	s.origin.apt.MustAdd(t, deb11)
	s.waitInstalled(t, lab, 5*time.Minute, "1.1")
	gateReason := func(want string) func(ctx context.Context) (bool, string) {
		return func(ctx context.Context) (bool, string) {
			u, err := pilot.c.Updates(ctx)
			if err != nil {
				return false, err.Error()
			}
			for _, d := range u.Updates {
				if d.Package == "acme-tool" && d.Version == "1.1" {
					if d.Action == "wait-gate" && strings.Contains(d.Reason, want) {
						return true, ""
					}
					return false, fmt.Sprintf("pilot plans 1.1 as %s: %s", d.Action, d.Reason)
				}
			}
			return false, "pilot does not see 1.1"
		}
	}
	s.waitFor(t, time.Minute, "pilot's gate counting the two credentialed lab nodes", gateReason("2 of 2 nodes reported (2 succeeded"))
	// The exchange refused them: no member sent an outsider a byte, and
	// no outsider got one from a peer.
	ctx := context.Background()
	for _, o := range outsiders {
		p, err := o.c.Peers(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if p.FromPeers != 0 {
			t.Errorf("outsider %s got %d payload bytes from peers", o.hostname, p.FromPeers)
		}
		for _, m := range members {
			mp, err := m.c.Peers(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, pt := range mp.Peers {
				if pt.ID == o.id.String() && pt.BytesOut > 0 {
					t.Errorf("%s sent outsider %s %d bytes", m.hostname, o.hostname, pt.BytesOut)
				}
			}
		}
	}

	// Revocation of desk-01's credential by serial: dropped within a
	// refresh, its success no longer counts.
	credLab1 := credentialOf(t, s, 1)
	if _, err := s.origin.tuf.UpdateFleet(func(d *credential.Document) error {
		d.Revoked.Serials = append(d.Revoked.Serials, credLab1.Serial)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	revokedAt := time.Now()
	s.waitFor(t, time.Minute, "desk-01 dropped", refusedBy(pilot, s.nodes[1].id.String(), credential.ErrRevoked.Error()))
	s.waitFor(t, time.Minute, "pilot's gate without desk-01", gateReason("1 of 1 nodes reported (1 succeeded"))
	t.Logf("revoked member dropped from pilot's count %.1fs after fleet.json was published (policy refresh %s)", time.Since(revokedAt).Seconds(), s.cfg.PolicyRefresh)

	// The admin's credentials reach desk-02 and desk-01: the gate opens.
	for _, i := range []int{1, 2} {
		s.origin.ca.Install(t, s.nodes[i].dir+"/state", s.nodes[i].id.String(), credtest.Spec{Hostname: s.nodes[i].hostname, Site: "branch"})
	}
	s.waitInstalled(t, []*node{pilot}, 3*time.Minute, "1.1")
	f, err := pilot.c.Fleet(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, m := range f.Members {
		ids = append(ids, m.Hostname)
	}
	slices.Sort(ids)
	if !slices.Equal(ids, []string{"desk-00", "desk-01", "desk-02", "desk-03"}) { // the other outsiders still refused
		t.Errorf("pilot's members after the new credentials: %v", ids)
	}
}

// readFile is os.ReadFile.
var readFile = os.ReadFile

// credentialOf reads node i's installed credential.
func credentialOf(t testing.TB, s *testSite, i int) *credential.Credential {
	t.Helper()
	raw, err := readFile(s.nodes[i].dir + "/state/" + credential.FileName)
	if err != nil {
		t.Fatal(err)
	}
	c, err := credential.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
