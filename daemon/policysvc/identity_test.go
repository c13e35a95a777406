package policysvc

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/patchring/patchring/internal/atomicfile"
	"github.com/patchring/patchring/internal/testutil"
	"github.com/patchring/patchring/policy"
	"github.com/patchring/patchring/policy/credential"
	"github.com/patchring/patchring/policy/credential/credtest"
	"github.com/patchring/patchring/policy/trust"
	"github.com/patchring/patchring/policy/tufrepo"
)

const ringsPolicy = `schema: 1
name: rings
expires: 2035-01-01T00:00:00Z
rings:
  - name: pilot
    select: [{tags: [pilot]}]
  - name: broad
    default: true
`

// The agent side of fleet identity: fleet.json arrives with the policy;
// the credential file is re-read on every refresh; site and tags for ring
// selection are the credential's while fleet.json is published (the local
// configuration's tags change nothing); status names the problem of a
// missing, revoked or expired credential.
func TestIdentityFollowsCredentialAndFleet(t *testing.T) {
	dir := t.TempDir()
	repo, err := tufrepo.Init(filepath.Join(dir, "repo"), filepath.Join(dir, "keys"), tufrepo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	p, err := policy.Parse([]byte(ringsPolicy), "policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	canon, err := policy.MarshalCanonical(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := repo.PublishPolicy(canon); err != nil {
		t.Fatal(err)
	}
	root, err := repo.RootJSON()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tc, err := trust.New(trust.Config{TrustedRoot: root, StateDir: filepath.Join(dir, "state", "tuf"),
		Sources: []trust.Source{&trust.DirSource{Dir: filepath.Join(dir, "repo")}}, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	priv, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := peer.IDFromPrivateKey(priv)
	credFile := filepath.Join(dir, "state", credential.FileName)
	localTags := []string{"pilot"} // what the node's own config claims
	var s *Service
	facts := func() policy.NodeFacts {
		f := policy.NodeFacts{NodeID: id.String(), Site: "hq", Tags: localTags}
		if site, tags, ok := s.SiteTags(); ok {
			f.Site, f.Tags = site, tags
		}
		return f
	}
	changes := 0
	s = New(Config{Trust: tc, Log: testutil.Logger(t), Now: func() time.Time { return now }, Facts: facts,
		NodeID: id.String(), CredentialFile: credFile, OnChange: func(*policy.Policy, string) { changes++ }})
	ctx := context.Background()
	ring := func() string {
		t.Helper()
		e := s.Effective()
		return e.Ring
	}

	// No fleet.json yet: the transition, local tags apply.
	if err := s.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if id := s.Identity(); id.Enforced || id.Problem != "missing" {
		t.Errorf("before fleet.json: identity %+v", id)
	}
	if r := ring(); r != "pilot" {
		t.Errorf("before fleet.json the local tags select: ring %s, want pilot", r)
	}
	if st := s.Status(); !strings.Contains(st.Details["warning"], "no fleet.json") {
		t.Errorf("status does not warn about the missing fleet.json: %+v", st)
	}

	// The admin creates the fleet CA: credentials are now required, and
	// the local tag no longer selects a ring.
	if _, err := repo.InitFleet(); err != nil {
		t.Fatal(err)
	}
	caKey, err := repo.FleetKey(tufrepo.RoleFleetCA)
	if err != nil {
		t.Fatal(err)
	}
	ca := credtest.FromKey(caKey)
	if err := s.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if s.Fleet() == nil {
		t.Fatal("fleet.json not adopted")
	}
	if id := s.Identity(); !id.Enforced || id.Problem != "missing" {
		t.Errorf("no credential: identity %+v", id)
	}
	if r := ring(); r != "broad" {
		t.Errorf("with fleet.json and no credential the local tag still selects: ring %s", r)
	}
	if st := s.Status(); st.State != "degraded" || !strings.Contains(st.Summary, "credential missing") {
		t.Errorf("status %+v", st)
	}

	// A credential without the tag: still broad, whatever the config says.
	write := func(spec credtest.Spec) *credential.Credential {
		t.Helper()
		c, raw := ca.Issue(t, id.String(), spec)
		if err := atomicfile.WriteFile(credFile, raw, 0o600); err != nil {
			t.Fatal(err)
		}
		return c
	}
	write(credtest.Spec{Site: "branch-7", Tags: []string{"linux"}})
	before := changes
	if err := s.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if changes == before {
		t.Error("a new credential did not signal a change")
	}
	if got := s.Identity(); got.Problem != "" || got.Site != "branch-7" || !slices.Equal(got.Tags, []string{"linux"}) {
		t.Errorf("identity %+v", got)
	}
	if r := ring(); r != "broad" {
		t.Errorf("credential without pilot tag, local config with it: ring %s, want broad", r)
	}
	if site, _, _ := s.SiteTags(); site != "branch-7" {
		t.Errorf("site %q, want the credential's", site)
	}

	// Moving the node to pilot is a credential change signed by the admin,
	// picked up at the next refresh without a restart.
	c := write(credtest.Spec{Site: "branch-7", Tags: []string{"pilot"}})
	if err := s.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if r := ring(); r != "pilot" {
		t.Errorf("after the signed tag change: ring %s, want pilot", r)
	}

	// Revoked by a new fleet.json: no tags, problem "revoked".
	if _, err := repo.UpdateFleet(func(d *credential.Document) error {
		d.Revoked.Serials = append(d.Revoked.Serials, c.Serial)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if got := s.Identity(); got.Problem != "revoked" {
		t.Errorf("after revocation: identity %+v", got)
	}
	if r := ring(); r != "broad" {
		t.Errorf("revoked credential still selects: ring %s", r)
	}

	// Expired.
	write(credtest.Spec{Site: "branch-7", Tags: []string{"pilot"}, NotBefore: now.Add(-48 * time.Hour), NotAfter: now.Add(-time.Hour)})
	if err := s.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if got := s.Identity(); got.Problem != "expired" {
		t.Errorf("expired credential: identity %+v", got)
	}
	// Garbage in the file: reported, not trusted.
	if err := os.WriteFile(credFile, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if got := s.Identity(); got.Problem != "invalid" || !strings.Contains(got.Detail, credFile) {
		t.Errorf("garbage credential: identity %+v", got)
	}
}
