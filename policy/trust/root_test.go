package trust_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"testing"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/patchring/patchring/policy/trust"
	"github.com/patchring/patchring/policy/tufrepo"
)

// newAttackerKey returns a fresh ed25519 key no root trusts.
func newAttackerKey(t *testing.T) (*tufrepo.Key, *metadata.Key) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tk, err := metadata.KeyFromPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	id, err := tk.ID()
	if err != nil {
		t.Fatal(err)
	}
	return &tufrepo.Key{Role: tufrepo.RoleRoot, ID: id, Public: pub, Private: priv}, tk
}

// TestAttackRootSignedOnlyByNewKeys: a root v2 that replaces every root key
// (and takes the targets role) is signed only by its own new keys, not by a
// threshold of the keys root v1 trusts. Agents that refreshed before and
// agents installed with root v1 refuse it and keep what they verified.
func TestAttackRootSignedOnlyByNewKeys(t *testing.T) {
	for _, threshold := range []int{1, 2} {
		t.Run(fmt.Sprintf("threshold %d", threshold), func(t *testing.T) {
			f := newFixture(t, tufrepo.Options{Thresholds: map[string]int{tufrepo.RoleRoot: threshold}})
			c, good := f.refreshed()
			newKey, tk := newAttackerKey(t)
			root := load[metadata.RootType](t, f.rootV1)
			root.Signed.Version = 2
			for _, k := range f.keys(tufrepo.RoleRoot) {
				if err := root.Signed.RevokeKey(k.ID, tufrepo.RoleRoot); err != nil {
					t.Fatal(err)
				}
			}
			for _, role := range []string{tufrepo.RoleRoot, tufrepo.RoleTargets} {
				if err := root.Signed.AddKey(tk, role); err != nil {
					t.Fatal(err)
				}
			}
			root.Signed.Roles[tufrepo.RoleRoot].Threshold = 1
			f.srv.serve("/metadata/2.root.json", sign(t, root, newKey))
			_, err := c.Refresh(context.Background())
			assertReason(t, err, trust.ErrThreshold)
			assertKeptGood(t, c, good)
			_, err = f.client().Refresh(context.Background())
			assertReason(t, err, trust.ErrThreshold)

			// With one old key next to the new one: still short of the
			// old threshold of 2.
			if threshold == 2 {
				f.srv.serve("/metadata/2.root.json", sign(t, root, newKey, f.keys(tufrepo.RoleRoot)[0]))
				_, err = c.Refresh(context.Background())
				assertReason(t, err, trust.ErrThreshold)
				assertKeptGood(t, c, good)
			}
		})
	}
}

// TestAttackRootVersionSkip: root v3, properly signed by the root keys
// root v1 trusts, cannot be reached from v1 without v2. Served in place of
// v2 it is refused as a version mismatch; served only as 3.root.json (v2
// hidden) the agent stays on root v1 and never skips to v3.
func TestAttackRootVersionSkip(t *testing.T) {
	f := newFixture(t, tufrepo.Options{})
	c, good := f.refreshed()
	_, tk := newAttackerKey(t)
	root := load[metadata.RootType](t, f.rootV1)
	root.Signed.Version = 3
	if err := root.Signed.AddKey(tk, tufrepo.RoleTargets); err != nil {
		t.Fatal(err)
	}
	v3 := sign(t, root, f.keys(tufrepo.RoleRoot)...)

	f.srv.serve("/metadata/2.root.json", v3)
	_, err := c.Refresh(context.Background())
	assertReason(t, err, trust.ErrRollback)
	assertKeptGood(t, c, good)
	_, err = f.client().Refresh(context.Background())
	assertReason(t, err, trust.ErrRollback)

	f.srv.reset()
	f.srv.serve("/metadata/3.root.json", v3)
	for name, client := range map[string]*trust.Client{"refreshed agent": c, "fresh agent": f.client()} {
		res, err := client.Refresh(context.Background())
		if err != nil {
			t.Fatalf("%s: refresh with root 2 missing: %v", name, err)
		}
		if res.Versions.Root != 1 {
			t.Fatalf("%s: root version %d after a skip to 3 was offered, want 1", name, res.Versions.Root)
		}
	}
}
