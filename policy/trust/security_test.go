package trust_test

// The attacks of the TUF threat model and patchring's own (DESIGN.md,
// "Trust"), each through the agent's Client against a repository built with
// tufrepo and served by a real HTTP server on 127.0.0.1. In each, the agent
// must keep its last good state and report the reason.

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/patchring/patchring/policy/trust"
	"github.com/patchring/patchring/policy/tufrepo"
)

// assertNoFiles checks that dir holds no file at all (no payload, no
// leftover temporary file).
func assertNoFiles(t *testing.T, dir string) {
	t.Helper()
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			t.Errorf("unexpected file left behind: %s", p)
		}
		return nil
	})
}

func TestAttackArbitraryPayload(t *testing.T) {
	t.Run("catalog payload replaced", func(t *testing.T) {
		f := newFixture(t, tufrepo.Options{})
		c, good := f.refreshed()
		evil := bytes.Repeat([]byte{'X'}, len(f.payload)) // same length, other bytes
		f.srv.serve(f.payloadURLPath(f.catalog), evil)
		dst := t.TempDir()
		_, err := c.DownloadTarget(context.Background(), f.catalog, dst)
		assertReason(t, err, trust.ErrHashMismatch)
		assertNoFiles(t, dst)
		assertKeptGood(t, c, good)
	})
	t.Run("policy replaced", func(t *testing.T) {
		f := newFixture(t, tufrepo.Options{})
		c, good := f.refreshed()
		if _, err := f.reopen().PublishPolicy(policyV2); err != nil {
			t.Fatal(err)
		}
		f.srv.serve(f.payloadURLPath(tufrepo.PolicyTarget), []byte(`{"policy":666,"rings":["lab","broad"]}`)[:len(policyV2)])
		_, err := c.Refresh(context.Background())
		assertReason(t, err, trust.ErrHashMismatch)
		assertKeptGood(t, c, good)
	})
}

func TestAttackEndlessData(t *testing.T) {
	tests := []struct {
		name     string
		path     func(f *fixture) string
		handler  http.HandlerFunc
		download bool
	}{
		{"timestamp endless", func(*fixture) string { return "/metadata/timestamp.json" }, endless, false},
		{"timestamp announces a huge length", func(*fixture) string { return "/metadata/timestamp.json" }, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", strconv.Itoa(1<<30))
			w.WriteHeader(http.StatusOK)
		}, false},
		{"snapshot longer than signed", func(f *fixture) string {
			return fmt.Sprintf("/metadata/%d.snapshot.json", f.repo.Versions().Snapshot)
		}, nil, false},
		{"policy endless", func(f *fixture) string { return f.payloadURLPath(tufrepo.PolicyTarget) }, endless, false},
		{"payload endless", func(f *fixture) string { return f.payloadURLPath(f.catalog) }, endless, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, tufrepo.Options{})
			c, good := f.refreshed()
			if !tc.download {
				if _, err := f.reopen().PublishPolicy(policyV2); err != nil {
					t.Fatal(err)
				}
			}
			h := tc.handler
			if h == nil {
				padded := append(f.metaBytes(fmt.Sprintf("%d.snapshot.json", f.repo.Versions().Snapshot)), bytes.Repeat([]byte{' '}, 4096)...)
				h = func(w http.ResponseWriter, r *http.Request) { w.Write(padded) }
			}
			f.srv.set(tc.path(f), h)
			var err error
			dst := t.TempDir()
			if tc.download {
				_, err = c.DownloadTarget(context.Background(), f.catalog, dst)
			} else {
				_, err = c.Refresh(context.Background())
			}
			assertReason(t, err, trust.ErrTooLarge)
			assertNoFiles(t, dst)
			assertKeptGood(t, c, good)
		})
	}
}

func TestAttackRollback(t *testing.T) {
	t.Run("timestamp replayed", func(t *testing.T) {
		f := newFixture(t, tufrepo.Options{})
		oldTimestamp := f.metaBytes("timestamp.json")
		if _, err := f.reopen().PublishPolicy(policyV2); err != nil {
			t.Fatal(err)
		}
		c, good := f.refreshed()
		f.srv.serve("/metadata/timestamp.json", oldTimestamp)
		_, err := c.Refresh(context.Background())
		assertReason(t, err, trust.ErrRollback)
		assertKeptGood(t, c, good)
	})
	t.Run("snapshot replayed", func(t *testing.T) {
		// The attacker holds the timestamp key and points a new timestamp
		// at an old snapshot.
		f := newFixture(t, tufrepo.Options{})
		oldSnapVersion := f.repo.Versions().Snapshot
		oldSnap := f.metaBytes(fmt.Sprintf("%d.snapshot.json", oldSnapVersion))
		if _, err := f.reopen().PublishPolicy(policyV2); err != nil {
			t.Fatal(err)
		}
		c, good := f.refreshed()
		ts := load[metadata.TimestampType](t, f.metaBytes("timestamp.json"))
		ts.Signed.Version++
		ts.Signed.Meta["snapshot.json"] = metaFile(t, oldSnapVersion, oldSnap)
		f.srv.serve("/metadata/timestamp.json", sign(t, ts, f.keys(tufrepo.RoleTimestamp)...))
		_, err := c.Refresh(context.Background())
		assertReason(t, err, trust.ErrRollback)
		assertKeptGood(t, c, good)
	})
	t.Run("targets replayed", func(t *testing.T) {
		// The attacker holds the timestamp and snapshot keys and points a
		// new snapshot at old targets.
		f := newFixture(t, tufrepo.Options{})
		oldTargetsVersion := f.repo.Versions().Targets
		oldTargets := f.metaBytes(fmt.Sprintf("%d.targets.json", oldTargetsVersion))
		if _, err := f.reopen().PublishPolicy(policyV2); err != nil {
			t.Fatal(err)
		}
		c, good := f.refreshed()
		v := f.repo.Versions()
		snap := load[metadata.SnapshotType](t, f.metaBytes("snapshot.json"))
		snap.Signed.Version = v.Snapshot + 1
		snap.Signed.Meta["targets.json"] = metaFile(t, oldTargetsVersion, oldTargets)
		snapData := sign(t, snap, f.keys(tufrepo.RoleSnapshot)...)
		ts := load[metadata.TimestampType](t, f.metaBytes("timestamp.json"))
		ts.Signed.Version = v.Timestamp + 1
		ts.Signed.Meta["snapshot.json"] = metaFile(t, v.Snapshot+1, snapData)
		f.srv.serve(fmt.Sprintf("/metadata/%d.snapshot.json", v.Snapshot+1), snapData)
		f.srv.serve("/metadata/timestamp.json", sign(t, ts, f.keys(tufrepo.RoleTimestamp)...))
		_, err := c.Refresh(context.Background())
		assertReason(t, err, trust.ErrRollback)
		assertKeptGood(t, c, good)
	})
}

func TestAttackIndefiniteFreeze(t *testing.T) {
	f := newFixture(t, tufrepo.Options{Expiries: map[string]time.Duration{tufrepo.RoleTimestamp: 24 * time.Hour}})
	c, good := f.refreshed()
	// The origin (or a mirror) keeps serving the same metadata while the
	// agent's clock moves past the timestamp's expiry.
	f.clock.Set(time.Now().Add(48 * time.Hour))
	_, err := c.Refresh(context.Background())
	assertReason(t, err, trust.ErrExpired)
	assertKeptGood(t, c, good)
	// The last good state is still readable but reported as expired, and
	// nothing more is downloaded on its strength.
	st, err := c.LastGood()
	if err != nil {
		t.Fatal(err)
	}
	if !st.Expired(f.clock.Now()) {
		t.Error("State.Expired = false with the clock past the timestamp expiry")
	}
	assertReason(t, c.CheckExpiry(), trust.ErrExpired)
	_, err = c.DownloadTarget(context.Background(), f.catalog, t.TempDir())
	assertReason(t, err, trust.ErrExpired)

	// Once the admin re-signs the timestamp, the agent recovers.
	r := f.reopen()
	r.SetClock(f.clock.Now)
	if _, err := r.Refresh(); err != nil {
		t.Fatalf("admin refresh: %v", err)
	}
	if _, err := c.Refresh(context.Background()); err != nil {
		t.Fatalf("refresh after the admin re-signed: %v", err)
	}
	if err := c.CheckExpiry(); err != nil {
		t.Errorf("CheckExpiry after recovery: %v", err)
	}
}

func TestAttackMixAndMatch(t *testing.T) {
	tests := []struct {
		name string
		// mix returns the served path and bytes from an older repository
		// state (old) mixed into the current one.
		mix func(f *fixture, old map[string][]byte) (string, []byte)
	}{
		{"old targets under the new version's name", func(f *fixture, old map[string][]byte) (string, []byte) {
			return fmt.Sprintf("/metadata/%d.targets.json", f.repo.Versions().Targets), old["targets"]
		}},
		{"old snapshot under the new version's name", func(f *fixture, old map[string][]byte) (string, []byte) {
			return fmt.Sprintf("/metadata/%d.snapshot.json", f.repo.Versions().Snapshot), old["snapshot"]
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, tufrepo.Options{})
			c, good := f.refreshed()
			v := f.repo.Versions()
			old := map[string][]byte{
				"targets":  f.metaBytes(fmt.Sprintf("%d.targets.json", v.Targets)),
				"snapshot": f.metaBytes(fmt.Sprintf("%d.snapshot.json", v.Snapshot)),
			}
			if _, err := f.reopen().PublishPolicy(policyV2); err != nil {
				t.Fatal(err)
			}
			path, data := tc.mix(f, old)
			f.srv.serve(path, data)
			_, err := c.Refresh(context.Background())
			assertReason(t, err, trust.ErrHashMismatch)
			assertKeptGood(t, c, good)
		})
	}
}

func TestAttackFastForwardRecovery(t *testing.T) {
	f := newFixture(t, tufrepo.Options{})
	c, _ := f.refreshed()
	// The attacker, holding the timestamp key, fast-forwards the agent to
	// timestamp version 1000.
	ts := load[metadata.TimestampType](t, f.metaBytes("timestamp.json"))
	ts.Signed.Version = 1000
	f.srv.serve("/metadata/timestamp.json", sign(t, ts, f.keys(tufrepo.RoleTimestamp)...))
	res, err := c.Refresh(context.Background())
	if err != nil {
		t.Fatalf("refresh with the attacker's timestamp: %v", err)
	}
	if res.Versions.Timestamp != 1000 {
		t.Fatalf("timestamp version = %d, want the attacker's 1000", res.Versions.Timestamp)
	}
	f.srv.reset()
	// Without a key rotation the agent now rejects the real timestamp as a
	// rollback: it is stuck.
	if _, err := f.reopen().PublishPolicy(policyV2); err != nil {
		t.Fatal(err)
	}
	_, err = c.Refresh(context.Background())
	assertReason(t, err, trust.ErrRollback)
	// The admin rotates the timestamp key; the new root makes the agent
	// drop the timestamp signed with the old key and accept the real one.
	if _, err := f.reopen().RotateKey(tufrepo.RoleTimestamp); err != nil {
		t.Fatalf("rotate timestamp key: %v", err)
	}
	res, err = c.Refresh(context.Background())
	if err != nil {
		t.Fatalf("refresh after rotation: %v", err)
	}
	want := f.repo.Versions()
	if res.Versions.Timestamp != want.Timestamp || res.Versions.Root != 2 {
		t.Errorf("after recovery: versions %+v, want timestamp %d and root 2", res.Versions, want.Timestamp)
	}
	if !bytes.Equal(res.Policy, policyV2) {
		t.Errorf("after recovery: policy %q, want %q", res.Policy, policyV2)
	}
}

func TestAttackThresholdNotMet(t *testing.T) {
	t.Run("root", func(t *testing.T) {
		f := newFixture(t, tufrepo.Options{Thresholds: map[string]int{tufrepo.RoleRoot: 2}})
		c, good := f.refreshed()
		// One stolen root key signs a new root that hands the targets role
		// to the attacker.
		root := load[metadata.RootType](t, f.rootV1)
		root.Signed.Version = 2
		evilKey := f.keys(tufrepo.RoleTimestamp)[0]
		tk, err := metadata.KeyFromPublicKey(evilKey.Public)
		if err != nil {
			t.Fatal(err)
		}
		if err := root.Signed.AddKey(tk, tufrepo.RoleTargets); err != nil {
			t.Fatal(err)
		}
		f.srv.serve("/metadata/2.root.json", sign(t, root, f.keys(tufrepo.RoleRoot)[0]))
		_, err = c.Refresh(context.Background())
		assertReason(t, err, trust.ErrThreshold)
		assertKeptGood(t, c, good)
		// A fresh agent installed with root 1 refuses it too.
		_, err = f.client().Refresh(context.Background())
		assertReason(t, err, trust.ErrThreshold)
	})
	t.Run("targets", func(t *testing.T) {
		f := newFixture(t, tufrepo.Options{Thresholds: map[string]int{tufrepo.RoleTargets: 2}})
		c, good := f.refreshed()
		// One stolen targets key (with the online snapshot and timestamp
		// keys) signs targets carrying an evil policy.
		v := f.repo.Versions()
		evil := []byte(`{"policy":"evil"}`)
		targets := load[metadata.TargetsType](t, f.metaBytes("targets.json"))
		targets.Signed.Version = v.Targets + 1
		tf, err := metadata.TargetFile().FromBytes(tufrepo.PolicyTarget, evil, "sha256")
		if err != nil {
			t.Fatal(err)
		}
		targets.Signed.Targets[tufrepo.PolicyTarget] = tf
		targetsData := sign(t, targets, f.keys(tufrepo.RoleTargets)[0])
		snap := load[metadata.SnapshotType](t, f.metaBytes("snapshot.json"))
		snap.Signed.Version = v.Snapshot + 1
		snap.Signed.Meta["targets.json"] = metaFile(t, v.Targets+1, targetsData)
		snapData := sign(t, snap, f.keys(tufrepo.RoleSnapshot)...)
		ts := load[metadata.TimestampType](t, f.metaBytes("timestamp.json"))
		ts.Signed.Version = v.Timestamp + 1
		ts.Signed.Meta["snapshot.json"] = metaFile(t, v.Snapshot+1, snapData)
		f.srv.serve(fmt.Sprintf("/metadata/%d.targets.json", v.Targets+1), targetsData)
		f.srv.serve(fmt.Sprintf("/metadata/%d.snapshot.json", v.Snapshot+1), snapData)
		f.srv.serve("/metadata/timestamp.json", sign(t, ts, f.keys(tufrepo.RoleTimestamp)...))
		f.srv.serve("/targets/"+tf.Hashes["sha256"].String()+".policy.json", evil)
		_, err = c.Refresh(context.Background())
		assertReason(t, err, trust.ErrThreshold)
		assertKeptGood(t, c, good)
	})
}

func TestAttackKeyRotationFollowed(t *testing.T) {
	f := newFixture(t, tufrepo.Options{})
	c, _ := f.refreshed()
	// Root rotated twice, the targets key once, then a new policy: an agent
	// that knows only root 1 (and one that was installed with it and never
	// refreshed) must follow the chain 1 -> 2 -> 3 -> 4.
	for range 2 {
		if _, err := f.reopen().RotateKey(tufrepo.RoleRoot); err != nil {
			t.Fatalf("rotate root key: %v", err)
		}
	}
	if _, err := f.reopen().RotateKey(tufrepo.RoleTargets); err != nil {
		t.Fatalf("rotate targets key: %v", err)
	}
	if _, err := f.reopen().PublishPolicy(policyV2); err != nil {
		t.Fatal(err)
	}
	for name, client := range map[string]*trust.Client{"refreshed agent": c, "fresh agent": f.client()} {
		res, err := client.Refresh(context.Background())
		if err != nil {
			t.Fatalf("%s: refresh after rotations: %v", name, err)
		}
		if res.Versions.Root != 4 || !bytes.Equal(res.Policy, policyV2) {
			t.Errorf("%s: root %d policy %q, want root 4 and the new policy", name, res.Versions.Root, res.Policy)
		}
	}
	// A root signed with the first (now retired) root key no longer counts.
	retired, err := filepath.Glob(filepath.Join(f.keysDir, "retired", "root-*.json"))
	if err != nil || len(retired) != 2 {
		t.Fatalf("retired root keys: %v %v, want the two rotated out", retired, err)
	}
	var oldKeys []*tufrepo.Key
	for _, p := range retired {
		k, err := tufrepo.ReadKeyFile(p, nil, true)
		if err != nil {
			t.Fatal(err)
		}
		oldKeys = append(oldKeys, k)
	}
	root := load[metadata.RootType](t, f.metaBytes("4.root.json"))
	root.Signed.Version = 5
	f.srv.serve("/metadata/5.root.json", sign(t, root, oldKeys...))
	_, err = c.Refresh(context.Background())
	assertReason(t, err, trust.ErrThreshold)
}

func TestAttackSlowRetrieval(t *testing.T) {
	slow := func(cfg *trust.Config) {
		// A rate a trickle (500 B/s) cannot meet; the timeout is long, so
		// only the rate check can cut the source off. The window is long
		// enough for an honest local answer to end within it on a loaded
		// machine (with 20 ms the first, honest refresh was cut now and
		// then before the response headers came).
		cfg.MinRate = 64 << 10
		cfg.RateWindow = 500 * time.Millisecond
		cfg.Timeout = time.Minute
		cfg.PayloadTimeout = time.Minute
	}
	t.Run("metadata", func(t *testing.T) {
		f := newFixture(t, tufrepo.Options{})
		c, good := f.refreshed(slow)
		f.srv.set("/metadata/timestamp.json", trickle)
		_, err := c.Refresh(context.Background())
		assertReason(t, err, trust.ErrSlow)
		assertKeptGood(t, c, good)
	})
	t.Run("payload", func(t *testing.T) {
		f := newFixture(t, tufrepo.Options{})
		c, good := f.refreshed(slow)
		f.srv.set(f.payloadURLPath(f.catalog), trickle)
		dst := t.TempDir()
		_, err := c.DownloadTarget(context.Background(), f.catalog, dst)
		assertReason(t, err, trust.ErrSlow)
		assertNoFiles(t, dst)
		assertKeptGood(t, c, good)
	})
}

func TestAttackPeerHidesNextRoot(t *testing.T) {
	t.Run("origin has it", func(t *testing.T) {
		f := newFixture(t, tufrepo.Options{})
		peerSrv := newTamperServer(t, f.repoDir)
		peer := &trust.HTTPSource{BaseURL: peerSrv.URL, Label: "peer"}
		c, _ := f.refreshed(func(cfg *trust.Config) { cfg.Sources = []trust.Source{peer, f.origin()} })
		if _, err := f.reopen().RotateKey(tufrepo.RoleRoot); err != nil {
			t.Fatal(err)
		}
		peerSrv.notFound("/metadata/2.root.json")
		res, err := c.Refresh(context.Background())
		if err != nil {
			t.Fatalf("refresh: %v", err)
		}
		if res.Versions.Root != 2 {
			t.Errorf("root version = %d, want 2: the peer's 404 hid the rotation", res.Versions.Root)
		}
		if f.srv.hitCount("/metadata/2.root.json") == 0 || res.Source != "peer" {
			t.Errorf("refresh went through %q, origin asked %d times: want the peer, with the origin providing the hidden root", res.Source, f.srv.hitCount("/metadata/2.root.json"))
		}
	})
	t.Run("origin unreachable", func(t *testing.T) {
		f := newFixture(t, tufrepo.Options{})
		peerSrv := newTamperServer(t, f.repoDir)
		peer := &trust.HTTPSource{BaseURL: peerSrv.URL, Label: "peer"}
		dead := newTamperServer(t, t.TempDir())
		deadOrigin := &trust.HTTPSource{BaseURL: dead.URL, IsOriginServer: true}
		dead.Close()
		c, good := f.refreshed()
		c.SetSources([]trust.Source{peer, deadOrigin})
		if _, err := f.reopen().RotateKey(tufrepo.RoleRoot); err != nil {
			t.Fatal(err)
		}
		peerSrv.notFound("/metadata/2.root.json")
		_, err := c.Refresh(context.Background())
		assertReason(t, err, trust.ErrRootUnconfirmed)
		assertKeptGood(t, c, good)
	})
	t.Run("two peers agree without origin", func(t *testing.T) {
		// No rotation happened: two independent sources answering 404 are
		// enough to go on.
		f := newFixture(t, tufrepo.Options{})
		p1 := newTamperServer(t, f.repoDir)
		p2 := newTamperServer(t, f.repoDir)
		c := f.client(func(cfg *trust.Config) {
			cfg.Sources = []trust.Source{&trust.HTTPSource{BaseURL: p1.URL, Label: "peer1"}, &trust.HTTPSource{BaseURL: p2.URL, Label: "peer2"}}
		})
		res, err := c.Refresh(context.Background())
		if err != nil {
			t.Fatalf("refresh: %v", err)
		}
		if res.Source != "peer1" || p2.hitCount("/metadata/2.root.json") == 0 {
			t.Errorf("source %q, peer2 asked %d times: want peer1 confirmed by peer2", res.Source, p2.hitCount("/metadata/2.root.json"))
		}
	})
	t.Run("lone peer", func(t *testing.T) {
		f := newFixture(t, tufrepo.Options{})
		p1 := newTamperServer(t, f.repoDir)
		c := f.client(func(cfg *trust.Config) {
			cfg.Sources = []trust.Source{&trust.HTTPSource{BaseURL: p1.URL, Label: "peer1"}}
		})
		_, err := c.Refresh(context.Background())
		assertReason(t, err, trust.ErrRootUnconfirmed)
	})
}

func TestAttackWrongTargetName(t *testing.T) {
	f := newFixture(t, tufrepo.Options{})
	c, good := f.refreshed()
	t.Run("not signed", func(t *testing.T) {
		_, err := c.DownloadTarget(context.Background(), "catalog/tool/6.6/evil.deb", t.TempDir())
		assertReason(t, err, trust.ErrUnknownTarget)
	})
	for _, name := range []string{"../../etc/passwd", "/etc/passwd", "catalog//x", "catalog/./x", "catalog/x/..", `catalog\x`, ""} {
		t.Run("invalid "+name, func(t *testing.T) {
			dst := t.TempDir()
			_, err := c.DownloadTarget(context.Background(), name, dst)
			assertReason(t, err, trust.ErrBadTargetName)
			assertNoFiles(t, dst)
		})
	}
	t.Run("other signed software served", func(t *testing.T) {
		other, err := os.ReadFile(filepath.Join(f.repoDir, filepath.FromSlash(f.payloadURLPath(f.payload2))))
		if err != nil {
			t.Fatal(err)
		}
		f.srv.serve(f.payloadURLPath(f.catalog), other)
		dst := t.TempDir()
		_, err = c.DownloadTarget(context.Background(), f.catalog, dst)
		assertReason(t, err, trust.ErrHashMismatch)
		assertNoFiles(t, dst)
	})
	assertKeptGood(t, c, good)
}
