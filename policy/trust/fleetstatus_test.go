package trust_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"testing"
	"time"

	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/patchring/patchring/policy/fleetstatus"
	"github.com/patchring/patchring/policy/trust"
	"github.com/patchring/patchring/policy/tufrepo"
)

// statusDoc returns a fleet status document generated at t.
func statusDoc(t testing.TB, at time.Time, succeeded int) []byte {
	t.Helper()
	d := &fleetstatus.Document{Generated: at, Rings: map[string]fleetstatus.RingNodes{"pilot": {Nodes: 3, Sites: map[string]int{"a": 3}}},
		Updates: []fleetstatus.Update{{Source: "apt", Package: "openssl", Version: "3.0.15-1", FirstSeen: at.Add(-time.Hour),
			Rings: map[string]fleetstatus.Counts{"pilot": {Succeeded: succeeded}}}}}
	raw, err := d.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// The fleet status document travels as the delegated role fleet-status:
// agents verify it through the delegation, keep it across restarts, pass
// it to peers, drop it when its metadata expires, and never fail the
// refresh of the policy because of it.
func TestFleetStatusDelegated(t *testing.T) {
	f := newFixture(t, tufrepo.Options{})
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.reopen().DelegateFleetStatus(pub); err != nil {
		t.Fatal(err)
	}
	c, res := f.refreshed()
	if res.State.FleetStatus != nil {
		t.Fatal("a fleet status before the console published one")
	}

	now := f.clock.Now()
	doc := statusDoc(t, now, 3)
	meta, err := tufrepo.SignFleetStatus(doc, key, now.Unix(), now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.reopen().PublishFleetStatus(meta, doc); err != nil {
		t.Fatal(err)
	}
	res, err = c.Refresh(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(res.State.FleetStatus, doc) || res.State.FleetStatusVersion != now.Unix() {
		t.Fatalf("verified fleet status %q version %d, want the published one", res.State.FleetStatus, res.State.FleetStatusVersion)
	}
	if res.State.Policy == nil {
		t.Fatal("the policy went missing")
	}

	// A restarted agent has it from its stored state; peers pass it on.
	c2, err := trust.New(trust.Config{TrustedRoot: f.rootV1, StateDir: c.StateDir(), Now: f.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	if st, err := c2.LastGood(); err != nil || !bytes.Equal(st.FleetStatus, doc) {
		t.Fatalf("stored state lost the fleet status (err %v)", err)
	}
	c3 := f.client(func(cfg *trust.Config) {
		cfg.Sources = []trust.Source{&verifiedSource{name: "peer1", c: c}, &verifiedSource{name: "peer2", c: c2}}
	})
	res3, err := c3.Refresh(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(res3.State.FleetStatus, doc) {
		t.Error("the fleet status did not come through a peer")
	}

	// A newer one replaces it; a republished admin policy keeps it.
	later := now.Add(time.Minute)
	doc2 := statusDoc(t, later, 2)
	meta2, err := tufrepo.SignFleetStatus(doc2, key, later.Unix(), later.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.reopen().PublishFleetStatus(meta2, doc2); err != nil {
		t.Fatal(err)
	}
	if _, err := f.reopen().PublishPolicy(policyV2); err != nil {
		t.Fatal(err)
	}
	res, err = c.Refresh(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(res.State.FleetStatus, doc2) || !bytes.Equal(res.State.Policy, policyV2) {
		t.Fatalf("after a new status and policy: status %q policy %q", res.State.FleetStatus, res.State.Policy)
	}

	// Past its expiry the refresh goes on without it.
	f.clock.Set(later.Add(2 * time.Hour))
	res, err = c.Refresh(context.Background())
	if err != nil {
		t.Fatalf("an expired fleet status failed the refresh: %v", err)
	}
	if res.State.FleetStatus != nil {
		t.Error("an expired fleet status was kept")
	}
}

// The keeper's side refuses what the delegation does not allow: another
// key, another target, an old version, an expired one, a document that
// does not match its hash.
func TestPublishFleetStatusRefused(t *testing.T) {
	f := newFixture(t, tufrepo.Options{})
	pub, key, _ := ed25519.GenerateKey(rand.Reader)
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	now := f.clock.Now()
	doc := statusDoc(t, now, 1)
	meta, err := tufrepo.SignFleetStatus(doc, key, 10, now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.reopen().PublishFleetStatus(meta, doc); err == nil {
		t.Fatal("published without a delegation")
	}
	if _, err := f.reopen().DelegateFleetStatus(pub); err != nil {
		t.Fatal(err)
	}
	r := f.reopen()
	r.SetClock(f.clock.Now)
	if _, err := r.PublishFleetStatus(meta, doc); err != nil {
		t.Fatal(err)
	}
	sign := func(doc []byte, k ed25519.PrivateKey, v int64, exp time.Time) []byte {
		m, err := tufrepo.SignFleetStatus(doc, k, v, exp)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	for name, c := range map[string]struct{ meta, doc []byte }{
		"another key":    {sign(doc, other, 11, now.Add(time.Hour)), doc},
		"same version":   {sign(doc, key, 10, now.Add(time.Hour)), doc},
		"expired":        {sign(doc, key, 12, now.Add(-time.Minute)), doc},
		"hash mismatch":  {sign(doc, key, 13, now.Add(time.Hour)), statusDoc(t, now, 2)},
		"not a document": {sign([]byte(`{"policy":1}`), key, 14, now.Add(time.Hour)), []byte(`{"policy":1}`)},
		"not metadata":   {[]byte(`{}`), doc},
	} {
		r := f.reopen()
		r.SetClock(f.clock.Now)
		if _, err := r.PublishFleetStatus(c.meta, c.doc); err == nil {
			t.Errorf("%s: published", name)
		}
	}
	// Metadata of the role that also lists another target (the policy).
	md := metadata.Targets(now.Add(time.Hour))
	md.Signed.Version = 15
	for name, data := range map[string][]byte{fleetstatus.Target: doc, trust.PolicyTarget: policyV2} {
		tf, err := metadata.TargetFile().FromBytes(name, data, "sha256")
		if err != nil {
			t.Fatal(err)
		}
		md.Signed.Targets[name] = tf
	}
	signer, err := signature.LoadED25519Signer(key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := md.Sign(signer); err != nil {
		t.Fatal(err)
	}
	extra, err := md.ToBytes(true)
	if err != nil {
		t.Fatal(err)
	}
	r = f.reopen()
	r.SetClock(f.clock.Now)
	if _, err := r.PublishFleetStatus(extra, doc); err == nil {
		t.Error("metadata listing the policy too was published")
	}
	_, res := f.refreshed()
	if !bytes.Equal(res.State.FleetStatus, doc) || !bytes.Equal(res.State.Policy, policyV1) {
		t.Fatal("the good fleet status is not the one verified")
	}
}
